"""The audit log as operators and security officers use it: CLI, routes, published checkpoint,
with the checkpoint key on its (simulated) USBKey."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from audit.bundle import verify_bundle
from audit.checkpoints import parse_checkpoint
from audit.events import AuditEvent
from audit.log import append, size
from audit.merkle import leaf_hash, verify_inclusion
from audit.models import AuditEventRow
from audit.note import open_note
from audit.publish import latest_checkpoint
from certsvc.accounts import Role
from certsvc.app import create_app
from certsvc.audit_keys import note_keys
from certsvc.settings import Settings
from init_cache import initialised
from service_helpers import MakeStaff

CERTSVC = str(Path(sys.executable).parent / "certsvc")


@pytest.fixture
def provisioned(settings: Settings) -> Settings:
    initialised(settings)
    return settings


@pytest.fixture
def client(provisioned: Settings) -> Iterator[TestClient]:
    app = create_app(provisioned)
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


def _certsvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=dict(os.environ),
    )


def _events(sessions: sessionmaker[Session], count: int) -> None:
    with sessions.begin() as db:
        for n in range(count):
            append(db, AuditEvent("custodian", "custodian", "signer.sign", f"K/key-{n % 2}", "ok"))


def test_init_is_audited_and_checkpointed_by_the_audit_token(
    provisioned: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as db:
        logged = size(db)
        latest = latest_checkpoint(db)
        keys = note_keys(db, provisioned)
    assert logged >= 10  # accounts, workstation, tokens, keys
    assert latest is not None and latest.size == logged
    checkpoint = parse_checkpoint(open_note(latest.note, keys).text)
    assert checkpoint.size == logged
    # The last event it covers is its own signature's, through the signing gate.
    with sessions() as db:
        own = db.scalars(select(AuditEventRow).where(AuditEventRow.idx == logged - 1)).one()
    assert (own.action, own.object, own.outcome) == (
        "signer.sign",
        f"audit-checkpoint:{latest.size}",
        "ok",
    )


def test_cli_verify_passes_then_names_the_changed_entry(
    provisioned: Settings, sessions: sessionmaker[Session]
) -> None:
    _events(sessions, 5)
    signed = _certsvc("audit", "checkpoint")
    assert signed.returncode == 0, signed.stderr
    ok = _certsvc("audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    with sessions.begin() as db:
        db.execute(text("UPDATE audit_events SET object = 'K/key-9' WHERE idx = 4"))
    bad = _certsvc("audit", "verify")
    assert bad.returncode == 1
    assert "entry 4 was changed" in bad.stderr


def test_cli_export_writes_a_bundle_that_verifies_and_is_itself_logged(
    provisioned: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    _events(sessions, 3)
    assert _certsvc("audit", "checkpoint").returncode == 0
    out = tmp_path / "bundle.json"
    exported = _certsvc("audit", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    events = json.loads(out.read_text())["events"]
    assert f"wrote {len(events)} events" in exported.stdout
    checked = _certsvc("audit", "verify-bundle", str(out))
    assert checked.returncode == 0, checked.stderr
    with sessions() as db:
        logged = db.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "audit.export")
        ).one()
    assert logged.actor.startswith("os:") and logged.role == "system"
    assert logged.object == f"audit-events:0-{len(events)}" and logged.idx == len(events)


def test_officer_queries_pages_and_proves(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    officer = make_staff(Role.SECURITY_OFFICER)
    _events(sessions, 7)
    assert client.post("/api/v1/audit/checkpoints", headers=officer.auth).status_code == 201
    first = client.get(
        "/api/v1/audit/events",
        params={"action": "signer.sign", "object": "K", "limit": 4},
        headers=officer.auth,
    ).json()
    assert len(first["events"]) == 4 and first["next_after"] is not None
    rest = client.get(
        "/api/v1/audit/events",
        params={"action": "signer", "object": "K", "after": first["next_after"]},
        headers=officer.auth,
    ).json()
    assert len(rest["events"]) == 3 and rest["next_after"] is None
    only_key = client.get(
        "/api/v1/audit/events", params={"object": "K/key-1"}, headers=officer.auth
    ).json()
    assert {e["event"]["object"] for e in only_key["events"]} == {"K/key-1"}

    note = client.get("/.well-known/certsvc/audit-checkpoint").text
    with sessions() as db:
        keys = note_keys(db, client.app.state.settings)  # type: ignore[attr-defined]
    checkpoint = parse_checkpoint(open_note(note, keys).text)
    event = first["events"][0]
    proof = client.get(f"/api/v1/audit/events/{event['index']}/proof", headers=officer.auth).json()
    with sessions() as db:
        leaf = db.execute(
            text("SELECT leaf FROM audit_events WHERE idx = :i"), {"i": event["index"]}
        ).scalar_one()
    assert verify_inclusion(
        leaf_hash(bytes(leaf)),
        event["index"],
        checkpoint.size,
        [base64.b64decode(h) for h in proof["hashes"]],
        checkpoint.root_hash,
    )
    report = client.get("/api/v1/audit/report/keys", headers=officer.auth).json()
    assert {r["object"]: sum(r["signatures_per_day"].values()) for r in report}["K/key-0"] == 4
    bundle = client.get("/api/v1/audit/export", headers=officer.auth).json()
    assert verify_bundle(json.loads(json.dumps(bundle))).ok
    # Who took which events out is itself in the log, after the events it took.
    exported = client.get(
        "/api/v1/audit/events", params={"action": "audit.export"}, headers=officer.auth
    ).json()["events"]
    assert [e["event"]["actor"] for e in exported] == [officer.username]
    last = bundle["events"][-1]["index"]
    assert (
        exported[0]["event"]["object"] == f"audit-events:{bundle['events'][0]['index']}-{last + 1}"
    )
    assert exported[0]["index"] > last
    assert exported[0]["event"]["details"]["events"] == len(bundle["events"])
    # Again at once: the first export's own event is not covered yet; what is, is exported.
    again = client.get("/api/v1/audit/export", headers=officer.auth)
    assert again.status_code == 200 and again.json()["events"] == bundle["events"]


def test_a_usbkey_is_found_by_its_label_or_its_serial(
    client: TestClient, provisioned: Settings, make_staff: MakeStaff
) -> None:
    officer = make_staff(Role.SECURITY_OFFICER)
    serial = json.loads(provisioned.credentials_file.read_text())["tokens"]["USBKEY-01"]["serial"]

    def objects(name: str) -> set[str]:
        answer = client.get(
            "/api/v1/audit/events", params={"object": name, "limit": 500}, headers=officer.auth
        )
        assert answer.status_code == 200, answer.text
        return {event["event"]["object"] for event in answer.json()["events"]}

    by_label, by_serial = objects("USBKEY-01"), objects(serial)
    assert by_label == by_serial
    # its registration, its custody (its workstation) and its keys, and no other USBKey's
    assert {serial, f"token:{serial}", f"{serial}/decision-1"} <= by_serial
    assert all(o in (serial, f"token:{serial}") or o.startswith(f"{serial}/") for o in by_serial)
    assert objects("USBKEY-NONE") == set()


def test_only_security_officers_read_the_log(client: TestClient, make_staff: MakeStaff) -> None:
    for role in (Role.ADMIN, Role.CUSTODIAN, Role.OFFICER):
        member = make_staff(role)
        assert client.get("/api/v1/audit/events", headers=member.auth).status_code == 403


@pytest.mark.parametrize(
    "route", ["/api/v1/audit/events", "/api/v1/audit/report/keys", "/api/v1/audit/export"]
)
def test_times_without_a_zone_are_refused_with_a_message(
    client: TestClient, make_staff: MakeStaff, route: str
) -> None:
    """A naive time names no instant; it once reached the database and answered 500."""
    officer = make_staff(Role.SECURITY_OFFICER)
    for name in ("since", "until"):
        answer = client.get(route, params={name: "2026-12-01T08:00:00"}, headers=officer.auth)
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["query", name]
        assert "timezone" in answer.json()["detail"][0]["msg"]
    # Before any event (the log holds the officer's grant, which no checkpoint covers yet).
    zoned = client.get(route, params={"until": "2020-12-01T08:00:00+08:00"}, headers=officer.auth)
    assert zoned.status_code == 200
