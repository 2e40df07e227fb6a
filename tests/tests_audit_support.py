"""Helpers of the audit tests: a throwaway certificate for checkpoint keys held in software,
appends from another process, and the database administrator's rewrite of history."""

from __future__ import annotations

import datetime as dt

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from audit.merkle import leaf_hash, node_hash
from audit.models import AuditCheckpoint, AuditEventRow, AuditNode


def self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test audit key")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def append_events(url: str, worker: int, count: int) -> None:
    """A separate process appending `count` events, one transaction each, as a worker would."""
    from audit.events import AuditEvent
    from audit.log import append
    from certsvc.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        for n in range(count):
            with sessions.begin() as db:
                append(db, AuditEvent(f"worker{worker}", "custodian", "signer.sign", str(n), "ok"))
    finally:
        engine.dispose()


def rewrite_history(db: Session, index: int, **changes: object) -> None:
    """What a database administrator can do with write access alone: change the already
    checkpointed event at `index` (e.g. outcome "refused" → "ok"), then make every stored copy
    agree again — its leaf (position and all), its hash, its query columns, every stored subtree
    node — and delete the checkpoints that cover it. Nothing in the database contradicts the
    rewritten history any more."""
    row = db.get_one(AuditEventRow, index)
    record = cbor2.loads(row.leaf)
    record.update(changes)
    row.leaf = cbor2.dumps(record, canonical=True)
    row.leaf_hash = leaf_hash(row.leaf)
    for column, key in (("actor", "actor"), ("role", "role"), ("action", "action")):
        setattr(row, column, record[key])
    row.object, row.outcome, row.workstation = record["object"], record["outcome"], record["ws"]
    db.flush()
    recompute_nodes(db)
    db.execute(delete(AuditCheckpoint).where(AuditCheckpoint.size > index))


def recompute_nodes(db: Session) -> None:
    """Every stored perfect-subtree hash, made again from the stored leaves."""
    digests = [
        leaf_hash(bytes(leaf))
        for leaf in db.scalars(select(AuditEventRow.leaf).order_by(AuditEventRow.idx))
    ]
    db.execute(delete(AuditNode))
    level = 0
    while digests:
        db.execute(
            insert(AuditNode),
            [{"level": level, "idx": i, "hash": h} for i, h in enumerate(digests)],
        )
        digests = [node_hash(digests[i], digests[i + 1]) for i in range(0, len(digests) - 1, 2)]
        level += 1
