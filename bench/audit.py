"""Audit log: append rate, and inclusion / consistency proof time at a small and a large tree,
measured in the same run on the same database. The proof at the large size should cost at most
3x the proof at the small size (O(log n) stored-node lookups, not O(n)).

    python bench/audit.py [--quick] [--events N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
from bench_database import BenchDatabases, add_database_argument
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append, consistency_proof, inclusion_proof
from certsvc.db import make_engine, make_sessionmaker, upgrade_database

TARGET = 3.0
SMALL = 1_000
BATCH = 1_000


def fill(sessions: sessionmaker[Session], total: int) -> float:
    """Append `total` events in transactions of BATCH; return events per second."""
    started = time.perf_counter()
    for start in range(0, total, BATCH):
        with sessions.begin() as db:
            for n in range(start, min(start + BATCH, total)):
                append(db, AuditEvent("custodian", "custodian", "signer.sign", f"K/{n % 7}", "ok"))
        if start and start % 100_000 == 0:
            print(f"  {start:,} events appended")
    return total / (time.perf_counter() - started)


def proof_time(sessions: sessionmaker[Session], tree_size: int, rounds: int) -> float:
    """Mean seconds for one inclusion proof plus one consistency proof at `tree_size`."""
    rng = random.Random(tree_size)  # noqa: S311  (which leaves to prove, not a secret)
    with sessions() as db:
        started = time.perf_counter()
        for _ in range(rounds):
            inclusion_proof(db, rng.randrange(tree_size), tree_size)
            consistency_proof(db, rng.randrange(1, tree_size), tree_size)
        return (time.perf_counter() - started) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    parser.add_argument("--events", type=int, help="size of the large tree")
    add_database_argument(parser)
    args = parser.parse_args()
    large = args.events or (50_000 if args.quick else 1_000_000)
    rounds = 200 if args.quick else 1_000

    with tempfile.TemporaryDirectory() as tmp, BenchDatabases(args.database_url) as databases:
        url = databases.fresh() or f"sqlite:///{Path(tmp) / 'audit.db'}"
        upgrade_database(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        rate = fill(sessions, SMALL)
        small = proof_time(sessions, SMALL, rounds)
        rate = fill(sessions, large - SMALL) if large > SMALL else rate
        big = proof_time(sessions, large, rounds)
        engine.dispose()

    print(f"append: {rate:,.0f} events/s ({databases.label}, transactions of {BATCH})")
    print(f"proofs at {SMALL:,}: {small * 1e3:.3f} ms; at {large:,}: {big * 1e3:.3f} ms")
    print(f"RESULT {databases.result_name('audit')} ratio={big / small:.2f} target=<={TARGET}")


if __name__ == "__main__":
    main()
