"""The custody register as staff see it: each USBKey, who holds it, whether it is inserted."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import select

from certsvc.service.accounts import Role, StaffAccount
from certsvc.service.auth import SessionDep, require_roles
from certsvc.signer.custody import list_tokens
from certsvc.signer.models import KeyPurpose, KeyStatus, SigningKey

router = APIRouter(prefix="/api/v1/hsm", tags=["hsm"])
ReaderDep = Annotated[
    StaffAccount,
    Depends(require_roles(Role.ADMIN, Role.SECURITY_OFFICER, Role.CUSTODIAN)),
]


class SigningKeyOut(BaseModel):
    label: str
    purpose: KeyPurpose
    status: KeyStatus
    not_after: datetime
    usage_count: int
    usage_limit: int | None


class UsbKeyOut(BaseModel):
    serial: str
    label: str
    model: str
    custodian: str | None
    present: bool
    pin_locked: bool
    keys: list[SigningKeyOut]


@router.get("/tokens")
def get_tokens(request: Request, _: ReaderDep, db: SessionDep) -> list[UsbKeyOut]:
    """Every registered token with its keys, and whether it is inserted and unlocked now."""
    live = {status.serial: status for status in request.app.state.tokens.statuses()}
    tokens = list_tokens(db)
    keys = list(db.scalars(select(SigningKey).order_by(SigningKey.id)))
    custodians = {account.id: account.username for account in db.scalars(select(StaffAccount))}
    return [
        UsbKeyOut(
            serial=token.serial,
            label=token.label,
            model=token.model,
            custodian=custodians.get(token.custodian_id) if token.custodian_id else None,
            present=token.serial in live,
            pin_locked=token.serial in live and live[token.serial].pin_locked,
            keys=[
                SigningKeyOut(
                    label=key.label,
                    purpose=key.purpose,
                    status=key.status,
                    not_after=key.not_after,
                    usage_count=key.usage_count,
                    usage_limit=key.usage_limit,
                )
                for key in keys
                if key.token_serial == token.serial
            ],
        )
        for token in tokens
    ]
