"""Custodians open and close signing sessions on their own USBKeys, for one key, from a
workstation registered for the token; every opening, refused or not, is audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from audit.trail import event, keep_events, record
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep, require_roles, require_workstation
from certsvc.routes.schemas import ROLE_GATED, TokenName, answers
from certsvc.workstations import Workstation
from common.errors import CertsvcError
from common.unit_of_work import if_rolled_back
from signer.custody import DbPinCounter, authorise_session, find_token
from signer.sessions import SigningSession

router = APIRouter(prefix="/api/v1/signing/sessions", tags=["signing"], responses=ROLE_GATED)
CustodianDep = Annotated[StaffAccount, Depends(require_roles(Role.CUSTODIAN))]
WorkstationDep = Annotated[Workstation, Depends(require_workstation)]


class SessionOpen(BaseModel):
    token_serial: TokenName
    key_label: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[0-9A-Za-z._-]+$",
        description="the one key on the token this session signs with",
    )
    pin: str = Field(min_length=4, max_length=64, description="the USBKey's user PIN; kept nowhere")


class SessionOut(BaseModel):
    token_serial: str
    token_label: str
    key_label: str | None
    workstation: str
    opened_at: datetime
    expires_at: datetime
    idle_timeout_seconds: float


def _out(session: SigningSession) -> SessionOut:
    return SessionOut(
        token_serial=session.token.serial,
        token_label=session.token.label,
        key_label=session.key_label,
        workstation=session.workstation,
        opened_at=datetime.fromtimestamp(session.opened_at, UTC),
        expires_at=datetime.fromtimestamp(session.expires_at, UTC),
        idle_timeout_seconds=session.idle_seconds,
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=answers(404, 409, 423))
def open_session(
    body: SessionOpen,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    db: SessionDep,
) -> SessionOut:
    """Insert and unlock: log in to a token in the caller's custody with its PIN, for one key."""
    session = open_signing_session(
        request, db, account, workstation, body.token_serial, body.key_label, body.pin
    )
    return _out(session)


def open_signing_session(
    request: Request,
    db: Session,
    account: StaffAccount,
    workstation: Workstation,
    token_name: str,
    key_label: str,
    pin: str,
) -> SigningSession:
    """Log in to a token in the caller's custody with its PIN, for one key: the API's and the
    console's one path. A refusal (custody, PIN, token) is kept on record, with the wrong PIN
    counted, although the request fails; a session whose opening cannot be recorded is closed
    again. The PIN goes to the token and nowhere else."""
    actor = actor_of(account, workstation)
    target = f"token:{token_name}"
    sessions = state.signing_sessions(request)
    try:
        serial = find_token(db, token_name, "token_serial").serial
        target = f"token:{serial}"
        key = authorise_session(db, actor, serial, key_label)
        session = sessions.open(
            serial,
            pin,
            account.username,
            workstation.name,
            key.label,
            counter=DbPinCounter(db),
        )
    except CertsvcError as exc:
        refusal = event(
            actor,
            "signer.session.open",
            target,
            outcome="refused",
            reason=type(exc).__name__,
            details={"key": key_label},
        )
        keep_events(db, [refusal])
        raise
    if_rolled_back(db, lambda: sessions.end(serial))
    record(db, actor, "signer.session.open", target, details={"key": key.label})
    return session


@router.get("")
def get_sessions(request: Request, account: CustodianDep) -> list[SessionOut]:
    """The caller's open signing sessions."""
    return [_out(s) for s in state.signing_sessions(request).held_by(account.username)]


@router.delete(
    "/{token_serial}", status_code=status.HTTP_204_NO_CONTENT, responses=answers(404, 409)
)
def close_session(
    token_serial: str,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    db: SessionDep,
) -> None:
    """Lock the USBKey again (named by serial or label): log out and close the session."""
    close_signing_session(request, db, account, workstation, token_serial)


def close_signing_session(
    request: Request,
    db: Session,
    account: StaffAccount,
    workstation: Workstation,
    token_name: str,
    field: str = "token_serial",
) -> None:
    """Log out of the caller's session on the token, audited: the API's and the console's."""
    serial = find_token(db, token_name, field).serial
    state.signing_sessions(request).close(serial, account.username)
    record(db, actor_of(account, workstation), "signer.session.close", f"token:{serial}")
