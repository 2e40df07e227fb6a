"""Custodian routes, each proven to come from the custodian's registered workstation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from certsvc.accounts import Role, StaffAccount
from certsvc.auth import require_roles, require_workstation
from certsvc.routes.schemas import ROLE_GATED
from certsvc.workstations import Workstation

router = APIRouter(prefix="/api/v1/custodian", tags=["custodian"], responses=ROLE_GATED)


class WorkstationProbe(BaseModel):
    workstation: str
    custodian: str


@router.get("/workstation")
def get_workstation(
    account: Annotated[StaffAccount, Depends(require_roles(Role.CUSTODIAN))],
    workstation: Annotated[Workstation, Depends(require_workstation)],
) -> WorkstationProbe:
    """Which workstation signed this request: a check that the signing set-up works."""
    return WorkstationProbe(workstation=workstation.name, custodian=account.username)
