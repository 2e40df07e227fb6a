"""The service and two witnesses (real `certsvc witness serve` processes on loopback), on SQLite
and PostgreSQL, with the checkpoint keys on the audit token: a checkpoint is published once two
witnesses cosigned it; with one stopped it is not, and the service says so (CLI, log line, audit
event, `/healthz`); shown another history — an older backup restored and re-anchored — the
witnesses that cosigned the lost entries refuse and the service reports it. The published note is
checked by the verifier written from the specs (`spec_note`)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certsvc.app import create_app
from certsvc.audit_keys import published_vkeys
from certsvc.checkpointer import WITNESS_QUORUM, Checkpointer
from certsvc.settings import Settings, get_settings, reset_settings
from init_cache import initialised
from server_support import CERTSVC
from spec_note import open_note, parse_checkpoint, verify_cosignature
from witness_support import make_witness, running

CHECKPOINT = "/.well-known/certsvc/audit-checkpoint"


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=dict(os.environ),
        input=stdin,
    )


def _alerts(sessions: sessionmaker[Session]) -> list[dict[str, object]]:
    with sessions() as db:
        query = select(AuditEventRow.leaf).where(AuditEventRow.action == WITNESS_QUORUM)
        return [decode_leaf(leaf) for leaf in db.scalars(query)]


def test_checkpoints_are_published_only_once_the_witnesses_cosigned_them(
    settings: Settings,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    initialised(settings)
    with sessions() as db:
        log_vkeys = published_vkeys(db, settings)
    first = make_witness(tmp_path, "inspect.test/w1")
    second = make_witness(tmp_path, "neighbour.test/w2")
    with running(first, log_vkeys), running(second, log_vkeys):
        configured = [{"url": w.url, "vkey": w.vkey} for w in (first, second)]
        monkeypatch.setenv("CERTSVC_AUDIT_WITNESSES", json.dumps(configured))
        monkeypatch.setenv("CERTSVC_AUDIT_WITNESS_QUORUM", "2")
        reset_settings()
        witnessed = get_settings()
        backup = tmp_path / "before.backup"
        assert _run("backup", str(backup)).returncode == 0

        # Both cosign: the published note carries the log's signatures and both cosignatures.
        # (What init published before witnesses were configured stays published as it was.)
        assert (
            _run("staff", "add", "early", "--role", "registrar", "--generate-password").returncode
            == 0
        )
        done = _run("audit", "checkpoint")
        assert done.returncode == 0, done.stderr
        assert "2 of 2 witnesses cosigned" in done.stdout
        app = create_app(witnessed)
        client = TestClient(app)  # no lifespan: no background checkpointer
        published = client.get(CHECKPOINT).text
        text, _ = open_note(published, log_vkeys)
        assert parse_checkpoint(text).size > 0
        for w in (first, second):
            assert verify_cosignature(published, w.vkey) > 0
        kept = tmp_path / "kept.txt"
        kept.write_text(published)
        verified = _run("audit", "verify", "--checkpoint", str(kept))
        assert verified.returncode == 0, verified.stderr
        assert "cosigned by inspect.test/w1, neighbour.test/w2" in verified.stdout
        assert client.get("/healthz").json()["audit_witnesses"] == "ok"

        # One witness stopped: the next checkpoint is signed but not published.
        second.stop()
        assert (
            _run(
                "staff", "add", "latecomer", "--role", "registrar", "--generate-password"
            ).returncode
            == 0
        )
        below = _run("audit", "checkpoint")
        assert below.returncode == 1
        assert "neighbour.test/w2 unreachable" in below.stderr
        assert "NOT published" in below.stderr
        assert client.get(CHECKPOINT).text == published
        health = client.get("/healthz")
        assert (health.status_code, health.json()["audit_witnesses"]) == (503, "unwitnessed")
        checkpointer = Checkpointer(witnessed, app.state.checkpoint_key, app.state.sessionmaker)
        with caplog.at_level(logging.ERROR, logger="certsvc.checkpointer"):
            checkpointer.tick()
            checkpointer.tick()
        lines = [r.getMessage() for r in caplog.records if "not published" in r.getMessage()]
        assert len(lines) == 1 and "neighbour.test/w2 unreachable" in lines[0], lines
        [alert] = _alerts(sessions)
        assert alert["outcome"] == "failed" and "w2 unreachable" in str(alert["reason"])
        app.state.engine.dispose()

    # Shown another history: an older backup brought back and re-anchored on purpose. The
    # witnesses remember what they cosigned; the service reports the refusal.
    with running(first, log_vkeys), running(second, log_vkeys):
        configured = [{"url": w.url, "vkey": w.vkey} for w in (first, second)]
        monkeypatch.setenv("CERTSVC_AUDIT_WITNESSES", json.dumps(configured))
        assert _run("restore", str(backup)).returncode == 1  # the anchor objects
        officer = json.loads(settings.credentials_file.read_text())["accounts"]["security_officer"]
        reanchored = _run(
            "audit",
            "reanchor",
            "--officer",
            "security_officer",
            "--reason",
            "restore of the backup, ticket OPS-18",
            "--password-stdin",
            stdin=officer["password"] + "\n",
        )
        assert reanchored.returncode == 0, reanchored.stderr
        forked = _run("audit", "checkpoint")
        assert forked.returncode == 1
        # Both witnesses cosigned entries the restore lost: both refuse.
        for name in ("inspect.test/w1", "neighbour.test/w2"):
            [refusal] = [line for line in forked.stderr.splitlines() if name in line]
            assert "another history" in refusal or "rolled back" in refusal, refusal
        assert "0 of 2 witnesses cosigned" in forked.stdout
