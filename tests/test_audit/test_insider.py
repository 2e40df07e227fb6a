"""The insider the audit log exists for: a database administrator, with write access to the
database and nothing else, against a running `certsvc serve` (PostgreSQL and SQLite).

They turn a checkpointed refusal into an approval, make every stored copy agree again and
delete the checkpoints above it; or they bring back an older backup. Either way the service
signs nothing over that history (`/healthz` says the audit log is inconsistent, the published
checkpoint stays the last good one, one log line says why), and `certsvc audit verify` names the
entry — where the database alone, rewritten along, would say "intact"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append, size
from audit.models import AuditCheckpoint
from certsvc.settings import Settings
from server_support import Server, serving
from tests_audit_support import rewrite_history

CERTSVC = str(Path(sys.executable).parent / "certsvc")
CHECKPOINT = "/.well-known/certsvc/audit-checkpoint"
# Checkpoints as soon as anything happens, so that a refusal shows within a second.
FAST = {"CERTSVC_AUDIT_CHECKPOINT_SECONDS": "1", "CERTSVC_AUDIT_CHECKPOINT_EVENTS": "1"}
REFUSAL = "audit checkpoint not signed"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env or dict(os.environ),
    )


def _decisions(sessions: sessionmaker[Session], count: int) -> int:
    """The officers at work; the index of the one refusal among them."""
    with sessions.begin() as db:
        first = size(db)
        for n in range(count):
            outcome, reason = (
                ("refused", "criminal-record check not clear") if n == 2 else ("ok", "")
            )
            append(
                db,
                AuditEvent(
                    "officer1",
                    "officer",
                    "certify.decision",
                    f"case:{first + n}",
                    outcome,
                    reason=reason,
                ),
            )
    return first + 2


def _published_at_least(server: Server, entries: int) -> str:
    """The published checkpoint once it covers `entries` entries."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = httpx.get(server.base + CHECKPOINT, timeout=10)
        if answer.status_code == 200 and int(answer.text.split("\n")[1]) >= entries:
            return answer.text
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint over {entries} entries was published")


def _inconsistent(server: Server) -> httpx.Response:
    """`/healthz` once it reports the audit log inconsistent, then a few checkpointer ticks."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = httpx.get(server.base + "/healthz", timeout=10)
        if health.json().get("audit_log") == "inconsistent":
            time.sleep(3)
            return httpx.get(server.base + "/healthz", timeout=10)
        time.sleep(0.2)
    raise AssertionError("the service never said its audit log was inconsistent")


def _newest_checkpoint(sessions: sessionmaker[Session]) -> int | None:
    with sessions() as db:
        return db.scalar(select(func.max(AuditCheckpoint.size)))


def test_a_rewritten_history_is_refused_by_the_service_and_named(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    assert _run("init").returncode == 0
    env = {**os.environ, **FAST}
    with serving(env=env) as server:
        refused = _decisions(sessions, 6)
        with sessions() as db:
            logged = size(db)
        good = _published_at_least(server, logged)
        kept = tmp_path / "kept-checkpoint.txt"
        kept.write_text(good)

        with sessions.begin() as db:
            rewrite_history(db, refused, outcome="ok", reason="")
        _decisions(sessions, 3)  # the service goes on working
        health = _inconsistent(server)

        assert health.status_code == 503
        assert (health.json()["status"], health.json()["audit_log"]) == ("degraded", "inconsistent")
        assert httpx.get(server.base + CHECKPOINT, timeout=10).text == good
        assert (_newest_checkpoint(sessions) or 0) < refused, "a checkpoint signed over the rewrite"
    refusals = [line for line in server.output.splitlines() if REFUSAL in line]
    assert len(refusals) == 1, server.output
    assert "does not extend the checkpoint anchored outside it" in refusals[0]

    verified = _run("audit", "verify", "--checkpoint", str(kept))
    assert verified.returncode == 1
    assert f"entry {refused} is not the one anchored outside the database" in verified.stderr
    # With the anchor gone, the database alone says nothing is wrong: that is the attack.
    fooled = _run(
        "audit", "verify", env={**os.environ, "CERTSVC_AUDIT_ANCHOR_DIR": str(tmp_path / "none")}
    )
    assert fooled.returncode == 0 and "intact" in fooled.stdout
    # A kept copy of the published checkpoint catches it too, without the anchor.
    alone = _run(
        "audit",
        "verify",
        "--checkpoint",
        str(kept),
        env={**os.environ, "CERTSVC_AUDIT_ANCHOR_DIR": str(tmp_path / "none")},
    )
    assert alone.returncode == 1 and f"the checkpoint in {kept}" in alone.stderr


def test_an_older_backup_brought_back_is_refused_by_the_service_and_named(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    assert _run("init").returncode == 0
    env = {**os.environ, **FAST}
    backup = tmp_path / "certsvc.backup"
    with serving(env=env) as server:
        _decisions(sessions, 4)
        with sessions() as db:
            _published_at_least(server, size(db))
        assert _run("backup", str(backup)).returncode == 0
        at_backup = json.loads(backup.read_bytes().split(b"\n")[1])["audit_events"]
        _decisions(sessions, 5)
        with sessions() as db:
            good = _published_at_least(server, size(db))

    restored = _run("restore", str(backup))
    assert restored.returncode == 1
    assert "anchored outside the database" in restored.stderr

    with serving(env=env) as server:
        _decisions(sessions, 2)
        health = _inconsistent(server)
        assert health.status_code == 503 and health.json()["audit_log"] == "inconsistent"
        assert httpx.get(server.base + CHECKPOINT, timeout=10).text == good
        assert (_newest_checkpoint(sessions) or 0) <= at_backup
    assert len([line for line in server.output.splitlines() if REFUSAL in line]) == 1

    verified = _run("audit", "verify")
    assert verified.returncode == 1
    assert f"entry {at_backup} is not the one anchored outside the database" in verified.stderr
