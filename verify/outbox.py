"""The register's outbox: every change to a public table also writes, in the same transaction,
the changed row as it must appear in the public database. A relay (`certsvc.relay`) drains it
in id order over an outbound connection into the DMZ; nothing in the DMZ ever reads inward.

Ids are handed out by a one-row counter updated in the writer's transaction: its row lock is
held until commit, so ids commit in the order they were given and a rolled-back change leaves
no gap. A relay that has applied id N may therefore trust that no id below N appears later.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    LargeBinary,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from common.db import Base
from common.dbtypes import UTCDateTime, utcnow
from common.errors import InvalidInput
from verify.models import PUBLIC_MODELS

HEAD_ID = 1


class RegisterOutbox(Base):
    """One change to relay: `kind` is the public table, `payload` the row's every column."""

    __tablename__ = "register_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    relayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class RegisterOutboxHead(Base):
    """The last id handed out (one row, `HEAD_ID`)."""

    __tablename__ = "register_outbox_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger)


MODELS: dict[str, type[Base]] = {str(model.__tablename__): model for model in PUBLIC_MODELS}


def _encode(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def row_payload(row: Base) -> dict[str, Any]:
    """Every column of a public row, as JSON values (bytes base64, dates ISO 8601)."""
    return {column.key: _encode(getattr(row, column.key)) for column in row.__table__.columns}


def row_from_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The column values of `row_payload`'s output, typed back for the table `kind`."""
    model = MODELS.get(kind)
    if model is None:
        raise InvalidInput(f"kind: {kind!r} is not a public table")
    columns = {column.key: column for column in model.__table__.columns}
    if set(payload) != set(columns):
        raise InvalidInput(f"payload: the columns of {kind} differ from the table's")
    values: dict[str, Any] = {}
    for key, value in payload.items():
        kind_of = columns[key].type
        if value is None:
            values[key] = None
        elif isinstance(kind_of, LargeBinary):
            values[key] = base64.b64decode(value, validate=True)
        elif isinstance(kind_of, UTCDateTime):
            values[key] = datetime.fromisoformat(value)
        elif isinstance(kind_of, Date):
            values[key] = date.fromisoformat(value)
        else:
            values[key] = value
    return values


def append(db: Session, kind: str, payload: dict[str, Any]) -> RegisterOutbox:
    """Queue one change in the caller's transaction under the next id (see the module's note)."""
    bumped = db.execute(
        update(RegisterOutboxHead)
        .where(RegisterOutboxHead.id == HEAD_ID)
        .values(last_id=RegisterOutboxHead.last_id + 1)
    )
    if getattr(bumped, "rowcount", 0) != 1:
        db.add(RegisterOutboxHead(id=HEAD_ID, last_id=1))
        db.flush()
    last = db.scalar(select(RegisterOutboxHead.last_id).where(RegisterOutboxHead.id == HEAD_ID))
    assert last is not None
    entry = RegisterOutbox(
        id=last,
        kind=kind,
        payload=json.dumps(payload, ensure_ascii=False, sort_keys=True),
        created_at=utcnow(),
        relayed_at=None,
    )
    db.add(entry)
    db.flush()
    return entry


def record_change(db: Session, row: Base) -> None:
    """What every register writer calls after changing a public row: queue the row as it now
    stands, so the public database ends up with exactly it."""
    kind = str(row.__tablename__)
    if kind not in MODELS:
        raise InvalidInput(f"kind: {kind!r} is not a public table")
    append(db, kind, row_payload(row))


def requeue_all(db: Session, after: int = 0) -> int:
    """Queue every public row as it stands (a new or rebuilt public database, a register
    written before the outbox existed, or an internal database restored behind the public one:
    ids then continue past `after`, the public side's watermark); re-applying a row is
    harmless. How many were queued."""
    db.execute(
        update(RegisterOutboxHead)
        .where(RegisterOutboxHead.id == HEAD_ID, RegisterOutboxHead.last_id < after)
        .values(last_id=after)
    )
    queued = 0
    for model in PUBLIC_MODELS:
        for row in db.scalars(select(model)):
            record_change(db, row)
            queued += 1
    return queued


def prune(db: Session, confirmed: int, keep: int) -> int:
    """Delete relayed rows but those among the last `keep` ids: only rows marked relayed and at
    or below `confirmed` (the public database's own watermark), so an undelivered change is
    never lost. The head keeps the last id, so ids go on from it. How many were deleted."""
    deleted = db.execute(
        delete(RegisterOutbox).where(
            RegisterOutbox.relayed_at.is_not(None),
            RegisterOutbox.id <= min(confirmed, _last_id(db) - keep),
        )
    )
    return int(getattr(deleted, "rowcount", 0))


def _last_id(db: Session) -> int:
    return (
        db.scalar(select(RegisterOutboxHead.last_id).where(RegisterOutboxHead.id == HEAD_ID)) or 0
    )


def backlog(db: Session) -> tuple[int, timedelta | None]:
    """How many changes are not relayed yet, and how long the oldest of them has waited."""
    count, oldest = db.execute(
        select(func.count(), func.min(RegisterOutbox.created_at)).where(
            RegisterOutbox.relayed_at.is_(None)
        )
    ).one()
    if oldest is None:
        return int(count), None
    return int(count), utcnow() - oldest
