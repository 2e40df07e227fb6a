"""The announcement checker over HTTP (R5, R8), for texts written by hand before they are
published: the answer names the kinds of forbidden item, never the matched text."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from certify.announcements import findings
from certsvc.accounts import Role, StaffAccount
from certsvc.auth import SettingsDep, require_roles
from certsvc.routes.schemas import ROLE_GATED

router = APIRouter(prefix="/api/v1/certify", tags=["certify"], responses=ROLE_GATED)
WriterDep = Annotated[StaffAccount, Depends(require_roles(Role.REGISTRAR, Role.OFFICER))]


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=20000)
    staff_hosts: list[str] = Field(
        default=[], max_length=20, description="the staff system's hosts"
    )


class CheckOut(BaseModel):
    publishable: bool
    findings: list[str]


@router.post("/announcements/check")
def check_text(body: TextIn, _: WriterDep, settings: SettingsDep) -> CheckOut:
    """Whether `text` may be published; the kinds of item that forbid it."""
    public_host = urlsplit(settings.public_base_url).netloc
    hosts = tuple(h for h in body.staff_hosts if h and h != public_host)
    found = findings(body.text, hosts)
    return CheckOut(publishable=not found, findings=found)
