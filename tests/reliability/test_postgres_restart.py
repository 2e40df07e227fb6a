"""PostgreSQL restarted under load: a real `certsvc serve` keeps answering — 503 with
Retry-After while the database is down, never a 500 or a hang — its pool reconnects by itself
once the database is back, and nothing is half-written (every value stored has its audit event
and the reverse; `certsvc audit verify` passes).

The restart is an immediate shutdown (what a crash or a kill does to the server) of a private
cluster made for this test, so that the shared one on 5432 is never disturbed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from audit.models import AuditEventRow
from server_support import CERTSVC, free_port, serving
from vault import synthetic
from vault.models import VaultEntry


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    assert found, "PostgreSQL's server binaries are missing (Debian package postgresql)"
    return found[-1].parent


@dataclass
class Cluster:
    data: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        _as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.data / "server.log"),
            *args,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self.pg_ctl("-o", options, "start")

    def crash(self) -> None:
        """Stop at once, as a crash would: clients are cut, recovery runs on the next start."""
        self.pg_ctl("-m", "immediate", "stop")


def _as_postgres(*command: str, check: bool = True) -> None:
    # initdb and postgres refuse to run as root.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=check, capture_output=True, timeout=120)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    home = Path(tempfile.mkdtemp(prefix="certsvc-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    bin_dir = _postgres_bin()
    data = home / "data"
    _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    cluster = Cluster(data, free_port(), bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        _as_postgres(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop", check=False
        )
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Load:
    """Registrars tokenising fresh ID numbers from a few threads until told to stop."""

    base: str
    token: str
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=30) as client:
            while not self.stop.is_set():
                body = {"items": [{"kind": "id_number", "value": synthetic.id_number(rng)}]}
                try:
                    answer = client.post("/api/v1/vault/tokenise", json=body)
                except httpx.TransportError as exc:  # the server must not drop the line
                    self.failures.append(type(exc).__name__)
                    continue
                token = answer.json()["tokens"][0]["token"] if answer.status_code == 200 else None
                if answer.status_code == 503 and not answer.headers["Retry-After"].isdigit():
                    self.failures.append("503 without Retry-After")
                self.answers.append((time.monotonic(), answer.status_code, token))


def test_restart_under_load_fails_cleanly_and_recovers(cluster: Cluster, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CERTSVC_HOME": str(tmp_path / "home"),
        "CERTSVC_DATABASE_URL": cluster.url,
    }
    env.pop("CERTSVC_REDIS_URL", None)
    subprocess.run([CERTSVC, "init"], env=env, check=True, capture_output=True, timeout=300)
    credentials = json.loads((tmp_path / "home" / "credentials.json").read_text())
    token = credentials["accounts"]["registrar"]["api_token"]
    engine = create_engine(cluster.url, poolclass=NullPool)
    with engine.connect() as db:
        events_before = db.scalar(
            select(func.count()).where(AuditEventRow.action == "vault.tokenise")
        )
        entries_before = db.scalar(select(func.count()).select_from(VaultEntry))

    with serving(env=env) as server:
        load = Load(server.base, token)
        threads = [threading.Thread(target=load.run, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        crashed_at = time.monotonic()
        cluster.crash()
        time.sleep(2)
        cluster.start()
        restarted_at = time.monotonic()
        deadline = restarted_at + 30
        while time.monotonic() < deadline and not any(
            at > restarted_at and code == 200 for at, code, _ in load.answers
        ):
            time.sleep(0.2)
        time.sleep(1)
        load.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        health = httpx.get(f"{server.base}/healthz", timeout=10)

    codes = {code for _, code, _ in load.answers}
    assert load.failures == [], "connections dropped instead of answered"
    assert codes <= {200, 503}, server.output
    assert any(crashed_at < at < restarted_at and code == 503 for at, code, _ in load.answers)
    assert any(at > restarted_at and code == 200 for at, code, _ in load.answers), "no recovery"
    assert health.status_code == 200 and health.json()["database"] == "ok"
    # The outage is logged, but not a line per failed request.
    outage_lines = [
        json.loads(line)
        for line in server.output.splitlines()
        if "service.database_unavailable" in line
    ]
    unavailable = sum(code == 503 for _, code, _ in load.answers)
    assert 1 <= len(outage_lines) < unavailable
    assert sum(1 + line["unlogged"] for line in outage_lines) <= unavailable

    stored = {token for _, code, token in load.answers if code == 200}
    with engine.connect() as db:
        events = (
            db.scalar(select(func.count()).where(AuditEventRow.action == "vault.tokenise"))
            - events_before
        )
        tokens = set(db.scalars(select(VaultEntry.token)))
        entries = db.scalar(select(func.count()).select_from(VaultEntry)) - entries_before
    engine.dispose()
    assert stored <= tokens, "a value answered 200 was lost in the restart"
    # One fresh value per request: each request that committed wrote one entry and one event.
    assert entries == events >= len(stored)
    verified = subprocess.run(
        [CERTSVC, "audit", "verify"], env=env, capture_output=True, text=True, timeout=300
    )
    assert verified.returncode == 0, verified.stderr
