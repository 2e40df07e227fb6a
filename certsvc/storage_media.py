"""Storage media in the custody register (三(三)2 "指定专用计算机、USBKey 钥匙、存储介质等物品的
管理责任人"): each USB disk or other medium the body keeps data on has one named custodian, like
workstations and USBKeys. An admin registers it; it changes hands only when the holder offers
it and the incoming person accepts; every step is an audit event.

The custodian is granted by an event as the other custody rows are (`audit.grants`): the
registration or the accepted handover carries the digest of label and custodian, so a
custodian written straight into the database is shown unbacked in the listing and named by
`certsvc grants check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from audit.grants import grant_backed, grant_digest
from audit.trail import Attributed, record
from certsvc.accounts import Role, StaffAccount, get_account
from common.db import Base
from common.dbtypes import UTCDateTime, utcnow
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor

KINDS = ("usb-disk", "external-disk", "optical-disc", "memory-card", "other")
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,31}")
DESCRIPTION_MAX = 100
PENDING, COMPLETED, CANCELLED = "pending", "completed", "cancelled"
MEDIUM_REGISTER = "custody.medium.register"
MEDIUM_OFFER = "custody.medium.handover_offer"
MEDIUM_ACCEPT = "custody.medium.handover_accept"
MEDIUM_CANCEL = "custody.medium.handover_cancel"
_ANY_STAFF = frozenset(role.value for role in Role)
_MEDIUM_EVENTS = {MEDIUM_REGISTER: frozenset({Role.ADMIN.value}), MEDIUM_ACCEPT: _ANY_STAFF}


class StorageMedium(Base):
    """A storage medium and the person answering for it."""

    __tablename__ = "storage_media"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(100))
    custodian_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    # The audit event that gave the medium to its custodian.
    custody_idx: Mapped[int | None] = mapped_column(BigInteger)
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MediumHandover(Base):
    """A medium passing from its custodian to another person: offered, then accepted (or
    cancelled by either); until accepted it stays with the outgoing custodian."""

    __tablename__ = "storage_media_handovers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    medium_id: Mapped[int] = mapped_column(ForeignKey("storage_media.id"), index=True)
    from_custodian_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    to_custodian_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    status: Mapped[str] = mapped_column(String(16))
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def medium_digest(medium: StorageMedium) -> str:
    return grant_digest("medium", {"label": medium.label, "custodian_id": medium.custodian_id})


def medium_backed(db: Session, medium: StorageMedium) -> bool:
    """Whether the medium's custodian is the one its registration or last accepted handover
    named."""
    return grant_backed(db, medium.custody_idx, _MEDIUM_EVENTS, medium_digest(medium))


def _holder(db: Session, username: str, field: str) -> StaffAccount:
    try:
        account = get_account(db, username)
    except NotFound:
        raise NotFound(f"{field}: no staff account {username!r}") from None
    if not account.active:
        raise InvalidInput(f"{field}: {username!r} is disabled")
    return account


def register_medium(
    db: Session, by: Attributed, label: str, kind: str, description: str, custodian: str
) -> StorageMedium:
    """An admin registers a medium in a named person's custody; granted by its event."""
    if by.role != Role.ADMIN.value:
        raise Conflict("only an admin registers a storage medium")
    if not LABEL_RE.fullmatch(label):
        raise InvalidInput("label: 2–32 letters, digits, . _ -, as written on the medium")
    if kind not in KINDS:
        raise InvalidInput(f"kind: one of {', '.join(KINDS)}")
    description = description.strip()
    if not description or len(description) > DESCRIPTION_MAX:
        raise InvalidInput(f"description: what it is and holds, at most {DESCRIPTION_MAX} chars")
    holder = _holder(db, custodian, "custodian")
    if db.scalar(select(StorageMedium.id).where(StorageMedium.label == label)) is not None:
        raise Conflict(f"label: medium {label} is already registered")
    medium = StorageMedium(
        label=label,
        kind=kind,
        description=description,
        custodian_id=holder.id,
        registered_by=by.username,
    )
    db.add(medium)
    db.flush()
    medium.custody_idx = record(
        db,
        by,
        MEDIUM_REGISTER,
        f"medium:{label}",
        details={"custodian": holder.username, "kind": kind, "grant": medium_digest(medium)},
    )
    return medium


def get_medium(db: Session, label: str) -> StorageMedium:
    medium = db.scalar(select(StorageMedium).where(StorageMedium.label == label))
    if medium is None:
        raise NotFound(f"label: no storage medium {label!r}")
    return medium


def offer_medium(db: Session, by: Actor, label: str, to: str) -> MediumHandover:
    """The medium's custodian offers it to another person."""
    account_id = by.account_id
    medium = get_medium(db, label)
    if medium.custodian_id != account_id:
        raise Conflict(f"label: medium {label} is not in your custody")
    incoming = _holder(db, to, "to")
    if incoming.id == account_id:
        raise InvalidInput("to: a medium is handed over to another person")
    pending = db.scalar(
        select(MediumHandover.id).where(
            MediumHandover.medium_id == medium.id, MediumHandover.status == PENDING
        )
    )
    if pending is not None:
        raise Conflict(f"label: handover {pending} of medium {label} is still pending")
    handover = MediumHandover(
        medium_id=medium.id,
        from_custodian_id=account_id,
        to_custodian_id=incoming.id,
        status=PENDING,
    )
    db.add(handover)
    db.flush()
    record(
        db,
        by,
        MEDIUM_OFFER,
        f"medium:{label}",
        details={"handover": handover.id, "to": incoming.username},
    )
    return handover


def _pending(db: Session, handover_id: int) -> MediumHandover:
    handover = db.get(MediumHandover, handover_id, with_for_update=True)
    if handover is None:
        raise NotFound(f"handover_id: no medium handover {handover_id}")
    if handover.status != PENDING:
        raise Conflict(f"handover {handover_id} is {handover.status}")
    return handover


def accept_medium(db: Session, by: Actor, handover_id: int) -> MediumHandover:
    """The incoming person confirms receipt: the medium is in their custody, by this event."""
    account_id = by.account_id
    handover = _pending(db, handover_id)
    if handover.to_custodian_id != account_id:
        raise Conflict(f"handover {handover_id}: only the incoming custodian accepts it")
    medium = db.get_one(StorageMedium, handover.medium_id)
    medium.custodian_id = account_id
    handover.status, handover.closed_at = COMPLETED, utcnow()
    medium.custody_idx = record(
        db,
        by,
        MEDIUM_ACCEPT,
        f"medium:{medium.label}",
        reason="custody changed",
        details={
            "handover": handover.id,
            "from_custodian_id": handover.from_custodian_id,
            "notify": "security_officer",
            "grant": medium_digest(medium),
        },
    )
    return handover


def cancel_medium(db: Session, by: Actor, handover_id: int) -> MediumHandover:
    """Either party withdraws a pending handover; the medium stays where it was."""
    account_id = by.account_id
    handover = _pending(db, handover_id)
    if account_id not in (handover.from_custodian_id, handover.to_custodian_id):
        raise Conflict(f"handover {handover_id}: only its two parties may cancel it")
    handover.status, handover.closed_at = CANCELLED, utcnow()
    medium = db.get_one(StorageMedium, handover.medium_id)
    record(db, by, MEDIUM_CANCEL, f"medium:{medium.label}", details={"handover": handover.id})
    return handover


@dataclass(frozen=True)
class MediumRow:
    medium: StorageMedium
    custodian: str
    backed: bool
    pending_to: str | None


def media_listing(db: Session) -> list[MediumRow]:
    """Every medium with its custodian, whether a grant event backs that custody, and the
    person a pending handover would give it to."""
    names = {a.id: a.username for a in db.scalars(select(StaffAccount))}
    pending = {
        h.medium_id: names.get(h.to_custodian_id, "")
        for h in db.scalars(select(MediumHandover).where(MediumHandover.status == PENDING))
    }
    return [
        MediumRow(m, names.get(m.custodian_id, ""), medium_backed(db, m), pending.get(m.id))
        for m in db.scalars(select(StorageMedium).order_by(StorageMedium.label))
    ]
