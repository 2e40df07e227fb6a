"""Custodians open and close signing sessions on their own USBKeys, from their workstations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from certsvc.errors import NotFound
from certsvc.service.accounts import Role, StaffAccount
from certsvc.service.auth import SessionDep, require_roles, require_workstation
from certsvc.service.workstations import Workstation
from certsvc.signer.models import HsmToken
from certsvc.signer.sessions import NotYourSession, SigningSession, SigningSessions

router = APIRouter(prefix="/api/v1/signing/sessions", tags=["signing"])
CustodianDep = Annotated[StaffAccount, Depends(require_roles(Role.CUSTODIAN))]
WorkstationDep = Annotated[Workstation, Depends(require_workstation)]


class SessionOpen(BaseModel):
    token_serial: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")
    pin: str = Field(min_length=4, max_length=64, description="the USBKey's user PIN; kept nowhere")


class SessionOut(BaseModel):
    token_serial: str
    token_label: str
    workstation: str
    opened_at: datetime
    expires_at: datetime
    idle_timeout_seconds: float


def _sessions(request: Request) -> SigningSessions:
    sessions: SigningSessions = request.app.state.signing_sessions
    return sessions


def _out(session: SigningSession) -> SessionOut:
    return SessionOut(
        token_serial=session.token.serial,
        token_label=session.token.label,
        workstation=session.workstation,
        opened_at=datetime.fromtimestamp(session.opened_at, UTC),
        expires_at=datetime.fromtimestamp(session.expires_at, UTC),
        idle_timeout_seconds=session.idle_seconds,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def open_session(
    body: SessionOpen,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    db: SessionDep,
) -> SessionOut:
    """Insert and unlock: log in to a token in the caller's custody with its PIN."""
    token = db.scalar(select(HsmToken).where(HsmToken.serial == body.token_serial))
    if token is None:
        raise NotFound(f"token_serial: no registered token {body.token_serial}")
    if token.custodian_id != account.id:
        raise NotYourSession(f"token_serial: token {token.label} is in another person's custody")
    session = _sessions(request).open(
        body.token_serial, body.pin, account.username, workstation.name
    )
    return _out(session)


@router.get("")
def get_sessions(request: Request, account: CustodianDep) -> list[SessionOut]:
    """The caller's open signing sessions."""
    return [_out(s) for s in _sessions(request).held_by(account.username)]


@router.delete("/{token_serial}", status_code=status.HTTP_204_NO_CONTENT)
def close_session(
    token_serial: str, request: Request, account: CustodianDep, _: WorkstationDep
) -> None:
    """Lock the USBKey again: log out and close the session."""
    _sessions(request).close(token_serial, account.username)
