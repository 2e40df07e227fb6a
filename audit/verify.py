"""Recompute the whole log from its leaves and check it against every signed checkpoint, and
against what is kept outside the database: the anchor and checkpoints someone saved.

Trusts nothing stored but the leaves' bytes and the checkpoint keys: the first entry that was
changed, removed, moved or inserted is named. A history rewritten wholesale — leaves, hashes,
stored nodes, and the checkpoints above the change deleted — still fails: at the first entry
whose hash differs from the anchored one, or at the first kept checkpoint it contradicts. Keys
are trusted as the log announces them (`audit.keychain`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.anchor import Anchor, AnchorDamaged
from audit.checkpoints import Checkpoint, parse_checkpoint
from audit.events import decode_leaf, leaf_time
from audit.keychain import KEY_ADDED, KeyChain, announced_key
from audit.merkle import EMPTY_ROOT, CompactRange, leaf_hash
from audit.models import AuditCheckpoint, AuditEventRow, AuditHead, AuditNode
from audit.note import InvalidNote, NoteKey, open_note

# Query columns beside each leaf, and the leaf's name for each.
COLUMNS = (
    ("actor", "actor"),
    ("role", "role"),
    ("workstation", "ws"),
    ("action", "action"),
    ("object", "object"),
    ("outcome", "outcome"),
    ("occurred_at", "t"),
)
ANCHORED = "the checkpoint anchored outside the database"
Row = tuple[int, bytes, tuple[bytes, ...], dict[str, object] | None]


@dataclass
class Verdict:
    events: int = 0
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    anchored: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str) -> None:
        self.problems.append(problem)


@dataclass(frozen=True)
class Kept:
    """A checkpoint note kept outside the database (a copy an auditor saved), and its name in
    messages (`the checkpoint in FILE`)."""

    label: str
    note: str


@dataclass
class Walk:
    """What the leaves are checked against as they are read in order."""

    chain: KeyChain
    # Signed checkpoints stored in the database, by size.
    stored: dict[int, str] = field(default_factory=dict)
    # Roots from outside the database, by size, with their names.
    outside: dict[int, list[tuple[str, bytes]]] = field(default_factory=dict)
    anchored: int = 0
    anchored_hashes: Iterator[bytes] = field(default_factory=lambda: iter(()))


def verify_leaves(rows: Iterable[Row], walk: Walk, origin: str, verdict: Verdict) -> CompactRange:
    """Walk (index, leaf, stored copies of its hash, stored columns) in order; stop at the
    first bad entry."""
    tree = CompactRange()
    for position, (index, leaf, stored_hashes, columns) in enumerate(rows):
        problem = _entry_problem(position, index, leaf, stored_hashes, columns, walk)
        if problem is not None:
            verdict.fail(problem)
            return tree
        tree.append(leaf_hash(leaf))
        problem = _checkpoint_problem(tree, walk, origin, verdict)
        if problem is not None:
            verdict.fail(problem)
            return tree
        verdict.events = tree.size
    return tree


def _entry_problem(
    position: int,
    index: int,
    leaf: bytes,
    stored_hashes: tuple[bytes, ...],
    columns: dict[str, object] | None,
    walk: Walk,
) -> str | None:
    if index != position:
        return (
            f"entry {position} is missing (next stored entry is {index})"
            if index > position
            else f"entry {index} appears again at position {position} (inserted row)"
        )
    try:
        decoded = decode_leaf(leaf)
    except ValueError:
        return f"entry {position} is not a valid event encoding (changed)"
    claimed = decoded.get("i")
    if claimed != position:
        return (
            f"entry {position} repeats entry {claimed} (inserted or moved)"
            if isinstance(claimed, int) and claimed < position
            else f"entry {position} holds the event of entry {claimed} (moved)"
        )
    digest = leaf_hash(leaf)
    if any(stored != digest for stored in stored_hashes):
        return f"entry {position} was changed (its bytes no longer match its hash)"
    if columns:
        changed = [column for column, key in COLUMNS if columns[column] != decoded.get(key)]
        if changed:
            return f"entry {position} was changed (column {changed[0]})"
    if position < walk.anchored and next(walk.anchored_hashes) != digest:
        return (
            f"entry {position} is not the one anchored outside the database (checkpoint at "
            f"{walk.anchored}): it was changed after it was checkpointed, or the log was rolled "
            f"back before it and written again"
        )
    try:
        walk.chain.saw(decoded)
    except InvalidNote as exc:
        return f"entry {position} announces a checkpoint key it cannot name ({exc})"
    return None


def _checkpoint_problem(
    tree: CompactRange, walk: Walk, origin: str, verdict: Verdict
) -> str | None:
    note = walk.stored.get(tree.size)
    if note is not None:
        try:
            checkpoint = parse_checkpoint(walk.chain.open(note).text)
        except InvalidNote as exc:
            return f"checkpoint at {tree.size}: {exc}"
        if checkpoint.size != tree.size or checkpoint.origin != origin:
            return f"checkpoint at {tree.size}: its note names another size or origin"
        if checkpoint.root_hash != tree.root():
            return (
                f"the log's first {tree.size} entries do not match their signed checkpoint: an "
                f"entry before {tree.size} was rewritten"
            )
        verdict.checkpoints += 1
        verdict.latest_checkpoint = tree.size
    for label, root in walk.outside.get(tree.size, []):
        if root != tree.root():
            return (
                f"the log's first {tree.size} entries do not match {label}: an entry before "
                f"{tree.size} was rewritten"
            )
    return None


def _outside_checkpoint(label: str, note: str, keys: Sequence[NoteKey], origin: str) -> Checkpoint:
    checkpoint = parse_checkpoint(open_note(note, keys).text)
    if checkpoint.origin != origin:
        raise InvalidNote(f"it is a checkpoint of another log ({checkpoint.origin})")
    return checkpoint


def _first_keys(
    db: Session, keys: Sequence[NoteKey], first_checkpoint: int | None
) -> list[NoteKey]:
    """The keys trusted from the start: all but those the log announces after its first
    checkpoint (those are trusted once a checkpoint covers their announcement)."""
    if first_checkpoint is None:
        return list(keys)
    later: list[NoteKey] = []
    query = select(AuditEventRow.leaf).where(
        AuditEventRow.action == KEY_ADDED, AuditEventRow.idx >= first_checkpoint
    )
    for leaf in db.scalars(query):
        try:
            announced = announced_key(decode_leaf(leaf))
        except (ValueError, InvalidNote):
            continue  # the walk names the entry
        if announced is not None:
            later.append(announced[1])
    return [key for key in keys if key not in later]


def verify_log(
    db: Session,
    origin: str,
    keys: Sequence[NoteKey],
    anchor: Anchor | None = None,
    kept: Sequence[Kept] = (),
) -> Verdict:
    """Check the database's log: every entry against its stored hashes and columns, every
    stored checkpoint (opened with the keys the log trusts at that point), the anchor's hash
    of every anchored entry, and the root of every `kept` checkpoint."""
    verdict = Verdict()
    stored = {
        size: note
        for size, note in db.execute(
            select(AuditCheckpoint.size, AuditCheckpoint.note).order_by(AuditCheckpoint.size)
        )
    }
    walk = Walk(KeyChain(_first_keys(db, keys, min(stored, default=None))), stored)
    references: list[tuple[str, Checkpoint]] = []
    try:
        anchored = anchor.read(keys) if anchor is not None else None
    except AnchorDamaged as exc:
        verdict.fail(str(exc))
        return verdict
    if anchored is not None:
        walk.anchored = anchored.size
        walk.anchored_hashes = anchor.leaves(anchored.size) if anchor is not None else iter(())
        verdict.anchored = anchored.size
        references.append((ANCHORED, anchored.checkpoint))
    for item in kept:
        try:
            references.append(
                (item.label, _outside_checkpoint(item.label, item.note, keys, origin))
            )
        except InvalidNote as exc:
            verdict.fail(f"{item.label}: {exc}")
            return verdict
    for label, checkpoint in references:
        walk.outside.setdefault(checkpoint.size, []).append((label, checkpoint.root_hash))
    if 0 in stored:
        try:
            empty = parse_checkpoint(walk.chain.open(stored[0]).text)
        except InvalidNote as exc:
            verdict.fail(f"checkpoint at 0: {exc}")
            return verdict
        if empty.root_hash != EMPTY_ROOT:
            verdict.fail("checkpoint at 0: not the empty tree")
            return verdict

    nodes = {
        idx: bytes(digest)
        for idx, digest in db.execute(
            select(AuditNode.idx, AuditNode.hash).where(AuditNode.level == 0)
        )
    }

    def rows() -> Iterator[Row]:
        query = select(AuditEventRow).order_by(AuditEventRow.idx).execution_options(yield_per=1000)
        for row in db.scalars(query):
            copies = (bytes(row.leaf_hash), *((nodes[row.idx],) if row.idx in nodes else ()))
            columns = {column: _column(row, column) for column, _ in COLUMNS}
            yield row.idx, bytes(row.leaf), copies, columns

    try:
        tree = verify_leaves(rows(), walk, origin, verdict)
    except AnchorDamaged as exc:
        verdict.fail(str(exc))
        return verdict
    if not verdict.ok:
        return verdict
    _missing(tree.size, max(stored, default=0), references, verdict)
    if not verdict.ok:
        return verdict
    head = db.scalar(select(AuditHead.size).where(AuditHead.id == 1))
    stored_rows = db.scalar(select(func.count()).select_from(AuditEventRow))
    if head != tree.size or stored_rows != tree.size:
        verdict.fail(
            f"log head says {head} entries but {tree.size} are stored: entries from "
            f"{min(head or 0, tree.size)} on were removed or added behind the log's back"
        )
    return verdict


def _column(row: AuditEventRow, column: str) -> object:
    value = getattr(row, column)
    return leaf_time(value) if isinstance(value, datetime) else value


def _missing(
    held: int, latest_stored: int, references: Sequence[tuple[str, Checkpoint]], verdict: Verdict
) -> None:
    """A checkpoint covering more entries than the database holds: the log lost its tail."""
    if latest_stored > held:
        verdict.fail(
            f"log truncated: the checkpoint at {latest_stored} covers entries the log no longer "
            f"holds (first missing: entry {held})"
        )
        return
    for label, checkpoint in references:
        if checkpoint.size > held:
            verdict.fail(
                f"{label} covers {checkpoint.size} entries but the database holds {held}: "
                f"entries from {held} on are missing (the log was truncated, or a backup older "
                f"than that checkpoint was restored)"
            )
            return
