"""Signing and storing checkpoints. Before signing a new tree head the log proves it extends
both the last checkpoint stored in the database and the one anchored outside it
(`audit.anchor`), so it never signs two inconsistent views of its history — not even after
someone rewrote the database, leaves, hashes and checkpoints alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audit.anchor import Anchor, Anchored
from audit.checkpoints import Checkpoint, parse_checkpoint
from audit.log import AuditUnavailable, consistency_proof, size, tree_root
from audit.merkle import leaf_hash, verify_consistency
from audit.models import AuditCheckpoint, AuditEventRow, AuditHead
from audit.note import NoteKey, SignBytes, open_note, sign_note
from common.dbtypes import utcnow
from common.errors import ServiceFault


class InconsistentLog(ServiceFault):
    """The stored tree no longer extends the last signed checkpoint: history was rewritten."""


@dataclass(frozen=True)
class CheckpointSigner:
    """The log's identity (origin, also the key name in its notes), every key its checkpoints
    may carry (to read the last one), and `open`: called once per checkpoint, before the tree
    head is read, it may append the signatures' own audit events (which the checkpoint then
    covers) and returns one (key, signing function) per signature line."""

    origin: str
    keys: Sequence[NoteKey]
    open: Callable[[], Sequence[tuple[NoteKey, SignBytes]]]


@dataclass(frozen=True)
class Published:
    """The newest checkpoint, and whether it was signed just now. When an anchor was given:
    the signed checkpoint and the leaf hashes from `start` to its size, for the anchor to take
    once the checkpoint is committed (`anchor_in`); `restart` for a fresh anchor."""

    row: AuditCheckpoint
    signed: bool
    checkpoint: Checkpoint | None = None
    start: int = 0
    hashes: list[bytes] = field(default_factory=list)
    restart: bool = False

    def anchor_in(self, anchor: Anchor) -> bool:
        """Move `anchor` to the new checkpoint: call it after the transaction committed, so
        that nothing is anchored that the database then lost."""
        if not self.signed or self.checkpoint is None:
            return False
        if self.restart:
            anchor.start(self.row.note, self.checkpoint, self.hashes)
            return True
        return anchor.advance(self.row.note, self.checkpoint, self.start, self.hashes)


def latest_checkpoint(db: Session) -> AuditCheckpoint | None:
    return db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc())).first()


def publish_checkpoint(
    db: Session, signer: CheckpointSigner, anchor: Anchor | None = None, *, restart: bool = False
) -> Published:
    """Sign a checkpoint for the whole log, unless the newest one already covers it.

    With `anchor`, the new head must extend the anchored checkpoint; with no anchored
    checkpoint yet, the log must hold no signed checkpoint either (a log signed before has to
    be anchored on purpose: `restart`, which skips the anchor and returns every leaf hash, for
    a fresh anchor)."""
    # Holding the head row keeps appenders out while the tree head is computed and signed.
    tree_size = db.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(size=AuditHead.size)
        .returning(AuditHead.size)
    ).scalar_one_or_none()
    if tree_size is None:
        raise AuditUnavailable("audit log is not initialised — run `certsvc init`")
    latest = latest_checkpoint(db)
    anchored = anchor.read(signer.keys) if anchor is not None and not restart else None
    if anchor is not None and anchored is None and latest is not None and not restart:
        raise InconsistentLog(
            "the audit log has signed checkpoints but none is anchored outside the database: "
            "refusing to sign; run `certsvc init` (first anchor) or `certsvc audit reanchor`"
        )
    # Proved before any signature is asked for: a refusal costs no token operation.
    start, hashes = 0, []
    if anchored is not None:
        start = anchored.size
        hashes = _anchored_extension(db, anchored, tree_size, tree_root(db, tree_size))
    elif anchor is not None:
        hashes = _leaf_hashes(db, 0, tree_size)
    if latest is not None and latest.size == tree_size:
        if restart:
            raise ValueError("a fresh anchor is taken over a new entry recording why")
        return Published(latest, signed=False)
    signers = signer.open()
    before, tree_size = tree_size, size(db)  # with the signatures' own events, if any
    root = tree_root(db, tree_size)
    if latest is not None:
        previous = parse_checkpoint(open_note(latest.note, signer.keys).text)
        _require_extension(db, previous, tree_size, root)
    if anchor is not None:
        hashes += _leaf_hashes(db, before, tree_size)
    checkpoint = Checkpoint(signer.origin, tree_size, root)
    note = sign_note(checkpoint.text(), signers)
    row = AuditCheckpoint(size=tree_size, root_hash=root, note=note, signed_at=utcnow())
    db.add(row)
    db.flush()
    return Published(row, True, checkpoint, start, hashes, restart)


def _require_extension(db: Session, previous: Checkpoint, tree_size: int, root: bytes) -> None:
    proof = consistency_proof(db, previous.size, tree_size) if previous.size else []
    consistent = previous.size == 0 or verify_consistency(
        previous.size, tree_size, proof, previous.root_hash, root
    )
    if not consistent:
        raise InconsistentLog(
            f"the audit log in the database does not extend its checkpoint stored at "
            f"{previous.size}: refusing to sign; run `certsvc audit verify`"
        )


def _anchored_extension(
    db: Session, anchored: Anchored, tree_size: int, root: bytes
) -> list[bytes]:
    """The hashes of the entries after the anchored ones, once the tree of `tree_size` with
    `root` is proved to extend the anchored tree — from the anchor's own compact range, so
    nothing the database says about the anchored entries is taken on trust."""
    drifted = InconsistentLog(
        f"the audit log in the database does not extend the checkpoint anchored outside it at "
        f"{anchored.size} (rewritten, truncated or rolled back): refusing to sign; run "
        f"`certsvc audit verify`"
    )
    if tree_size < anchored.size:
        raise drifted
    hashes = _leaf_hashes(db, anchored.size, tree_size)
    tree = anchored.compact()
    for digest in hashes:
        tree.append(digest)
    if tree.root() != root:
        raise drifted
    return hashes


def _leaf_hashes(db: Session, start: int, end: int) -> list[bytes]:
    """Hashes recomputed from the leaves' bytes, not read from the stored copies."""
    query = (
        select(AuditEventRow.leaf)
        .where(AuditEventRow.idx >= start, AuditEventRow.idx < end)
        .order_by(AuditEventRow.idx)
    )
    hashes = [leaf_hash(bytes(leaf)) for leaf in db.scalars(query)]
    if len(hashes) != end - start:
        raise InconsistentLog(f"audit log entries between {start} and {end} are missing")
    return hashes
