"""Two worker processes signing the same batch with one key, on one database and one token
directory: no document is signed twice and the key's usage limit is never exceeded."""

from __future__ import annotations

import multiprocessing

from sqlalchemy import select

from signer.models import SignedDocumentRow, SigningKey
from signing_env import SigningEnv, sign_in_worker

DOCUMENTS = 60
LIMIT = 45


def test_two_workers_never_sign_a_document_twice_nor_past_the_limit(env: SigningEnv) -> None:
    with env.sessions.begin() as db:
        db.scalars(
            select(SigningKey).where(SigningKey.label == "certificate-1")
        ).one().usage_limit = LIMIT
    env.tokens.reset()
    env.bay.set_latency(env.usbkey["serial"], 3)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    queue = context.Queue()
    workers = [
        context.Process(
            target=sign_in_worker, args=("certificate-1", DOCUMENTS, 4, reverse, start, queue)
        )
        for reverse in (False, True)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    with env.sessions() as db:
        rows = list(db.scalars(select(SignedDocumentRow)))
        key = db.scalars(select(SigningKey).where(SigningKey.label == "certificate-1")).one()
    signed = [document_id for result in results for document_id in result]
    assert len(signed) == len(set(signed)) == LIMIT
    assert sorted(r.document_id for r in rows) == sorted(signed)
    assert key.usage_count == LIMIT
    if env.settings.resolved_database_url.startswith("postgresql"):
        # Row-lock waiters queue in order; SQLite's busy handler may starve one worker.
        assert all(results), "both workers should have signed part of the batch"
