"""Handing a USBKey from one custodian to another: the outgoing custodian offers it, the
incoming one accepts it, each from their own workstation; the security officer follows it in
the audit log and here. Storage media have the same register and handovers (`/media`)."""

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
from certsvc.storage_media import KINDS as MEDIUM_KINDS
from certsvc.storage_media import (
    MediumHandover,
    MediumRow,
    StorageMedium,
    accept_medium,
    cancel_medium,
    media_listing,
    offer_medium,
    register_medium,
)
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


# Storage media (三(三)2): registered by an admin in a named person's custody, handed over by
# offer and acceptance like USBKeys, by any staff member who holds one (no workstation: a
# registrar may hold an export disk).
StaffDep = Annotated[StaffAccount, Depends(require_roles(*Role))]
AdminDep = Annotated[StaffAccount, Depends(require_roles(Role.ADMIN))]


class MediumIn(BaseModel):
    label: str = Field(min_length=2, max_length=32, description="as written on the medium")
    kind: str = Field(description=", ".join(MEDIUM_KINDS))
    description: str = Field(min_length=1, max_length=100, description="what it is and holds")
    custodian: str = Field(min_length=3, max_length=32, description="username answering for it")


class MediumOut(BaseModel):
    label: str
    kind: str
    description: str
    custodian: str
    custody_backed: bool = Field(description="false: the custodian has no grant event on record")
    pending_handover_to: str | None
    registered_by: str
    registered_at: datetime


class MediumOffer(BaseModel):
    to: str = Field(min_length=3, max_length=32, description="username of the incoming custodian")


class MediumHandoverOut(BaseModel):
    id: int
    label: str
    status: str
    offered_at: datetime
    closed_at: datetime | None


def _medium_out(row: MediumRow) -> MediumOut:
    medium = row.medium
    return MediumOut(
        label=medium.label,
        kind=medium.kind,
        description=medium.description,
        custodian=row.custodian,
        custody_backed=row.backed,
        pending_handover_to=row.pending_to,
        registered_by=medium.registered_by,
        registered_at=medium.registered_at,
    )


def _medium_handover_out(db: SessionDep, handover: MediumHandover) -> MediumHandoverOut:
    medium = db.get_one(StorageMedium, handover.medium_id)
    return MediumHandoverOut(
        id=handover.id,
        label=medium.label,
        status=handover.status,
        offered_at=handover.offered_at,
        closed_at=handover.closed_at,
    )


@router.get("/media")
def get_media(_: StaffDep, db: SessionDep) -> list[MediumOut]:
    """Every storage medium with its custodian and whether a grant event backs that custody."""
    return [_medium_out(row) for row in media_listing(db)]


@router.post("/media", status_code=status.HTTP_201_CREATED, responses=answers(404, 409))
def post_medium(body: MediumIn, account: AdminDep, db: SessionDep) -> MediumOut:
    """Register a storage medium in a named person's custody; audited."""
    medium = register_medium(
        db, actor_of(account), body.label, body.kind, body.description, body.custodian
    )
    return _medium_out(next(r for r in media_listing(db) if r.medium.id == medium.id))


@router.post(
    "/media/{label}/handovers", status_code=status.HTTP_201_CREATED, responses=answers(404, 409)
)
def post_medium_handover(
    label: str, body: MediumOffer, account: StaffDep, db: SessionDep
) -> MediumHandoverOut:
    """The medium's custodian offers it to another person."""
    return _medium_handover_out(db, offer_medium(db, actor_of(account), label, body.to))


@router.post("/media/handovers/{handover_id}/accept", responses=answers(404, 409))
def post_medium_accept(handover_id: int, account: StaffDep, db: SessionDep) -> MediumHandoverOut:
    """The incoming person confirms receipt: the medium is in their custody."""
    return _medium_handover_out(db, accept_medium(db, actor_of(account), handover_id))


@router.post("/media/handovers/{handover_id}/cancel", responses=answers(404, 409))
def post_medium_cancel(handover_id: int, account: StaffDep, db: SessionDep) -> MediumHandoverOut:
    """Either party withdraws a pending handover."""
    return _medium_handover_out(db, cancel_medium(db, actor_of(account), handover_id))
