"""The security officer's audit search: the API's event query (`audit.query.query_events`),
each event found proven against the published checkpoint with its inclusion proof, computed
from the log's stored tree and checked here from the event's own leaf. A leaf changed in the
database, or a tree that no longer reaches the published root, shows as a failed proof."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session

from audit.checkpoints import Checkpoint, parse_checkpoint
from audit.events import decode_leaf
from audit.log import inclusion_proof, size
from audit.merkle import leaf_hash, verify_inclusion
from audit.note import InvalidNote, split_note
from audit.query import EventFilter, query_events
from certsvc.routes.audit import log_names
from common.errors import InvalidInput

PAGE = 100
# Search fields and their length limits (the log's own column widths or less).
FIELDS = {"actor": 64, "key": 128, "action": 64, "outcome": 16, "since": 10, "until": 10}


@dataclass(frozen=True)
class Published:
    """The published checkpoint: its note, the parsed body, the names that signed it."""

    note: str
    checkpoint: Checkpoint
    signers: list[str]


@dataclass(frozen=True)
class Found:
    index: int
    occurred_at: str
    actor: str
    action: str
    object: str
    outcome: str
    reason: str
    proof: str  # "proven" | "pending" (newer than the checkpoint) | "failed"


def published(note: str | None) -> Published | None:
    """The note the service publishes, read (its signatures were checked by the holder)."""
    if note is None:
        return None
    try:
        text, lines = split_note(note)
        checkpoint = parse_checkpoint(text)
    except InvalidNote:
        return None
    return Published(note, checkpoint, [line.name for line in lines])


def _day(form: dict[str, str], name: str) -> datetime | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), time(), UTC)
    except ValueError:
        raise InvalidInput(f"{name}: a date as YYYY-MM-DD (UTC day)") from None


def parse_filter(db: Session, form: dict[str, str]) -> EventFilter:
    """The search form as the API's filter (a USBKey found by label or serial, as there);
    `until` is inclusive of its day."""
    until = _day(form, "until")
    key = form.get("key", "").strip()
    return EventFilter(
        actor=form.get("actor", "").strip() or None,
        action=form.get("action", "").strip() or None,
        objects=log_names(db, key) if key else (),
        outcome=form.get("outcome", "").strip() or None,
        since=_day(form, "since"),
        until=until + timedelta(days=1) if until else None,
    )


def search(db: Session, where: EventFilter, checkpoint: Checkpoint | None) -> list[Found]:
    """The first `PAGE` events matching `where`, each with its proof's verdict."""
    tree = min(checkpoint.size, size(db)) if checkpoint is not None else 0
    found = []
    for row in query_events(db, where, -1, PAGE):
        if checkpoint is None or row.idx >= checkpoint.size:
            proof = "pending"
        elif row.idx >= tree:  # the published tree is longer than the log: rolled back
            proof = "failed"
        else:
            hashes = inclusion_proof(db, row.idx, checkpoint.size)
            good = verify_inclusion(
                leaf_hash(row.leaf), row.idx, checkpoint.size, hashes, checkpoint.root_hash
            )
            proof = "proven" if good else "failed"
        leaf = decode_leaf(row.leaf)
        found.append(
            Found(
                row.idx,
                row.occurred_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                row.actor,
                row.action,
                row.object,
                row.outcome,
                str(leaf.get("reason", "")),
                proof,
            )
        )
    return found
