"""Signing sessions over HTTP: PIN errors that help, lockout, removal and re-insertion."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from certsvc.accounts import Role, get_account
from certsvc.app import create_app
from certsvc.grants import unbacked_grants
from certsvc.settings import Settings, get_settings, reset_settings
from hsm_sim import UsbKeyBay
from init_cache import initialised
from service_helpers import MakeStaff, StaffMember, demo_member
from signer.models import HsmToken, TokenWorkstation

SESSIONS = "/api/v1/signing/sessions"
MAX_TRIES = 3


@dataclass
class Demo:
    client: TestClient
    settings: Settings
    custodian: StaffMember
    security_officer: StaffMember
    officer: StaffMember
    admin: StaffMember
    usbkey: dict[str, str]
    bay: UsbKeyBay

    def open(
        self,
        pin: str,
        who: StaffMember | None = None,
        serial: str | None = None,
        key_label: str = "certificate-1",
    ) -> Any:
        body = {"token_serial": serial or self.usbkey["serial"], "key_label": key_label, "pin": pin}
        return self.post(SESSIONS, body, who or self.custodian)

    def post(self, path: str, body: dict[str, Any], who: StaffMember) -> Any:
        """A JSON POST, signed by `who`'s workstation when they have one."""
        raw = json.dumps(body).encode()
        auth = who.signed("POST", path, raw) if who.workstation else who.auth
        headers = {**auth, "Content-Type": "application/json"}
        return self.client.post(path, content=raw, headers=headers)

    def key_id(self, label: str) -> int:
        tokens = self.client.get("/api/v1/hsm/tokens", headers=self.security_officer.auth).json()
        return int(next(k["id"] for t in tokens for k in t["keys"] if k["label"] == label))

    def close(self) -> Any:
        path = f"{SESSIONS}/{self.usbkey['serial']}"
        return self.client.delete(path, headers=self.custodian.signed("DELETE", path))


@pytest.fixture
def demo(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    monkeypatch.setenv("CERTSVC_PIN_MAX_TRIES", str(MAX_TRIES))
    reset_settings()
    settings = get_settings()
    initialised(settings)
    secrets = json.loads(settings.credentials_file.read_text())

    def member(username: str, workstation: str | None = None) -> StaffMember:
        return demo_member(secrets, username, workstation)

    app = create_app(settings)
    with TestClient(app) as client:
        yield Demo(
            client=client,
            settings=settings,
            custodian=member("custodian", "ws-custodian-01"),
            security_officer=member("security_officer"),
            officer=member("officer"),
            admin=member("admin"),
            usbkey=secrets["tokens"]["USBKEY-01"],
            bay=UsbKeyBay(settings.hsm_dir),
        )
    app.state.engine.dispose()


def test_custodian_opens_lists_and_closes_a_session(demo: Demo) -> None:
    opened = demo.open(demo.usbkey["user_pin"])
    assert opened.status_code == 201, opened.text
    assert opened.json()["token_label"] == "USBKEY-01"
    assert opened.json()["workstation"] == "ws-custodian-01"
    listed = demo.client.get(SESSIONS, headers=demo.custodian.auth)
    assert [s["token_serial"] for s in listed.json()] == [demo.usbkey["serial"]]
    again = demo.open(demo.usbkey["user_pin"])
    assert again.status_code == 409 and "already has an open session" in again.json()["detail"]
    assert demo.close().status_code == 204
    assert demo.client.get(SESSIONS, headers=demo.custodian.auth).json() == []


def test_wrong_pins_count_down_then_lock_then_unblock(demo: Demo) -> None:
    first = demo.open("00000000")
    assert first.status_code == 403
    assert first.json()["tries_left"] == MAX_TRIES - 1
    assert f"{MAX_TRIES - 1} tries left" in first.json()["detail"]
    second = demo.open("00000000")
    assert second.json()["tries_left"] == 1
    locked = demo.open("00000000")
    assert locked.status_code == 423
    assert "locked" in locked.json()["detail"] and "unblock" in locked.json()["detail"]
    assert demo.open(demo.usbkey["user_pin"]).status_code == 423
    demo.client.app.state.tokens.unblock_pin(  # type: ignore[attr-defined]
        demo.usbkey["serial"], demo.usbkey["so_pin"], "86420864"
    )
    assert demo.open("86420864").status_code == 201


def test_pulled_key_answers_absent_and_works_after_reinsertion(demo: Demo) -> None:
    assert demo.open(demo.usbkey["user_pin"]).status_code == 201
    demo.bay.unplug(demo.usbkey["serial"])
    absent = demo.open(demo.usbkey["user_pin"])
    assert absent.status_code == 409, absent.text
    assert "not inserted" in absent.json()["detail"]
    tokens = demo.client.get("/api/v1/hsm/tokens", headers=demo.security_officer.auth).json()
    assert next(t for t in tokens if t["label"] == "USBKEY-01")["present"] is False
    demo.bay.replug(demo.usbkey["serial"])
    reopened = demo.open(demo.usbkey["user_pin"])
    assert reopened.status_code == 201, reopened.text


def test_another_custodians_token_is_refused(demo: Demo, make_staff: MakeStaff) -> None:
    other = make_staff(Role.CUSTODIAN, workstation=True)
    refused = demo.open(demo.usbkey["user_pin"], who=other)
    assert refused.status_code == 403
    assert "custody" in refused.json()["detail"]


def test_custody_written_into_the_database_is_refused_and_named(
    demo: Demo, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    """A DBA hands USBKEY-01 and a token workstation to another custodian in the tables: no
    grant event names that custody, so no session opens, and `unbacked_grants` names it."""
    other = make_staff(Role.CUSTODIAN, workstation=True)
    serial = demo.usbkey["serial"]
    with sessions.begin() as db:
        taker = get_account(db, other.username).id
        db.execute(update(HsmToken).where(HsmToken.serial == serial).values(custodian_id=taker))
        db.add(
            TokenWorkstation(
                token_serial=serial, workstation_name=other.workstation, registered_by="dba"
            )
        )
    refused = demo.open(demo.usbkey["user_pin"], who=other)
    assert refused.status_code == 403
    assert "custody of USBKey USBKEY-01 has no grant event" in refused.json()["detail"]
    with sessions() as db:
        assert ("custody of token", serial) in [(g.kind, g.name) for g in unbacked_grants(db)]


def test_session_needs_the_workstation_signature(demo: Demo) -> None:
    body = {
        "token_serial": demo.usbkey["serial"],
        "key_label": "certificate-1",
        "pin": demo.usbkey["user_pin"],
    }
    unsigned = demo.client.post(SESSIONS, json=body, headers=demo.custodian.auth)
    assert unsigned.status_code == 401


def test_pin_appears_in_no_log_and_no_response(
    demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "13572468"
    answers = [demo.open(wrong).text for _ in range(MAX_TRIES + 1)]
    answers.append(demo.open(demo.usbkey["user_pin"]).text)
    seen = "\n".join(answers) + caplog.text
    assert wrong not in seen and demo.usbkey["user_pin"] not in seen


def test_token_register_shows_presence_and_lock(demo: Demo) -> None:
    listed = demo.client.get("/api/v1/hsm/tokens", headers=demo.security_officer.auth)
    assert listed.status_code == 200
    usbkey = next(t for t in listed.json() if t["label"] == "USBKEY-01")
    assert usbkey["custodian"] == "custodian"
    assert usbkey["present"] is True and usbkey["pin_locked"] is False
    assert {k["purpose"] for k in usbkey["keys"]} == {"certificate", "decision", "revocation"}
    demo.bay.lock_pin(demo.usbkey["serial"])
    listed = demo.client.get("/api/v1/hsm/tokens", headers=demo.security_officer.auth)
    assert next(t for t in listed.json() if t["label"] == "USBKEY-01")["pin_locked"] is True
    health = demo.client.get("/healthz").json()
    assert health["tokens_locked"] == 1 and health["tokens_present"] == len(listed.json())


def test_http_batch_refuses_a_document_no_record_stands_behind(demo: Demo) -> None:
    """The server signs only what its records say: a document id naming no record is refused,
    whatever content the request carries."""
    assert demo.open(demo.usbkey["user_pin"]).status_code == 201
    batch = {
        "key_id": demo.key_id("certificate-1"),
        "documents": [{"kind": "certificate", "document_id": "C1", "content": {"n": 1}}],
    }
    answer = demo.post("/api/v1/signing/batches", batch, demo.custodian)
    assert answer.status_code == 200, answer.text
    assert answer.json()["signed"] == []
    assert answer.json()["refused"][0]["rule"] == "record-on-file"


def test_session_on_an_unregistered_workstation_is_refused(
    demo: Demo, make_staff: MakeStaff
) -> None:
    other = make_staff(Role.CUSTODIAN, workstation=True)
    offer = {"token_serial": demo.usbkey["serial"], "to": other.username}
    offered = demo.post("/api/v1/custody/handovers", offer, demo.custodian)
    assert offered.status_code == 201, offered.text
    handover = offered.json()["id"]
    accepted = demo.post(f"/api/v1/custody/handovers/{handover}/accept", {}, other)
    assert accepted.status_code == 200 and accepted.json()["status"] == "completed"
    refused = demo.open(demo.usbkey["user_pin"], who=other)
    assert refused.status_code == 403 and "not registered for USBKey" in refused.json()["detail"]
    register = {"workstation": other.workstation}
    path = f"/api/v1/hsm/tokens/{demo.usbkey['serial']}/workstations"
    assert demo.post(path, register, demo.admin).status_code == 201
    assert demo.open(demo.usbkey["user_pin"], who=other).status_code == 201
    old = demo.open(demo.usbkey["user_pin"])
    assert old.status_code == 403 and "custody" in old.json()["detail"]


def test_every_route_naming_a_usbkey_takes_its_label_or_its_serial(
    demo: Demo, make_staff: MakeStaff
) -> None:
    """People read the label off the USBKey (USBKEY-01); its module reports the serial. Each
    route naming a token takes either, answers and audits with the serial, and an unknown name
    is a 404 naming the field."""
    label, serial = "USBKEY-01", demo.usbkey["serial"]
    opened = demo.open(demo.usbkey["user_pin"], serial=label)
    assert opened.status_code == 201, opened.text
    assert opened.json()["token_serial"] == serial
    path = f"{SESSIONS}/{label}"
    closed = demo.client.delete(path, headers=demo.custodian.signed("DELETE", path))
    assert closed.status_code == 204, closed.text
    assert demo.client.get(SESSIONS, headers=demo.custodian.auth).json() == []
    wrong = demo.open("00000000", serial=label)
    assert wrong.status_code == 403
    unknown = demo.open(demo.usbkey["user_pin"], serial="USBKEY-99")
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("token_serial: no registered USBKey")
    assert demo.usbkey["user_pin"] not in unknown.text
    events = demo.client.get(
        "/api/v1/audit/events",
        params={"action": "signer.session.open"},
        headers=demo.security_officer.auth,
    ).json()["events"]
    assert [(e["event"]["object"], e["event"]["outcome"]) for e in events] == [
        (f"token:{serial}", "ok"),
        (f"token:{serial}", "refused"),
        ("token:USBKEY-99", "refused"),
    ]

    other = make_staff(Role.CUSTODIAN, workstation=True)
    register = {"workstation": other.workstation}
    unknown_token = demo.post("/api/v1/hsm/tokens/USBKEY-99/workstations", register, demo.admin)
    assert unknown_token.status_code == 404
    assert unknown_token.json()["detail"].startswith("serial: no registered USBKey")
    offered = demo.post(
        "/api/v1/custody/handovers", {"token_serial": label, "to": other.username}, demo.custodian
    )
    assert offered.status_code == 201, offered.text
    assert offered.json()["token_serial"] == serial
    handover = offered.json()["id"]
    assert demo.post(f"/api/v1/custody/handovers/{handover}/accept", {}, other).status_code == 200
    added = demo.post(f"/api/v1/hsm/tokens/{label}/workstations", register, demo.admin)
    assert added.status_code == 201, added.text
    assert added.json() == {"token_serial": serial, "workstation": other.workstation}
    removed = demo.client.delete(
        f"/api/v1/hsm/tokens/{label}/workstations/{other.workstation}", headers=demo.admin.auth
    )
    assert removed.status_code == 204, removed.text
    refused = demo.open(demo.usbkey["user_pin"], who=other, serial=label)
    assert refused.status_code == 403 and "not registered for USBKey" in refused.json()["detail"]
