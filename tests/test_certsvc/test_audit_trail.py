"""Staff and operator actions land in the audit log, attributed; failures too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certsvc.accounts import Role, StaffAccount
from service_helpers import MakeStaff


def _events(sessions: sessionmaker[Session], action: str) -> list[dict[str, object]]:
    with sessions() as db:
        rows = db.scalars(select(AuditEventRow).where(AuditEventRow.action == action))
        return [decode_leaf(row.leaf) for row in rows]


def test_admin_actions_are_attributed(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    admin = make_staff(Role.ADMIN)
    created = client.post(
        "/api/v1/admin/accounts",
        json={"username": "li.officer", "role": "officer", "display_name": "Li"},
        headers=admin.auth,
    )
    assert created.status_code == 201
    assert (
        client.post("/api/v1/admin/accounts/li.officer/disable", headers=admin.auth).status_code
        == 200
    )
    [create] = _events(sessions, "service.account.propose")
    assert (create["actor"], create["role"], create["object"]) == (
        admin.username,
        "admin",
        "li.officer",
    )
    [disable] = _events(sessions, "service.account.disable")
    assert disable["object"] == "li.officer"
    # The generated password is in the response, never in the log.
    password = created.json()["initial_password"]
    with sessions() as db:
        assert all(
            password.encode() not in bytes(r) for r in db.scalars(select(AuditEventRow.leaf))
        )


def test_logins_are_recorded_and_failures_name_no_secret(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    officer = make_staff(Role.OFFICER)
    ok = client.post(
        "/api/v1/auth/token", json={"username": officer.username, "password": officer.password}
    )
    assert ok.status_code == 201
    typo = "Secret-typed-as-username-42"
    for username in (officer.username, typo):
        refused = client.post(
            "/api/v1/auth/token", json={"username": username, "password": "wrong password x"}
        )
        assert refused.status_code == 401
    logins = _events(sessions, "service.login")
    assert [(e["actor"], e["outcome"]) for e in logins] == [
        (officer.username, "ok"),
        (officer.username, "refused"),
        ("unknown", "refused"),
    ]
    assert all(typo not in str(e) and "wrong password x" not in str(e) for e in logins)


def test_cli_actions_name_the_operator(settings: object, sessions: sessionmaker[Session]) -> None:
    certsvc = str(Path(sys.executable).parent / "certsvc")
    done = subprocess.run(
        [certsvc, "staff", "add", "wang.registrar", "--role", "registrar", "--generate-password"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [event] = _events(sessions, "service.account.create")
    assert str(event["actor"]).startswith("os:") and event["role"] == "system"


def test_an_action_the_log_cannot_record_is_refused_with_503(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    admin = make_staff(Role.ADMIN)
    with sessions.begin() as db:
        db.execute(text("DELETE FROM audit_head"))
    created = client.post(
        "/api/v1/admin/accounts",
        json={"username": "li.officer", "role": "officer", "display_name": "Li"},
        headers=admin.auth,
    )
    assert created.status_code == 503, created.text
    with sessions() as db:
        assert db.scalar(select(StaffAccount).where(StaffAccount.username == "li.officer")) is None
