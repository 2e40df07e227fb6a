"""Several worker processes appending at once make one linear log: no gap, no fork."""

from __future__ import annotations

import multiprocessing

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.log import size
from audit.models import AuditEventRow
from audit.note import note_key
from audit.publish import CheckpointSigner, publish_checkpoint
from audit.verify import verify_log
from certsvc.settings import Settings
from tests_audit_support import append_events

WORKERS = 4
EACH = 40


def test_concurrent_appends_from_processes(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=append_events, args=(settings.resolved_database_url, worker, EACH))
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * WORKERS

    key = ec.generate_private_key(ec.SECP256R1())
    verifier = note_key("certsvc.test/audit", key.public_key())
    signer = CheckpointSigner(
        "certsvc.test/audit",
        [verifier],
        lambda: [(verifier, lambda d: key.sign(d, ec.ECDSA(hashes.SHA256())))],
    )
    with sessions.begin() as db:
        publish_checkpoint(db, signer)
    with sessions() as db:
        assert size(db) == WORKERS * EACH
        indexes = list(db.scalars(select(AuditEventRow.idx).order_by(AuditEventRow.idx)))
        assert indexes == list(range(WORKERS * EACH))
        per_worker = {
            actor: count
            for actor, count in db.execute(
                select(AuditEventRow.actor, func.count()).group_by(AuditEventRow.actor)
            )
        }
        assert per_worker == {f"worker{w}": EACH for w in range(WORKERS)}
        verdict = verify_log(db, "certsvc.test/audit", signer.keys)
    assert verdict.ok, verdict.problems
