"""Appending to the log and reading roots and proofs from it.

`append` writes in the caller's transaction: the action and its event commit together or not
at all (fail closed). A refused attempt stays on record although its action rolls back
(`audit.trail.keep_events`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from audit.events import AuditEvent, encode_leaf
from audit.merkle import (
    Node,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    nodes_for,
    range_hash,
    root_hash,
)
from audit.models import AuditEventRow, AuditHead, AuditNode
from common.dbtypes import utcnow
from common.errors import ServiceFault


class AuditUnavailable(ServiceFault):
    """The event could not be appended, so the action it records must not happen."""


# Built once: appends and proofs are the hot path, and building SQL expressions costs more
# than running them.
_HEAD = cast(Table, AuditHead.__table__)
_BUMP_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(size=_HEAD.c.size + bindparam("count"))
    .returning(_HEAD.c.size)
)
_INSERT_EVENT = insert(cast(Table, AuditEventRow.__table__))
_INSERT_NODES = insert(cast(Table, AuditNode.__table__))


def append(db: Session, event: AuditEvent) -> int:
    """Append `event` as the next leaf and return its index (O(log n) rows touched)."""
    return append_many(db, [event])[0]


def append_many(db: Session, events: Sequence[AuditEvent]) -> list[int]:
    """Append `events` as consecutive leaves, in order; their indexes.

    One head update, one node read and two multi-row inserts, however many events: a batch
    of signatures records its events at the cost of a few statements.
    """
    if not events:
        return []
    # Taking the head row first serialises appenders: PostgreSQL locks the row until commit,
    # SQLite takes its write lock.
    connection = db.connection()  # Core, not the ORM: this is the hot path
    bumped = connection.execute(_BUMP_HEAD, {"count": len(events)}).scalar_one_or_none()
    if bumped is None:
        raise AuditUnavailable("audit log is not initialised — run `certsvc init`")
    first = int(bumped) - len(events)
    occurred_at = utcnow()
    rows = []
    digests = []
    for offset, event in enumerate(events):
        leaf = encode_leaf(event, first + offset, occurred_at)
        digests.append(leaf_hash(leaf))
        rows.append(
            {
                "idx": first + offset,
                "leaf": leaf,
                "leaf_hash": digests[-1],
                "occurred_at": occurred_at,
                "actor": event.actor,
                "role": event.role,
                "workstation": event.workstation,
                "action": event.action,
                "object": event.object,
                "outcome": event.outcome,
            }
        )
    connection.execute(_INSERT_EVENT, rows)
    connection.execute(_INSERT_NODES, _new_nodes(db, first, digests))
    return [first + offset for offset in range(len(events))]


def _new_nodes(db: Session, first: int, digests: list[bytes]) -> list[dict[str, object]]:
    """The perfect-subtree nodes that leaves first, first+1, ... close, bottom up: each
    trailing 1-bit of a leaf's index closes a subtree one level up."""
    closing = []
    for index in range(first, first + len(digests)):
        level = 0
        while (index >> level) & 1:
            closing.append((level, (index >> level) - 1))
            level += 1
    # Left siblings wholly before this batch are stored already; the others are made here.
    known = read_nodes(db, [(lv, ix) for lv, ix in closing if (ix + 1) << lv <= first])
    made: dict[tuple[int, int], bytes] = {}
    nodes: list[dict[str, object]] = []
    for offset, digest in enumerate(digests):
        index = first + offset
        made[(0, index)] = digest
        nodes.append({"level": 0, "idx": index, "hash": digest})
        current, level = digest, 0
        while (index >> level) & 1:
            sibling = (level, (index >> level) - 1)
            current = node_hash(made.get(sibling) or known[sibling], current)
            level += 1
            made[(level, index >> level)] = current
            nodes.append({"level": level, "idx": index >> level, "hash": current})
    return nodes


def size(db: Session) -> int:
    return int(db.scalar(select(AuditHead.size).where(AuditHead.id == 1)) or 0)


def read_nodes(db: Session, keys: Iterable[Node]) -> dict[Node, bytes]:
    """Stored perfect-subtree hashes, fetched by primary key in one query."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    # An OR of primary-key equalities: both databases answer it from the index (a row-value
    # IN over (level, idx) is a full scan on SQLite).
    terms = " OR ".join(f"(level = :l{n} AND idx = :i{n})" for n in range(len(wanted)))
    params: dict[str, int] = {}
    for n, (level, idx) in enumerate(wanted):
        params[f"l{n}"] = level
        params[f"i{n}"] = idx
    query = text(f"SELECT level, idx, hash FROM audit_nodes WHERE {terms}")  # noqa: S608
    rows = db.connection().execute(query, params)
    found = {(int(level), int(idx)): bytes(digest) for level, idx, digest in rows}
    if len(found) != len(wanted):
        missing = next(key for key in wanted if key not in found)
        raise AuditUnavailable(f"audit tree node {missing} is missing")
    return found


def tree_root(db: Session, tree_size: int) -> bytes:
    nodes = read_nodes(db, nodes_for([(0, tree_size)])) if tree_size else {}
    return root_hash(tree_size, nodes.__getitem__)


def inclusion_proof(db: Session, index: int, tree_size: int) -> list[bytes]:
    ranges = inclusion_ranges(index, tree_size)
    nodes = read_nodes(db, nodes_for(ranges))
    return [range_hash(start, end, nodes.__getitem__) for start, end in ranges]


def consistency_proof(db: Session, old_size: int, new_size: int) -> list[bytes]:
    ranges = consistency_ranges(old_size, new_size)
    nodes = read_nodes(db, nodes_for(ranges))
    return [range_hash(start, end, nodes.__getitem__) for start, end in ranges]
