"""The public side as deployed (docs/public-side.md), stood up by `dmz_cluster` exactly as
tests/test_verify/test_public_cluster.py stands it up: internal database → `certsvc register
relay` (default settings) → public PostgreSQL primary → hot standby (`pg_basebackup -R`) →
`certsvc serve --public` nodes on the standby → nginx.

1. Throughput: requests/s through nginx with one and with two public nodes, loaded by `wrk`
   (one thread, a separate native process). The ratio 2-node/1-node is the RESULT; on a 2-core
   machine wrk, nginx and both PostgreSQL servers share the cores with the nodes, so two nodes
   cannot double anything here: the figure says how much of a second core the second node gets.
2. Propagation: N revocations committed inside, one after another, each timed from its commit
   until the balancer answers "revoked" for it, while wrk keeps reading through nginx; p50/p99.

    python bench/public_cluster.py [--quick] [--revocations N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
import dmz_cluster
import httpx
from bench_database import BenchDatabases, add_database_argument
from bench_register import SoftwareBody
from wrk_lookups import WRK_SCRIPT

TARGET = 1.6
P99_TARGET_SECONDS = 2.0


def wrk(base: str, seconds: float, env: dict[str, str]) -> list[str]:
    return ["wrk", "-t1", "-c32", f"-d{seconds:.0f}s", "-s", env["CERTSVC_BENCH_SCRIPT"], base]


def measure(base: str, seconds: float, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(wrk(base, seconds, env), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stderr.strip()}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("JSON "))
    return dict(json.loads(line[5:]))


def internal_register(url: str, body: SoftwareBody, count: int) -> list[str]:
    """The inside: a migrated database with `count` certificates published (outbox filled)."""
    from certsvc.db import make_engine, make_writer_sessionmaker, upgrade_database

    upgrade_database(url)
    engine = make_engine(url)
    try:
        with make_writer_sessionmaker(engine).begin() as db:
            body.publish(db)
            return [body.issue(db) for _ in range(count)]
    finally:
        engine.dispose()


@contextmanager
def relaying(env: dict[str, str], log: Path) -> Iterator[None]:
    """`certsvc register relay` with its default batch and interval, until the context ends."""
    with log.open("w") as output:
        relay = subprocess.Popen(
            [dmz_cluster.CERTSVC, "register", "relay"], env=env, stdout=output, stderr=output
        )
        try:
            yield
        finally:
            relay.terminate()
            relay.wait(timeout=30)


def wait_status(client: httpx.Client, vid: str, wanted: str, seconds: float = 60) -> float:
    """Poll the balancer until it says `wanted` of `vid`; when it did (time.monotonic())."""
    deadline = time.monotonic() + seconds
    while True:
        answer = client.get(f"/api/v1/verify/{vid}")
        if answer.status_code == 200 and answer.json().get("status") == wanted:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"the balancer never said {wanted!r} within {seconds:.0f} s")
        time.sleep(0.005)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, about a minute")
    parser.add_argument(
        "--revocations", type=int, default=None, help="how many (default 200; 20 with --quick)"
    )
    add_database_argument(parser)
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 20.0
    revocations = args.revocations or (20 if args.quick else 200)
    print(
        "public_cluster: wrk (1 thread), nginx, the PostgreSQL primary and standby and the "
        f"public nodes all share this machine's {os.cpu_count()} cores: the 2-node figure is "
        "bounded by them, not by the nodes"
    )
    started = time.monotonic()
    body = SoftwareBody()
    with (
        tempfile.TemporaryDirectory() as tmp_dir,
        BenchDatabases(args.database_url) as databases,
        dmz_cluster.dmz() as side,
    ):
        tmp = Path(tmp_dir)
        internal_url = databases.fresh() or f"sqlite:///{tmp / 'internal.db'}"
        ids = internal_register(internal_url, body, max(200, revocations))
        from certsvc.relay import init_public

        init_public(side.primary_url).dispose()
        (tmp / "ids.txt").write_text("\n".join(ids[revocations:] or ids) + "\n")
        (tmp / "load.lua").write_text(WRK_SCRIPT)
        env = {
            **os.environ,
            "CERTSVC_HOME": str(tmp / "inside"),
            "CERTSVC_DATABASE_URL": internal_url,
            "CERTSVC_PUBLIC_DATABASE_URL": side.primary_url,
            "CERTSVC_TRUST_ANCHORS": body.anchor,
            "CERTSVC_VERIFY_RATE_PER_MINUTE": "100000000",
            "CERTSVC_BENCH_IDS": str(tmp / "ids.txt"),
            "CERTSVC_BENCH_SCRIPT": str(tmp / "load.lua"),
        }
        with (
            relaying(env, tmp / "relay.log"),
            dmz_cluster.with_nodes(side, 2, tmp / "dmz", env),
            dmz_cluster.nginx([side.nodes[0].port], tmp / "nginx-1") as one,
        ):
            assert side.balancer is not None
            with httpx.Client(base_url=side.balancer.base, timeout=10) as client:
                wait_status(client, ids[-1], "valid")  # relayed and replayed
            ready = time.monotonic() - started
            rates = {1: measure(one.base, seconds, env)}
            rates[2] = measure(side.balancer.base, seconds, env)
            delays = propagation(side.balancer.base, body, internal_url, ids, env, revocations)
    print(f"set-up {ready:.0f} s, all {time.monotonic() - started:.0f} s")
    for count, result in rates.items():
        print(
            f"{count} public node(s) behind nginx: {result['rps']:,.0f} req/s, "
            f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, "
            f"non-2xx or failed {result['errors']:.0f}"
        )
    p50, p99 = percentile(delays, 0.5), percentile(delays, 0.99)
    print(
        f"propagation p50={p50:.3f}s p99={p99:.3f}s n={len(delays)} (revocation committed inside "
        f"→ the balancer answers revoked, under wrk read load; target p99 < {P99_TARGET_SECONDS} s"
        f"; mean {statistics.fmean(delays):.3f}s, max {max(delays):.3f}s)"
    )
    ratio = rates[2]["rps"] / rates[1]["rps"]
    print(f"RESULT public_cluster ratio={ratio:.2f} target=>={TARGET}")


def propagation(
    base: str,
    body: SoftwareBody,
    internal_url: str,
    ids: list[str],
    env: dict[str, str],
    count: int,
) -> list[float]:
    """`count` revocations one after another, each timed from its commit inside to the
    balancer's "revoked", while wrk reads through the balancer; the delays in seconds."""
    from certsvc.db import make_engine, make_writer_sessionmaker

    engine = make_engine(internal_url)
    writer = make_writer_sessionmaker(engine)
    load = subprocess.Popen(
        wrk(base, 3600, env), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    delays = []
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for vid in ids[:count]:
                with writer.begin() as db:
                    body.revoke(db, vid)
                committed = time.monotonic()
                delays.append(wait_status(client, vid, "revoked") - committed)
    finally:
        load.terminate()
        load.wait(timeout=30)
        engine.dispose()
    return delays


if __name__ == "__main__":
    sys.exit(main())
