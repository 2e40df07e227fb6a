"""Public verification throughput: the real public node against a bare FastAPI endpoint
returning a constant, both served by uvicorn with the same settings, loaded by the same
client in a separate process, in the same run.

    python bench/verify.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
import httpx
from bench_database import BenchDatabases, add_database_argument
from bench_register import SoftwareBody
from wrk_lookups import WRK_SCRIPT

TARGET = 0.8  # DESIGN.md "Performance"
BARE_APP = """
from fastapi import FastAPI
app = FastAPI()
@app.get("/api/v1/verify/{verification_id}")
async def constant(verification_id: str) -> dict[str, str]:
    return {"status": "valid"}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def public_register(tmp: Path, database_url: str | None) -> tuple[str, list[str], str]:
    """A register-only database (default SQLite) with valid and revoked certificates, each with
    its proof (a trust list signed by a root, a signed revocation list); and the root's
    fingerprint."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from certsvc.models_registry import import_all_models
    from certsvc.public_app import PUBLIC_TABLES
    from common.db import Base
    from verify.payload import new_verification_id

    import_all_models()
    url = database_url or f"sqlite:///{tmp / 'public.db'}"
    engine = create_engine(url)
    # the register's writers also queue each change in the outbox for the relay
    written = (*PUBLIC_TABLES, "register_outbox", "register_outbox_head")
    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in written])
    body = SoftwareBody()
    ids = []
    with Session(engine) as db, db.begin():
        body.publish(db)
        for n in range(200):
            ids.append(body.issue(db))
            if n % 10 == 0:
                body.revoke(db, ids[-1])
    engine.dispose()
    return url, ids + [new_verification_id() for _ in range(40)], body.anchor


def measure(argv: list[str], env: dict[str, str], port: int, seconds: float) -> dict[str, float]:
    """Load one server with wrk (a separate, native process) and read its summary."""
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                "-c32",
                f"-d{seconds:.0f}s",
                "-s",
                env["CERTSVC_BENCH_SCRIPT"],
                f"http://127.0.0.1:{port}",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith("JSON "))
        return dict(json.loads(line[5:]))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    add_database_argument(parser)
    args = parser.parse_args()
    seconds = 8.0 if args.quick else 30.0
    with tempfile.TemporaryDirectory() as tmp_dir, BenchDatabases(args.database_url) as databases:
        tmp = Path(tmp_dir)
        url, ids, anchor = public_register(tmp, databases.fresh())
        (tmp / "bare_app.py").write_text(BARE_APP)
        (tmp / "ids.txt").write_text("\n".join(ids) + "\n")
        (tmp / "load.lua").write_text(WRK_SCRIPT)
        port = free_port()
        env = {
            **os.environ,
            "CERTSVC_DATABASE_URL": url,
            "CERTSVC_HOME": str(tmp / "home"),
            "CERTSVC_VERIFY_RATE_PER_MINUTE": "100000000",
            "CERTSVC_TRUST_ANCHORS": anchor,
            "CERTSVC_BENCH_IDS": str(tmp / "ids.txt"),
            "CERTSVC_BENCH_SCRIPT": str(tmp / "load.lua"),
        }
        ours = measure(
            [
                str(Path(sys.executable).parent / "certsvc"),
                "serve",
                "--public",
                "--port",
                str(port),
            ],
            env,
            port,
            seconds,
        )
        bare = measure(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--app-dir",
                str(tmp),
                "bare_app:app",
            ],
            env,
            port,
            seconds,
        )
    for name, result in (("public node", ours), ("bare endpoint", bare)):
        print(
            f"{name}: {result['rps']:,.0f} req/s, p50 {result['p50']:.1f} ms, "
            f"p99 {result['p99']:.1f} ms, non-2xx or failed {result['errors']:.0f} "
            "(the ids include unknown ones on purpose: their 404s count here)"
        )
    name = databases.result_name("verify")
    print(f"RESULT {name} ratio={ours['rps'] / bare['rps']:.2f} target=>={TARGET}")


if __name__ == "__main__":
    main()
