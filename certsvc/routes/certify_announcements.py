"""The announcement checker over HTTP (R5, R8), for texts written by hand before they are
published: the answer names the kinds of forbidden item, never the matched text."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from certify.announcements import findings
from certsvc.accounts import Role, StaffAccount
from certsvc.auth import SessionDep, SettingsDep, require_roles
from certsvc.routes.certify_common import contacts, staff_hosts
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
def check_text(
    body: TextIn, request: Request, _: WriterDep, db: SessionDep, settings: SettingsDep
) -> CheckOut:
    """Whether `text` may be published; the kinds of item that forbid it. The body's own
    contacts and confirmation sites may appear; the system hosts may not."""
    public_host = urlsplit(settings.public_base_url).netloc
    given = tuple(h for h in body.staff_hosts if h and h != public_host)
    found = findings(body.text, given + staff_hosts(request), contacts(request, db, None))
    return CheckOut(publishable=not found, findings=found)
