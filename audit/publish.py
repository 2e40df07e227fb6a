"""Signing and storing checkpoints. Before signing a new tree head the log proves it consistent
with the last one it signed, so it never signs two inconsistent views of its history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audit.checkpoints import Checkpoint, open_note, parse_checkpoint, sign_note
from audit.log import AuditUnavailable, consistency_proof, size, tree_root
from audit.merkle import verify_consistency
from audit.models import AuditCheckpoint, AuditHead
from common.dbtypes import utcnow
from common.errors import ServiceFault


class InconsistentLog(ServiceFault):
    """The stored tree no longer extends the last signed checkpoint: history was rewritten."""


@dataclass(frozen=True)
class CheckpointSigner:
    """The log's identity (origin, also the note key name) and its checkpoint key. `open` is
    called once per checkpoint, before the tree head is read: it may append the signature's own
    audit event (which the checkpoint then covers), and returns the function that signs the
    note — ASN.1 DER ECDSA-SHA256 over the bytes it is given."""

    origin: str
    public_key: ec.EllipticCurvePublicKey
    open: Callable[[], Callable[[bytes], bytes]]


def latest_checkpoint(db: Session) -> AuditCheckpoint | None:
    return db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc())).first()


def publish_checkpoint(db: Session, signer: CheckpointSigner) -> AuditCheckpoint:
    """Sign a checkpoint for the whole log, unless the newest one already covers it."""
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
    if latest is not None and latest.size == tree_size:
        return latest
    sign_der = signer.open()
    tree_size = size(db)  # with the signature's own event, if `open` recorded one
    root = tree_root(db, tree_size)
    if latest is not None:
        previous = parse_checkpoint(open_note(latest.note, signer.origin, signer.public_key))
        proof = consistency_proof(db, previous.size, tree_size) if previous.size else []
        consistent = previous.size == 0 or verify_consistency(
            previous.size, tree_size, proof, previous.root_hash, root
        )
        if not consistent:
            raise InconsistentLog(
                f"audit log of {tree_size} entries does not extend the checkpoint at "
                f"{previous.size}: refusing to sign; run `certsvc audit verify`"
            )
    note = sign_note(
        Checkpoint(signer.origin, tree_size, root).text(),
        signer.origin,
        signer.public_key,
        sign_der,
    )
    checkpoint = AuditCheckpoint(size=tree_size, root_hash=root, note=note, signed_at=utcnow())
    db.add(checkpoint)
    db.flush()
    return checkpoint
