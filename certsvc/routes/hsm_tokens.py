"""The custody register as staff see it: each USBKey, who holds it, on which workstations it
may be used, whether it is inserted; and the acts that change it (workstations per token, key
retirement, certificate revocation), each audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep, require_roles
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.workstations import get_workstation
from common.errors import InvalidInput
from signer.actor import Actor
from signer.custody import (
    find_token,
    list_tokens,
    register_token_workstation,
    retire_key,
    revoke_key_certificate,
    unregister_token_workstation,
)
from signer.models import KeyPurpose, KeyStatus, SigningKey, TokenWorkstation

router = APIRouter(prefix="/api/v1/hsm", tags=["hsm"], responses=ROLE_GATED)
ReaderDep = Annotated[
    StaffAccount,
    Depends(require_roles(Role.ADMIN, Role.SECURITY_OFFICER, Role.CUSTODIAN)),
]
AdminDep = Annotated[StaffAccount, Depends(require_roles(Role.ADMIN))]
RetireDep = Annotated[StaffAccount, Depends(require_roles(Role.ADMIN, Role.SECURITY_OFFICER))]
SecurityDep = Annotated[StaffAccount, Depends(require_roles(Role.SECURITY_OFFICER))]


class SigningKeyOut(BaseModel):
    id: int
    label: str
    purpose: KeyPurpose
    status: KeyStatus
    not_after: datetime
    usage_count: int
    usage_limit: int | None
    retired_at: datetime | None
    certificate_revoked_at: datetime | None


class UsbKeyOut(BaseModel):
    serial: str
    label: str
    model: str
    custodian: str | None
    workstations: list[str]
    present: bool
    pin_locked: bool
    keys: list[SigningKeyOut]


class WorkstationForToken(BaseModel):
    workstation: str = Field(min_length=2, max_length=64)


class KeyAct(BaseModel):
    reason: str = Field(min_length=1, max_length=200, description="why; kept in the audit log")


def _key_out(key: SigningKey) -> SigningKeyOut:
    return SigningKeyOut(
        id=key.id,
        label=key.label,
        purpose=key.purpose,
        status=key.status,
        not_after=key.not_after,
        usage_count=key.usage_count,
        usage_limit=key.usage_limit,
        retired_at=key.retired_at,
        certificate_revoked_at=key.certificate_revoked_at,
    )


@router.get("/tokens")
def get_tokens(request: Request, _: ReaderDep, db: SessionDep) -> list[UsbKeyOut]:
    """Every registered token with its keys and workstations, and whether it is inserted and
    unlocked now."""
    live = {status.serial: status for status in state.tokens(request).statuses()}
    tokens = list_tokens(db)
    keys = list(db.scalars(select(SigningKey).order_by(SigningKey.id)))
    places = list(db.scalars(select(TokenWorkstation).order_by(TokenWorkstation.workstation_name)))
    custodians = {account.id: account.username for account in db.scalars(select(StaffAccount))}
    return [
        UsbKeyOut(
            serial=token.serial,
            label=token.label,
            model=token.model,
            custodian=custodians.get(token.custodian_id) if token.custodian_id else None,
            workstations=[p.workstation_name for p in places if p.token_serial == token.serial],
            present=token.serial in live,
            pin_locked=token.serial in live and live[token.serial].pin_locked,
            keys=[_key_out(key) for key in keys if key.token_serial == token.serial],
        )
        for token in tokens
    ]


@router.post(
    "/tokens/{serial}/workstations",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_token_workstation(
    serial: str, body: WorkstationForToken, account: AdminDep, db: SessionDep
) -> dict[str, str]:
    """Allow a token (named by serial or label) to be used on a workstation of its
    custodian's (R6)."""
    token = find_token(db, serial, "serial")
    name = allow_on_workstation(db, actor_of(account), token.serial, body.workstation)
    return {"token_serial": token.serial, "workstation": name}


def allow_on_workstation(db: Session, actor: Actor, token: str, workstation_name: str) -> str:
    """The API's and the console's one path: the workstation must be active and its holder
    the token's custodian (`register_token_workstation`); its name."""
    workstation = get_workstation(db, workstation_name)
    if not workstation.active:
        raise InvalidInput(f"workstation: {workstation.name} is disabled")
    register_token_workstation(db, actor, token, workstation.name, workstation.custodian_id)
    return workstation.name


@router.delete(
    "/tokens/{serial}/workstations/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=answers(404),
)
def delete_token_workstation(serial: str, name: str, account: AdminDep, db: SessionDep) -> None:
    """The token (named by serial or label) may no longer be used on that workstation."""
    token = find_token(db, serial, "serial")
    unregister_token_workstation(db, actor_of(account), token.serial, name)


@router.post("/keys/{key_id}/retire", responses=answers(404, 409))
def post_retire(
    key_id: int, body: KeyAct, request: Request, account: RetireDep, db: SessionDep
) -> SigningKeyOut:
    """Retire a key: it never signs again; its signatures stay verifiable."""
    key = retire_key(db, actor_of(account), key_id, body.reason)
    state.signing_sessions(request).end(key.token_serial, key.label)
    return _key_out(key)


@router.post("/keys/{key_id}/revoke-certificate", responses=answers(404, 409))
def post_revoke(
    key_id: int, body: KeyAct, request: Request, account: SecurityDep, db: SessionDep
) -> SigningKeyOut:
    """Revoke a key's certificate (lost or compromised USBKey); the key is retired too."""
    key = revoke_key_certificate(db, actor_of(account), key_id, body.reason)
    state.signing_sessions(request).end(key.token_serial, key.label)
    return _key_out(key)
