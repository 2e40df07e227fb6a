"""Handing a USBKey from one custodian to another: the outgoing custodian offers it, the
incoming one accepts it, each from their own workstation; the security officer follows it in
the audit log and here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from certsvc import state
from certsvc.accounts import Role, StaffAccount, get_account
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep, require_roles, require_workstation
from certsvc.routes.schemas import ROLE_GATED, TokenName, answers
from certsvc.workstations import Workstation
from signer.custody import (
    accept_handover,
    cancel_handover,
    list_handovers,
    offer_handover,
)
from signer.models import TokenHandover

router = APIRouter(prefix="/api/v1/custody", tags=["custody"], responses=ROLE_GATED)
CustodianDep = Annotated[StaffAccount, Depends(require_roles(Role.CUSTODIAN))]
WorkstationDep = Annotated[Workstation, Depends(require_workstation)]
ReaderDep = Annotated[
    StaffAccount, Depends(require_roles(Role.CUSTODIAN, Role.SECURITY_OFFICER, Role.ADMIN))
]


class HandoverOffer(BaseModel):
    token_serial: TokenName
    to: str = Field(min_length=3, max_length=32, description="username of the incoming custodian")


class HandoverOut(BaseModel):
    id: int
    token_serial: str
    from_custodian: str
    to_custodian: str
    status: str
    offered_at: datetime
    closed_at: datetime | None


def _out(db: SessionDep, handover: TokenHandover) -> HandoverOut:
    rows = db.execute(
        select(StaffAccount.id, StaffAccount.username).where(
            StaffAccount.id.in_([handover.from_custodian_id, handover.to_custodian_id])
        )
    )
    names = {account_id: username for account_id, username in rows}
    return HandoverOut(
        id=handover.id,
        token_serial=handover.token_serial,
        from_custodian=names.get(handover.from_custodian_id, ""),
        to_custodian=names.get(handover.to_custodian_id, ""),
        status=handover.status,
        offered_at=handover.offered_at,
        closed_at=handover.closed_at,
    )


@router.get("/handovers")
def get_handovers(_: ReaderDep, db: SessionDep) -> list[HandoverOut]:
    """Every handover, newest first."""
    return [_out(db, handover) for handover in list_handovers(db)]


@router.post("/handovers", status_code=status.HTTP_201_CREATED, responses=answers(404, 409))
def post_handover(
    body: HandoverOffer, account: CustodianDep, workstation: WorkstationDep, db: SessionDep
) -> HandoverOut:
    """The outgoing custodian offers their token to another custodian."""
    incoming = get_account(db, body.to)
    handover = offer_handover(
        db, actor_of(account, workstation), body.token_serial, incoming.id, incoming.role.value
    )
    return _out(db, handover)


@router.post("/handovers/{handover_id}/accept", responses=answers(404, 409))
def post_accept(
    handover_id: int,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    db: SessionDep,
) -> HandoverOut:
    """The incoming custodian confirms they hold the token; any open session on it ends."""
    handover = accept_handover(db, actor_of(account, workstation), handover_id)
    state.signing_sessions(request).end(handover.token_serial)
    return _out(db, handover)


@router.post("/handovers/{handover_id}/cancel", responses=answers(404, 409))
def post_cancel(
    handover_id: int, account: CustodianDep, workstation: WorkstationDep, db: SessionDep
) -> HandoverOut:
    """Either custodian withdraws a pending handover."""
    handover = cancel_handover(db, actor_of(account, workstation), handover_id)
    return _out(db, handover)
