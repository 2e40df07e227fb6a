"""Admins register the designated computers and name the custodian answering for each (R6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field

from audit.trail import record
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep, require_roles
from certsvc.grants import grant_workstation
from certsvc.routes.schemas import ROLE_GATED, WorkstationOut, answers
from certsvc.workstations import (
    Workstation,
    disable_workstation,
    list_workstations,
)

AdminDep = Annotated[StaffAccount, Depends(require_roles(Role.ADMIN))]
router = APIRouter(prefix="/api/v1/admin/workstations", tags=["admin"], responses=ROLE_GATED)


class WorkstationCreate(BaseModel):
    name: str = Field(max_length=64, description="2–64 characters of a-z, 0-9, . _ -")
    custodian: str = Field(max_length=64, description="username of an account with role custodian")
    public_key_pem: str = Field(
        max_length=4096, description="the Ed25519 or ECDSA P-256 public key, PEM"
    )


def _out(workstation: Workstation) -> WorkstationOut:
    return WorkstationOut(
        name=workstation.name,
        custodian=workstation.custodian.username,
        active=workstation.active,
        registered_at=workstation.registered_at,
        public_key_fingerprint=workstation.fingerprint,
    )


@router.get("")
def get_workstations(_: AdminDep, session: SessionDep) -> list[WorkstationOut]:
    """Every registered workstation."""
    return [_out(workstation) for workstation in list_workstations(session)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=answers(404, 409))
def post_workstation(
    body: WorkstationCreate, admin: AdminDep, session: SessionDep
) -> WorkstationOut:
    """Register a workstation's public key in a custodian's custody."""
    workstation = grant_workstation(
        session, actor_of(admin), body.name, body.custodian, body.public_key_pem
    )
    return _out(workstation)


@router.post("/{name}/disable", responses=answers(404))
def post_disable(name: str, admin: AdminDep, session: SessionDep) -> WorkstationOut:
    """Disable a workstation: its signed requests are refused from now on."""
    workstation = disable_workstation(session, name)
    record(session, actor_of(admin), "service.workstation.disable", workstation.name)
    return _out(workstation)
