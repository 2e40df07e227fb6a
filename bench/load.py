"""Multi-worker load on PostgreSQL and Redis: `certsvc serve --workers 2` under a bounded mix of
public verifications (valid, revoked, unknown) and staff intake (tokenising new identifiers),
from a load process of its own on loopback. Afterwards every count must reconcile: each intake
request answered 200 is one audit event and its values are in the vault; no answer is a 5xx.
Prints p50/p99 per kind. The ratio is the share of requests answered without a server error.

    python bench/load.py [--quick]      (needs PostgreSQL on 127.0.0.1:5432 and Redis)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.pool import NullPool

from certsvc.audit.models import AuditEventRow
from certsvc.vault import synthetic
from certsvc.vault.models import VaultEntry

POSTGRES = os.environ.get(
    "CERTSVC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS = os.environ.get("CERTSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
TARGET = 1.0
CERTSVC = str(Path(sys.executable).parent / "certsvc")


async def load(base: str, ids: list[str], token: str, seconds: float) -> dict[str, Any]:
    """Bounded in time: 24 concurrent clients, one in six doing intake."""
    rng = random.Random(7)  # noqa: S311 (which request to send, not a secret)
    latencies: dict[str, list[float]] = {"verify": [], "intake": []}
    statuses: dict[str, int] = {}
    intake_ok = 0
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def worker(n: int) -> None:
            nonlocal intake_ok
            while time.monotonic() < stop:
                started = time.perf_counter()
                if n % 6 == 0:
                    kind = "intake"
                    body = {"items": [{"kind": "id_number", "value": synthetic.id_number(rng)}]}
                    answer = await client.post(
                        "/api/v1/vault/tokenise",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    intake_ok += answer.status_code == 200
                else:
                    kind = "verify"
                    answer = await client.get(f"/api/v1/verify/{rng.choice(ids)}")
                latencies[kind].append(time.perf_counter() - started)
                statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1

        await asyncio.gather(*(worker(n) for n in range(24)))
    return {"latencies": latencies, "statuses": statuses, "intake_ok": intake_ok}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1e3 if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    args = parser.parse_args()
    seconds = 15.0 if args.quick else 60.0
    admin = create_engine(
        make_url(POSTGRES).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    name = f"certsvc_load_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(POSTGRES).set(drivername="postgresql+psycopg", database=name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "CERTSVC_HOME": str(Path(tmp) / "home"),
                "CERTSVC_DATABASE_URL": url.render_as_string(hide_password=False),
                "CERTSVC_REDIS_URL": REDIS,
                "CERTSVC_VERIFY_RATE_PER_MINUTE": "100000000",
            }
            subprocess.run(
                [CERTSVC, "demo", "--out", str(Path(tmp) / "demo")],
                env=env,
                check=True,
                capture_output=True,
            )
            manifest = json.loads((Path(tmp) / "demo" / "manifest.json").read_text())
            ids = [m["verification_url"].rsplit("/", 1)[1] for m in manifest]
            ids.append("A" * 26)  # unknown
            credentials = json.loads((Path(tmp) / "home" / "credentials.json").read_text())
            token = credentials["accounts"]["registrar"]["api_token"]
            engine = create_engine(env["CERTSVC_DATABASE_URL"], poolclass=NullPool)
            with engine.connect() as db:
                events_before = db.scalar(
                    select(func.count()).where(AuditEventRow.action == "vault.tokenise")
                )
                entries_before = db.scalar(select(func.count()).select_from(VaultEntry))
            port = 18000 + secrets.randbelow(1000)
            server = subprocess.Popen(
                [CERTSVC, "serve", "--workers", "2", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                        break
                    except httpx.TransportError:
                        time.sleep(0.3)
                result = asyncio.run(load(f"http://127.0.0.1:{port}", ids, token, seconds))
            finally:
                server.terminate()
                server.wait(timeout=30)
            with engine.connect() as db:
                events = (
                    db.scalar(select(func.count()).where(AuditEventRow.action == "vault.tokenise"))
                    - events_before
                )
                entries = db.scalar(select(func.count()).select_from(VaultEntry)) - entries_before
            engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
    statuses = result["statuses"]
    total = sum(statuses.values())
    errors = sum(n for code, n in statuses.items() if code.startswith("5"))
    for kind, values in result["latencies"].items():
        print(
            f"{kind}: {len(values):,} requests, p50 {percentile(values, 0.5):.1f} ms, "
            f"p99 {percentile(values, 0.99):.1f} ms"
        )
    print(f"statuses: {dict(sorted(statuses.items()))}")
    print(
        f"intake answered 200: {result['intake_ok']}; audit events: {events}; "
        f"new vault entries: {entries} (at most one per request: numbers may repeat)"
    )
    if events != result["intake_ok"] or entries > result["intake_ok"]:
        raise SystemExit("counts do not reconcile")
    print(f"RESULT load ratio={(total - errors) / total:.3f} target=>={TARGET}")


if __name__ == "__main__":
    main()
