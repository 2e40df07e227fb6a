"""Issuing does not slow down as the signed history grows: the time per certificate with many
signed documents already stored, against the same with few, in the same run on the same
database. Every per-chunk look-up goes through an index, so the ratio should stay near 1 (a
look-up that read the whole table made it grow without bound: issue 22).

The history is written straight into the tables (documents and audit events like the signer's,
in bulk) — only its size matters here. A shared machine varies from run to run, so the two
points are interleaved: the history's documents are put in, a batch is timed, they are taken
out again, a batch is timed, three times over; each point is its best batch. (The audit log
keeps its events throughout: its look-ups go by primary key, and `bench/audit.py` measures
them.) Default: 1,000 documents against 100,000; `--quick` stops at 20,000 to stay under a
minute, and says so.

    python bench/issue_scaling.py [--quick] [--large N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path
from typing import cast

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
from bench_database import BenchDatabases, add_database_argument
from bench_signing import SigningService, certificates, signing_service
from sqlalchemy import Table, delete, func, insert, select, text

from audit.events import AuditEvent
from audit.log import append_many
from common.dbtypes import utcnow
from signer.models import SignedDocumentRow

TARGET = 1.2
SMALL = 1_000
BATCH = 500
ROUNDS = 3
FILL = 5_000
HISTORY = "history"
INSERT = insert(cast(Table, SignedDocumentRow.__table__))


def stored(service: SigningService) -> int:
    with service.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(SignedDocumentRow)) or 0)


def history(service: SigningService, count: int) -> list[dict[str, object]]:
    """`count` signed documents as the signer stores them, each with its audit event appended
    now (in transactions of FILL); the documents themselves are returned, not stored."""
    rows: list[dict[str, object]] = []
    for first in range(0, count, FILL):
        numbers = range(first, min(first + FILL, count))
        with service.sessions.begin() as db:
            events = [
                AuditEvent("custodian", "custodian", "signer.sign", f"certificate:H{n:07d}", "ok")
                for n in numbers
            ]
            indexes = append_many(db, events)
        now = utcnow()
        rows.extend(
            {
                "kind": "certificate",
                "document_id": f"H{n:07d}",
                "payload_sha256": hashlib.sha256(b"%d" % n).hexdigest(),
                "cose": b"\x84" + bytes(100),
                "signing_key_id": service.key_id,
                "kid": bytes(8),
                "audit_index": index,
                "signed_by": "custodian",
                "workstation": "ws-custodian-01",
                "batch": HISTORY,
                "signed_at": now,
            }
            for n, index in zip(numbers, indexes, strict=True)
        )
    return rows


def store(service: SigningService, rows: list[dict[str, object]]) -> None:
    for first in range(0, len(rows), FILL):
        with service.sessions.begin() as db:
            db.connection().execute(INSERT, rows[first : first + FILL])


def remove(service: SigningService) -> None:
    with service.sessions.begin() as db:
        db.execute(delete(SignedDocumentRow).where(SignedDocumentRow.batch == HISTORY))


def settle(service: SigningService) -> None:
    """Leave the database as time leaves it after a bulk change, before timing: SQLite's WAL
    checkpointed, PostgreSQL's statistics up to date (its autovacuum's work)."""
    with service.sessions.begin() as db:
        if db.get_bind().dialect.name == "sqlite":
            db.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        else:
            db.execute(text("ANALYZE signed_documents"))


def per_certificate(service: SigningService, prefix: str) -> float:
    """Seconds per certificate for one batch of new certificates."""
    batch = certificates(BATCH, prefix)
    started = time.perf_counter()
    report = service.signer.sign_batch(service.actor, service.key_id, batch)
    elapsed = (time.perf_counter() - started) / BATCH
    if len(report.signed) != BATCH:
        raise SystemExit(f"the signer did not sign the batch: {report}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    parser.add_argument("--large", type=int, help="documents stored at the large point")
    add_database_argument(parser)
    args = parser.parse_args()
    large = args.large or (20_000 if args.quick else 100_000)

    with (
        tempfile.TemporaryDirectory() as tmp,
        BenchDatabases(args.database_url) as databases,
        signing_service(Path(tmp) / "home", databases.fresh()) as service,
    ):
        service.signer.sign_batch(service.actor, service.key_id, certificates(SMALL, "W"))
        rows = history(service, large - SMALL)
        smalls: list[float] = []
        bigs: list[float] = []
        small_at: list[int] = []
        for round_ in range(ROUNDS):
            store(service, rows)
            settle(service)
            large_at = stored(service)
            bigs.append(per_certificate(service, f"L{round_}-"))
            remove(service)
            settle(service)
            small_at.append(stored(service))
            smalls.append(per_certificate(service, f"S{round_}-"))
    small, big = min(smalls), min(bigs)

    if args.quick and not args.large:
        print(f"quick run: {large:,} documents at the large point instead of 100,000")
    print(
        f"{databases.label}: {small * 1e6:,.0f} µs per certificate with "
        f"{small_at[0]:,}–{small_at[-1]:,} signed documents stored, {big * 1e6:,.0f} µs with "
        f"{large_at:,} (best of {ROUNDS} interleaved batches of {BATCH} each)"
    )
    name = databases.result_name("issue_scaling")
    print(f"RESULT {name} ratio={big / small:.2f} target=<={TARGET}")


if __name__ == "__main__":
    main()
