"""`certsvc init` and `certsvc serve` as an operator runs them: real processes, real tokens."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.accounts import Role, StaffAccount
from certsvc.settings import Settings
from server_support import free_port, serving
from signer.models import HsmToken, KeyPurpose, SigningKey

CERTSVC = str(Path(sys.executable).parent / "certsvc")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env or dict(os.environ),
    )


def test_init_provisions_everything_once(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    first = _run("init")
    assert first.returncode == 0, first.stderr
    assert "created USBKey USBKEY-01" in first.stderr
    credentials = settings.credentials_file
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    secrets = json.loads(credentials.read_text())
    assert set(secrets["accounts"]) == {role.value for role in Role}

    with sessions() as db:
        assert {a.role for a in db.scalars(select(StaffAccount))} == set(Role)
        tokens = {t.label: t for t in db.scalars(select(HsmToken))}
        keys = list(db.scalars(select(SigningKey)))
    assert set(tokens) == {"CERTSVC-ROOT", "USBKEY-01", "USBKEY-AUDIT", "VAULT-KEK"}
    assert {k.purpose for k in keys} == set(KeyPurpose)
    root = next(k for k in keys if k.purpose is KeyPurpose.ROOT)
    root_cert = x509.load_der_x509_certificate(root.certificate_der)
    for key in keys:
        x509.load_der_x509_certificate(key.certificate_der).verify_directly_issued_by(root_cert)
    # Every secret the demo needs is in the file, and nothing but names went to the terminal.
    for entry in secrets["tokens"].values():
        assert entry["user_pin"] not in first.stdout + first.stderr
    for entry in secrets["accounts"].values():
        assert entry["password"] not in first.stdout + first.stderr

    second = _run("init")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stderr
    assert json.loads(credentials.read_text()) == secrets
    with sessions() as db:
        assert len(list(db.scalars(select(SigningKey)))) == len(keys)


def test_serve_answers_healthz_green(settings: Settings) -> None:
    assert _run("init").returncode == 0
    with serving() as server:
        health = httpx.get(f"{server.base}/healthz", timeout=5)
        assert health.status_code == 200
        answer = health.json()
        # what init published waits in the outbox: no relay is configured
        assert answer.pop("register_outbox_backlog") > 0
        assert answer.pop("register_outbox_lag_seconds") >= 0
        assert answer == {
            "status": "ok",
            "database": "ok",
            "hsm": "ok",
            "tokens_registered": 4,
            "tokens_present": 4,
            "tokens_locked": 0,
            "audit_log": "ok",
            "expiring_within_90_days": 0,
            "expiring_within_30_days": 0,
            "expiring_within_7_days": 0,
            "audit_witnesses": "ok",
        }
        assert httpx.get(f"{server.base}/openapi.json").status_code == 200
    assert "Traceback" not in server.output


def test_bad_module_path_is_one_line(settings: Settings) -> None:
    env = {**os.environ, "CERTSVC_PKCS11_MODULE": "/nonexistent/libvendor.so"}
    assert _run("init").returncode == 0
    done = _run("serve", "--port", str(free_port()), env=env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "CERTSVC_PKCS11_MODULE" in lines[0] and "/nonexistent/libvendor.so" in lines[0]


def test_module_that_is_not_pkcs11_is_one_line(settings: Settings, tmp_path: Path) -> None:
    impostor = tmp_path / "libimpostor.so"
    impostor.write_bytes(b"not an ELF file")
    env = {**os.environ, "CERTSVC_PKCS11_MODULE": str(impostor)}
    assert _run("init").returncode == 0
    done = _run("hsm", "status", env=env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a loadable PKCS#11 module" in lines[0], done.stderr


@pytest.mark.parametrize("command", [["init"], ["hsm", "status"]])
def test_bad_database_url_is_one_line_without_password(
    settings: Settings, command: list[str]
) -> None:
    env = {
        **os.environ,
        "CERTSVC_DATABASE_URL": "postgresql+psycopg://certsvc:s3cretpassw0rd@127.0.0.1:1/none",
    }
    done = _run(*command, env=env)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "s3cretpassw0rd" not in done.stderr + done.stdout
