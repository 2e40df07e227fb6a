"""Issuing does not slow down as the signed history grows: the time per certificate with many
signed documents (and their audit events) already stored, against the same with few, in the
same run on the same database. Every per-chunk look-up goes through an index, so the ratio
should stay near 1 (a look-up that read the whole table made it grow without bound: issue 22).

The history is written straight into the tables (documents and audit events like the signer's,
in bulk) — only its size matters here. Each point is the best of three batches (a shared machine
varies from run to run). Default: 1,000 against 100,000 stored; `--quick` stops at 20,000 to
stay under a minute, and says so.

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
from sqlalchemy import Table, func, insert, select

from audit.events import AuditEvent
from audit.log import append_many
from common.dbtypes import utcnow
from signer.models import SignedDocumentRow

TARGET = 1.2
SMALL = 1_000
BATCH = 500
ROUNDS = 3
FILL = 5_000


def stored(service: SigningService) -> int:
    with service.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(SignedDocumentRow)) or 0)


def fill(service: SigningService, up_to: int) -> None:
    """Signed documents and their audit events until `up_to` documents are stored."""
    table = cast(Table, SignedDocumentRow.__table__)
    start = stored(service)
    for first in range(start, up_to, FILL):
        numbers = range(first, min(first + FILL, up_to))
        with service.sessions.begin() as db:
            events = [
                AuditEvent("custodian", "custodian", "signer.sign", f"certificate:H{n:07d}", "ok")
                for n in numbers
            ]
            indexes = append_many(db, events)
            now = utcnow()
            db.connection().execute(
                insert(table),
                [
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
                        "batch": "history",
                        "signed_at": now,
                    }
                    for n, index in zip(numbers, indexes, strict=True)
                ],
            )


def per_certificate(service: SigningService, prefix: str) -> float:
    """Best seconds per certificate over ROUNDS batches of new certificates."""
    best = float("inf")
    for round_ in range(ROUNDS):
        batch = certificates(BATCH, f"{prefix}{round_}-")
        started = time.perf_counter()
        report = service.signer.sign_batch(service.actor, service.key_id, batch)
        best = min(best, (time.perf_counter() - started) / BATCH)
        if len(report.signed) != BATCH:
            raise SystemExit(f"the signer did not sign the batch: {report}")
    return best


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
        service.signer.sign_batch(service.actor, service.key_id, certificates(100, "W"))
        fill(service, SMALL)
        small_at = stored(service)
        small = per_certificate(service, "S")
        fill(service, large)
        large_at = stored(service)
        big = per_certificate(service, "L")

    if args.quick and not args.large:
        print(f"quick run: {large:,} documents at the large point instead of 100,000")
    print(
        f"{databases.label}: {small * 1e6:,.0f} µs per certificate with {small_at:,} signed "
        f"documents stored, {big * 1e6:,.0f} µs with {large_at:,}"
    )
    name = databases.result_name("issue_scaling")
    print(f"RESULT {name} ratio={big / small:.2f} target=<={TARGET}")


if __name__ == "__main__":
    main()
