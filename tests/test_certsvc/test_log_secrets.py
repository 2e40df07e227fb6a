"""No password and no API token in any log, whatever the client does: failed and successful
logins, wrong and misplaced tokens, failed workstation proofs, CLI commands, and uvicorn's own
access log under a real server."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from certsvc.accounts import Role
from certsvc.cli import app as cli_app
from certsvc.log_redaction import redact
from certsvc.workstations import sign_request
from service_helpers import MakeStaff

WATCHED_LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "fastapi", "sqlalchemy")
# The test's own HTTP client logs the URLs it requests: that is the misbehaving client's log,
# not the service's.
CLIENT_LOGGERS = ("httpx", "httpcore")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Collect]:
    """Everything logged at DEBUG and above, including loggers that do not propagate."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    collect = Collect()
    collect.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).addHandler(collect)
    yield collect
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).removeHandler(collect)


def service_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record caught by caplog, message and traceback, except the HTTP client's."""
    return [
        f"{record.getMessage()}\n{record.exc_text or ''}"
        for record in caplog.records
        if not record.name.startswith(CLIENT_LOGGERS)
    ]


def assert_absent(secrets: list[str], lines: list[str]) -> None:
    text = "\n".join(lines)
    leaked = [secret[:6] + "…" for secret in secrets if secret in text]
    assert leaked == []


def test_no_secret_in_logs(
    client: TestClient, make_staff: MakeStaff, logs: Collect, caplog: pytest.LogCaptureFixture
) -> None:
    officer = make_staff(Role.OFFICER)
    custodian = make_staff(Role.CUSTODIAN, workstation=True)
    wrong_password = officer.password + "-wrong"
    secrets = [officer.password, wrong_password, officer.token, custodian.token]

    def login(username: str, password: str) -> httpx.Response:
        response: httpx.Response = client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )
        return response

    assert login(officer.username, wrong_password).status_code == 401
    assert login(officer.password, officer.password).status_code == 401
    assert login("", "").status_code == 401
    fresh = login(officer.username, officer.password).json()["token"]
    secrets.append(fresh)

    forged = f"{fresh[:-4]}AAAA"
    secrets.append(forged)
    me = "/api/v1/staff/me"
    assert client.get(me, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert client.delete(f"{me}/tokens/{fresh}", headers=officer.auth).status_code == 404
    assert client.get(f"{me}?access_token={officer.token}").status_code == 400  # now revoked
    forged_auth = {"Authorization": f"Bearer {forged}"}
    assert client.delete(f"{me}/tokens/{fresh}", headers=forged_auth).status_code == 401

    probe = "/api/v1/custodian/workstation"
    assert custodian.workstation is not None
    bad_proof = sign_request(
        Ed25519PrivateKey.generate(),
        custodian.workstation,
        "GET",
        probe,
        b"",
        custodian.auth["Authorization"],
    )
    assert client.get(probe, headers={**custodian.auth, **bad_proof}).status_code == 401

    cli_password = "cli password 1234"
    secrets.append(cli_password)
    runner = CliRunner()
    added = runner.invoke(
        cli_app,
        ["staff", "add", "cli.user", "--role", "registrar", "--password-stdin"],
        input=cli_password,
    )
    assert added.exit_code == 0
    generated = runner.invoke(
        cli_app, ["staff", "add", "cli.gen", "--role", "officer", "--generate-password"]
    )
    secrets.append(generated.stdout.splitlines()[-1].rsplit(" ", 1)[1])
    issued = runner.invoke(cli_app, ["staff", "token", "cli.user"])
    secrets.append(issued.stdout.strip())

    messages = service_lines(caplog)
    assert any("login failed for officer" in m for m in messages)
    assert any("login failed for an unknown username" in m for m in messages)
    assert any("API token in the query string" in m for m in messages)
    assert any("SQL parameters hidden" in m for m in messages)
    assert_absent(secrets, logs.lines + messages)


def test_redact() -> None:
    token = "cst_0123456789abcdef_" + "x" * 43
    assert redact(f'"GET /a?access_token={token}&b=1 HTTP/1.1"') == (
        '"GET /a?access_token=[redacted]&b=1 HTTP/1.1"'
    )
    assert redact(f"/a?TOKEN=abc&q={token}") == "/a?TOKEN=[redacted]&q=[redacted]"
    assert redact("/a?page=2") == "/a?page=2"


def test_uvicorn_access_log_never_shows_a_token(
    app: FastAPI, make_staff: MakeStaff, logs: Collect, caplog: pytest.LogCaptureFixture
) -> None:
    officer = make_staff(Role.OFFICER)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="debug", lifespan="off"))
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).addHandler(logs)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}/api/v1/staff/me"
        with httpx.Client() as http:
            assert http.get(base, headers=officer.auth).status_code == 200
            assert http.get(f"{base}?access_token={officer.token}").status_code == 400
            assert http.get(f"{base}?q={officer.token}", headers=officer.auth).status_code == 400
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    access = [line for line in logs.lines if line.startswith("uvicorn.access")]
    assert len(access) >= 3
    assert any("access_token=[redacted]" in line for line in access)
    assert_absent([officer.token, officer.password], logs.lines + service_lines(caplog))
