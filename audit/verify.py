"""Recompute the whole log from its leaves and check it against every signed checkpoint.

Trusts nothing stored but the leaves' bytes and the checkpoint key: the first entry that was
changed, removed, moved or inserted is named, and a history rewritten wholesale (leaves and
hashes alike) still fails at the first checkpoint it contradicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.checkpoints import InvalidNote, open_note, parse_checkpoint
from audit.events import decode_leaf
from audit.merkle import EMPTY_ROOT, leaf_hash, node_hash
from audit.models import AuditCheckpoint, AuditEventRow, AuditHead, AuditNode

COLUMNS = (
    ("actor", "actor"),
    ("role", "role"),
    ("workstation", "ws"),
    ("action", "action"),
    ("object", "object"),
    ("outcome", "outcome"),
)


@dataclass
class Verdict:
    events: int = 0
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str) -> None:
        self.problems.append(problem)


class CompactRange:
    """Hashes of the perfect subtrees covering leaves [0, size): the tree head, incrementally."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    def append(self, digest: bytes) -> None:
        self.size += 1
        width, current = 1, digest
        while self._stack and self._stack[-1][0] == width:
            _, left = self._stack.pop()
            current = node_hash(left, current)
            width *= 2
        self._stack.append((width, current))

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        current = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            current = node_hash(left, current)
        return current


def verify_leaves(
    rows: Iterable[tuple[int, bytes, tuple[bytes, ...], dict[str, object] | None]],
    checkpoints: dict[int, bytes],
    verdict: Verdict,
) -> CompactRange:
    """Walk (index, leaf, stored copies of its hash, stored columns) in order; stop at the
    first bad entry.

    `checkpoints` maps tree sizes to the roots their signed notes commit to.
    """
    tree = CompactRange()
    for position, (index, leaf, stored_hashes, columns) in enumerate(rows):
        if index != position:
            verdict.fail(
                f"entry {position} is missing (next stored entry is {index})"
                if index > position
                else f"entry {index} appears again at position {position} (inserted row)"
            )
            return tree
        try:
            decoded = decode_leaf(leaf)
        except ValueError:
            verdict.fail(f"entry {position} is not a valid event encoding (changed)")
            return tree
        claimed = decoded.get("i")
        if claimed != position:
            verdict.fail(
                f"entry {position} repeats entry {claimed} (inserted or moved)"
                if isinstance(claimed, int) and claimed < position
                else f"entry {position} holds the event of entry {claimed} (moved)"
            )
            return tree
        digest = leaf_hash(leaf)
        if any(stored != digest for stored in stored_hashes):
            verdict.fail(f"entry {position} was changed (its bytes no longer match its hash)")
            return tree
        changed = [c for c, key in COLUMNS if columns and columns[c] != decoded.get(key)]
        if changed:
            verdict.fail(f"entry {position} was changed (column {changed[0]})")
            return tree
        tree.append(digest)
        expected = checkpoints.get(tree.size)
        if expected is not None and expected != tree.root():
            verdict.fail(
                f"the log's first {tree.size} entries do not match their signed checkpoint: an "
                f"entry before {tree.size} was rewritten"
            )
            return tree
        verdict.events = tree.size
    return tree


def verify_log(db: Session, origin: str, public_key: ec.EllipticCurvePublicKey) -> Verdict:
    verdict = Verdict()
    roots: dict[int, bytes] = {}
    for row in db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)):
        try:
            checkpoint = parse_checkpoint(open_note(row.note, origin, public_key))
        except InvalidNote as exc:
            verdict.fail(f"checkpoint at {row.size}: {exc}")
            return verdict
        if checkpoint.size != row.size or checkpoint.origin != origin:
            verdict.fail(f"checkpoint at {row.size}: its note names another size or origin")
            return verdict
        roots[checkpoint.size] = checkpoint.root_hash
    verdict.checkpoints = len(roots)
    verdict.latest_checkpoint = max(roots, default=None)
    if 0 in roots and roots[0] != EMPTY_ROOT:
        verdict.fail("checkpoint at 0: not the empty tree")
        return verdict

    nodes = {
        idx: bytes(digest)
        for idx, digest in db.execute(
            select(AuditNode.idx, AuditNode.hash).where(AuditNode.level == 0)
        )
    }

    def rows() -> Iterator[tuple[int, bytes, tuple[bytes, ...], dict[str, object] | None]]:
        query = select(AuditEventRow).order_by(AuditEventRow.idx).execution_options(yield_per=1000)
        for row in db.scalars(query):
            copies = (bytes(row.leaf_hash), *((nodes[row.idx],) if row.idx in nodes else ()))
            columns = {column: getattr(row, column) for column, _ in COLUMNS}
            yield row.idx, bytes(row.leaf), copies, columns

    tree = verify_leaves(rows(), roots, verdict)
    if not verdict.ok:
        return verdict
    head = db.scalar(select(AuditHead.size).where(AuditHead.id == 1))
    stored_rows = db.scalar(select(func.count()).select_from(AuditEventRow))
    if verdict.latest_checkpoint is not None and tree.size < verdict.latest_checkpoint:
        verdict.fail(
            f"log truncated: the checkpoint at {verdict.latest_checkpoint} covers entries the "
            f"log no longer holds (first missing: entry {tree.size})"
        )
    elif head != tree.size or stored_rows != tree.size:
        verdict.fail(
            f"log head says {head} entries but {tree.size} are stored: entries from "
            f"{min(head or 0, tree.size)} on were removed or added behind the log's back"
        )
    return verdict
