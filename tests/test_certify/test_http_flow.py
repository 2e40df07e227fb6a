"""The whole case over HTTP once, on both databases: intake from vault tokens, booking,
checks, decisions with deadline overrides, signing and issue by the custodian from the
registered workstation through the open USBKey session, delivery with a checked notice, the
batch's announcement, reports, and a dual-controlled revocation that verification shows at
once. Along the way, the refusals each step owes; then what a signing request may not do:
choose what a decision, certificate or revocation says."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509
from fastapi.testclient import TestClient

from certsvc import bootstrap
from certsvc.accounts import Role
from certsvc.app import create_app
from certsvc.bootstrap import DEMO_TOKENS, DemoKey, DemoToken
from certsvc.settings import Settings
from common.cose import verify_sign1
from init_cache import initialised
from service_helpers import MakeStaff, StaffMember, demo_member
from signer.models import KeyPurpose
from vault import synthetic

API = "/api/v1/certify"
BATCH = {
    "name": "2020年上半年",
    "registration_opens": "2020-06-08",
    "registration_closes": "2020-06-30",
    "confirmation_starts": "2020-07-06",
    "confirmation_ends": "2020-07-10",
    "closes_on": "2020-10-09",
}
# What the comparisons of an eligible 高级中学 applicant find (R0).
FOUND = {"degree": "本科", "mandarin": "二级甲等"}
PLACE = "郑州市金水区政务服务中心三楼"
OVERRIDE = {
    "reason": "2020 batch decided in a test run years later",
    "category": "other",
    "expires_on": (date.today() + timedelta(days=30)).isoformat(),
}


@dataclass
class Desk:
    client: TestClient
    registrar: StaffMember
    officer: StaffMember
    officer_2: StaffMember
    custodian: StaffMember
    security_officer: StaffMember
    usbkey: dict[str, str]

    def call(self, method: str, path: str, who: StaffMember, body: Any = None) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = who.signed(method, path, raw) if who.workstation else dict(who.auth)
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.client.request(method, path, content=raw, headers=headers)

    def ok(self, method: str, path: str, who: StaffMember, body: Any = None) -> Any:
        answer = self.call(method, path, who, body)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def session(self, key_label: str) -> None:
        serial = self.usbkey["serial"]
        self.client.delete(
            f"/api/v1/signing/sessions/{serial}",
            headers=self.custodian.signed("DELETE", f"/api/v1/signing/sessions/{serial}"),
        )
        body = {"token_serial": serial, "key_label": key_label, "pin": self.usbkey["user_pin"]}
        self.ok("POST", "/api/v1/signing/sessions", self.custodian, body)


def _desk(settings: Settings, make_staff: MakeStaff) -> Iterator[Desk]:
    initialised(settings)
    secrets = json.loads(settings.credentials_file.read_text())

    def member(username: str, workstation: str | None = None) -> StaffMember:
        return demo_member(secrets, username, workstation)

    app = create_app(settings)
    with TestClient(app) as client:
        yield Desk(
            client=client,
            registrar=member("registrar"),
            officer=member("officer"),
            officer_2=make_staff(Role.OFFICER),
            custodian=member("custodian", "ws-custodian-01"),
            security_officer=member("security_officer"),
            usbkey=secrets["tokens"]["USBKEY-01"],
        )
    app.state.engine.dispose()


@pytest.fixture
def desk(settings: Settings, make_staff: MakeStaff) -> Iterator[Desk]:
    yield from _desk(settings, make_staff)


@pytest.fixture
def two_usbkeys(
    settings: Settings, make_staff: MakeStaff, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Desk]:
    """The desk, with the custodian holding a second USBKey that carries the body's newer
    decision key (provisioned by `certsvc init` like the first, on the same workstation)."""
    second = DemoToken("USBKEY-02", (DemoKey("decision-2", KeyPurpose.DECISION),))
    monkeypatch.setattr(bootstrap, "DEMO_TOKENS", (*DEMO_TOKENS, second))
    yield from _desk(settings, make_staff)


def _person(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {
        "id_number": synthetic.id_number(rng),
        "name": synthetic.name(rng),
        "phone": synthetic.phone(rng),
    }


def _extend(desk: Desk, batch_id: int) -> None:
    """The officer lets a 2020 batch take applications on the day the test runs."""
    until = (date.today() + timedelta(days=30)).isoformat()
    extension = {"until": until, "reason": "a 2020 batch filed in a test run years later"}
    path = f"{API}/batches/{batch_id}/registration-extension"
    assert desk.call("POST", path, desk.registrar, extension).status_code == 403
    extended = desk.ok("POST", path, desk.officer, extension)
    assert extended["registration_extended_until"] == until
    assert extended["registration_extended_by"] == desk.officer.username


def _train(desk: Desk, batch_id: int) -> None:
    """The registrar is trained for the batch before on-site confirmation (二(三))."""
    training = {"username": desk.registrar.username, "trained_on": "2020-07-01"}
    desk.ok("POST", f"{API}/batches/{batch_id}/trainings", desk.officer, training)


def _attend(desk: Desk, application_id: int) -> None:
    attendance = {"confirmed_at": "2020-07-06T09:20:00+08:00", "national_reference": "QR-1"}
    path = f"{API}/applications/{application_id}/attendance"
    answer = desk.ok("POST", path, desk.registrar, attendance)
    assert answer["place"] == PLACE and answer["confirmed_by"] == desk.registrar.username


def _intake(
    desk: Desk, batch_id: int, person: dict[str, str], subject: str, expect: int = 201
) -> dict[str, Any]:
    items = [{"kind": kind, "value": value} for kind, value in person.items()]
    tokens = desk.ok("POST", "/api/v1/vault/tokenise", desk.registrar, {"items": items})["tokens"]
    applicant = {f"{t['kind']}_token": t["token"] for t in tokens}
    body = {"batch_id": batch_id, "applicant": applicant, "qualification": "SS", "subject": subject}
    answer = desk.call("POST", f"{API}/applications", desk.registrar, body)
    assert answer.status_code == expect, answer.text
    assert not any(value in answer.text for value in person.values())
    application: dict[str, Any] = answer.json()
    return application


def _checks(desk: Desk, application_id: int) -> None:
    path = f"{API}/applications/{application_id}/checks"
    for kind, result in (
        ("identity", "match"),
        ("degree", "match"),
        ("mandarin", "match"),
        ("exam", "match"),
        ("physical", "pass"),
    ):
        body = {
            "kind": kind,
            "result": result,
            "source_system": "chsi.com.cn" if kind == "degree" else "jszg.edu.cn",
            "reference": f"ref-{application_id}-{kind}",
            "checked_at": "2020-07-06T10:00:00+08:00",
            "value": FOUND.get(kind),
        }
        desk.ok("POST", path, desk.registrar, body)
    criminal = {
        "kind": "criminal_record",
        "result": "clear",
        "source_system": "gongan",
        "reference": f"q-{application_id}",
        "checked_at": "2020-07-08T10:00:00+08:00",
        "police_unit": "郑州市公安局金水分局",
        "police_issued_on": "2020-07-08",
    }
    desk.ok("POST", path, desk.officer, criminal)  # officers may record this one


def test_whole_case_over_http(desk: Desk) -> None:
    short = {**BATCH, "name": "too short", "confirmation_ends": "2020-07-09"}
    refused = desk.call("POST", f"{API}/batches", desk.officer, short)
    assert refused.status_code == 422 and "confirmation" in refused.json()["detail"]
    assert desk.call("POST", f"{API}/batches", desk.registrar, BATCH).status_code == 403
    batch = desk.ok("POST", f"{API}/batches", desk.officer, BATCH)
    batch_id = batch["id"]
    assert batch["decision_deadline"] == "2020-08-21"
    assert batch["confirmation_working_days"] == 5
    shown = desk.ok("GET", f"{API}/batches/{batch_id}?today=2020-09-30", desk.custodian)
    left = {d["name"]: d["working_days_left"] for d in shown["deadlines"]}
    assert left["closes_on"] == 1  # National Day (10-01 to 10-08) does not count

    slot = {"starts_at": "2020-07-06T09:00:00+08:00", "place": PLACE, "capacity": 2}
    slot_id = desk.ok("POST", f"{API}/batches/{batch_id}/slots", desk.officer, slot)["id"]
    people = [_person(seed) for seed in (11, 12, 13)]
    closed = _intake(desk, batch_id, people[0], "02", expect=409)
    assert "registration window (2020-06-08 to 2020-06-30)" in closed["detail"]
    _extend(desk, batch_id)
    _train(desk, batch_id)
    cases = [_intake(desk, batch_id, p, s) for p, s in zip(people, ("02", "01", "03"), strict=True)]
    ids = [case["id"] for case in cases]
    assert all("*" in (case["masked_name"] or "") for case in cases)
    unknown = {"id_number_token": "tk_id_" + "A" * 22, "name_token": "tk_nm_" + "B" * 22}
    body = {"batch_id": batch_id, "applicant": unknown, "qualification": "SS", "subject": "02"}
    again = desk.call("POST", f"{API}/applications", desk.registrar, body)
    assert again.status_code == 404 and "id_number_token" in again.json()["detail"]
    for n, application_id in enumerate(ids[:2], start=1):
        booking = f"{API}/applications/{application_id}/booking"
        booked = desk.ok("POST", booking, desk.registrar, {"slot_id": slot_id})
        assert booked["queue_number"] == n
    full = desk.call(
        "POST", f"{API}/applications/{ids[2]}/booking", desk.registrar, {"slot_id": slot_id}
    )
    assert full.status_code == 409  # capacity 2

    approved, refused_id, idle = ids
    identity = {
        "kind": "identity",
        "result": "match",
        "source_system": "x",
        "reference": "y",
        "checked_at": "2020-07-06T10:00:00+08:00",
    }
    path = f"{API}/applications/{approved}/checks"
    assert desk.call("POST", path, desk.officer, identity).status_code == 403
    early = {"outcome": "approve", "reasons": "ok"}
    r2 = desk.call("POST", f"{API}/applications/{approved}/decision", desk.officer, early)
    assert r2.status_code == 422 and "R2" in r2.json()["detail"]
    for application_id in (approved, refused_id):
        _checks(desk, application_id)
    history = desk.ok("GET", path, desk.registrar)
    assert len(history) == 6

    decisions = {
        approved: {"outcome": "approve", "reasons": "all checks passed"},
        refused_id: {"outcome": "refuse", "reasons": "applicant withdrew"},
    }
    assert (
        desk.call(
            "POST", f"{API}/applications/{approved}/decision", desk.registrar, decisions[approved]
        ).status_code
        == 403
    )
    unconfirmed = desk.call(
        "POST", f"{API}/applications/{approved}/decision", desk.officer, decisions[approved]
    )
    assert unconfirmed.status_code == 409 and "attendance" in unconfirmed.json()["detail"]
    _attend(desk, approved)
    desk.ok("POST", f"{API}/applications/{approved}/decision", desk.officer, decisions[approved])
    desk.ok(
        "POST",
        f"{API}/applications/{refused_id}/decision",
        desk.officer,
        {**decisions[refused_id], "deadline_override": OVERRIDE},
    )
    approval = f"{API}/applications/{refused_id}/deadline-override/approval"
    alone = desk.call("POST", approval, desk.officer)
    assert alone.status_code == 409 and "second officer" in alone.json()["detail"]
    desk.ok("POST", approval, desk.officer_2)

    # The custodian signs from the workstation, through the USBKey session for the key.
    sign = f"{API}/batches/{batch_id}/decisions/sign"
    unsigned = desk.client.post(sign, headers=desk.custodian.auth)
    assert unsigned.status_code == 401  # no workstation proof
    desk.session("decision-1")
    report = desk.ok("POST", sign, desk.custodian)
    assert len(report["signed"]) == 1
    assert [r["rule"] for r in report["refused"]] == ["deadline"]  # no override on `approved`
    asked = desk.ok(
        "POST", f"{API}/applications/{approved}/deadline-override", desk.officer, OVERRIDE
    )
    assert asked["deadline_overridden_by"] == desk.officer.username
    assert asked["deadline_override_approved_by"] is None
    awaiting = desk.ok("POST", sign, desk.custodian)
    assert [r["rule"] for r in awaiting["refused"]] == ["deadline"]
    assert "awaits a second officer" in awaiting["refused"][0]["detail"]
    desk.ok("POST", f"{API}/applications/{approved}/deadline-override/approval", desk.officer_2)
    assert len(desk.ok("POST", sign, desk.custodian)["signed"]) == 1
    report = desk.ok("GET", f"{API}/reports/overrides?batch_id={batch_id}", desk.officer)
    assert {(o["application_id"], o["state"], o["category"]) for o in report} == {
        (approved, "in-force", "other"),
        (refused_id, "in-force", "other"),
    }
    assert all(o["approved_by"] == desk.officer_2.username for o in report)
    listed = desk.ok("GET", f"{API}/batches/{batch_id}/decisions?signed=true", desk.registrar)
    assert len(listed) == 2

    desk.session("certificate-1")
    issued = desk.ok("POST", f"{API}/batches/{batch_id}/certificates", desk.custodian, {})
    assert len(issued["issued"]) == 1
    number = issued["issued"][0]
    assert desk.ok("POST", f"{API}/batches/{batch_id}/certificates", desk.custodian, {}) == {
        "issued": [],
        "signing": None,
    }
    certificate = desk.ok("GET", f"{API}/certificates/{number}", desk.registrar)
    verification_id = certificate["verification_url"].rsplit("/", 1)[1]
    assert desk.client.get(f"/api/v1/verify/{verification_id}").json()["status"] == "valid"

    # The printable certificate, signed in the open certificate-key session.
    pdf_path = f"/api/v1/certificates/{number}/pdf"
    printed = desk.call("GET", pdf_path, desk.custodian)
    assert printed.status_code == 200 and printed.headers["content-type"] == "application/pdf"
    assert printed.content.startswith(b"%PDF-") and b"/ByteRange" in printed.content
    assert printed.headers["cache-control"] == "no-store"
    assert desk.call("GET", pdf_path, desk.registrar).status_code == 403

    # Delivery: the notice is built, checked, stored.
    delivery = f"{API}/certificates/{number}/delivery"
    leaky = {"method": "mail", "tracking_number": "SF1234567890123", "note": "咨询 13812345678"}
    bad = desk.call("PUT", delivery, desk.registrar, leaky)
    assert bad.status_code == 422 and "phone" in bad.json()["detail"]
    assert "13812345678" not in bad.text
    staff_link = {**leaky, "note": "进度见 http://testserver/cases"}
    bad = desk.call("PUT", delivery, desk.registrar, staff_link)
    assert bad.status_code == 422 and "login_link" in bad.json()["detail"]
    assert desk.call("GET", delivery, desk.registrar).status_code == 404  # nothing stored
    pickup = {
        "method": "pickup",
        "pickup_at": "2020-10-12T09:00:00+08:00",
        "pickup_place": "市政务服务中心教师资格窗口",
    }
    notice = desk.ok("PUT", delivery, desk.registrar, pickup)["notice"]
    assert number in notice and "2020年10月12日 09:00" in notice
    mailed = desk.ok("PUT", delivery, desk.registrar, {**leaky, "note": "请本人签收。"})
    assert mailed["method"] == "mail" and "SF1234567890123" in mailed["notice"]
    assert desk.ok("GET", delivery, desk.officer)["notice"] == mailed["notice"]

    # The batch's conclusions: allow-listed fields, checked before they are stored.
    announce = f"{API}/batches/{batch_id}/announcements"
    unfiled = desk.call("POST", announce, desk.officer, {"preface": "公示期五个工作日。"})
    assert unfiled.status_code == 409 and "implementation plan" in unfiled.json()["detail"]
    plan = {"filed_on": "2020-05-25", "reference": "豫教资〔2020〕12号"}
    filed = desk.ok("POST", f"{API}/batches/{batch_id}/implementation-plan", desk.officer, plan)
    assert filed["plan_reference"] == plan["reference"]
    bad = desk.call("POST", announce, desk.officer, {"preface": "咨询 admin@example.com"})
    assert bad.status_code == 422 and "email" in bad.json()["detail"]
    published = desk.ok("POST", announce, desk.officer, {"preface": "公示期五个工作日。"})
    text = published["text"]
    assert published["objections_until"] and "公示期：" in text  # CERTSVC_OBJECTION_WORKDAYS
    objections = f"{API}/reports/objections?batch_id={batch_id}"
    assert desk.ok("GET", objections, desk.security_officer) == []
    assert "认定通过" in text and "不予认定" in text and "高级中学教师资格" in text
    for person in people:
        assert not any(value in text for value in person.values())
    assert len(desk.ok("GET", announce, desk.registrar)) == 1
    login = {"text": "请登录 https://jszg.example.cn/login 查询"}
    assert desk.call("POST", f"{API}/announcements", desk.officer, login).status_code == 422

    # Reports.
    stages = desk.ok("GET", f"{API}/reports/stages?batch_id={batch_id}", desk.security_officer)[
        "stages"
    ]
    assert (stages["delivered"], stages["refused"], stages["applied"]) == (1, 1, 1)
    july = desk.ok(
        "GET", f"{API}/reports/overdue?batch_id={batch_id}&today=2020-07-17", desk.officer
    )
    assert [(c["application_id"], c["deadline"]) for c in july["cases"]] == [(idle, "confirmation")]
    assert july["cases"][0]["working_days_overdue"] == 5
    october = desk.ok(
        "GET", f"{API}/reports/overdue?batch_id={batch_id}&today=2020-10-12", desk.officer
    )
    late = {c["deadline"]: c["working_days_overdue"] for c in october["cases"]}
    assert set(late) == {"confirmation", "decision", "close"}
    assert late["close"] == 2  # 10-10, an adjusted Saturday workday, and Monday 10-12
    assert desk.call("GET", f"{API}/reports/overdue", desk.registrar).status_code == 403

    # Revocation: an officer files, two approve, the custodian signs; verification at once.
    filed = desk.ok(
        "POST",
        f"{API}/certificates/{number}/revocations",
        desk.officer,
        {"category": "error", "reason": "conclusion corrected"},
    )
    revocation = filed["id"]
    approval = f"{API}/revocations/{revocation}/approvals"
    desk.ok("POST", approval, desk.officer, {"reason": "checked the file"})
    twice = desk.call("POST", approval, desk.officer, {"reason": "again"})
    assert twice.status_code == 409
    desk.session("revocation-1")
    sign_revocations = f"{API}/revocations/sign"
    one = desk.ok("POST", sign_revocations, desk.custodian, {"revocation_ids": [revocation]})
    assert [r["rule"] for r in one["refused"]] == ["dual-control"]
    assert desk.client.get(f"/api/v1/verify/{verification_id}").json()["status"] == "valid"
    shown_revocation = desk.ok("POST", approval, desk.officer_2, {"reason": "second check"})
    assert len(shown_revocation["approved_by"]) == 2
    two = desk.ok("POST", sign_revocations, desk.custodian, {"revocation_ids": [revocation]})
    assert two["signed"] == [f"REV-{revocation}"]
    assert desk.client.get(f"/api/v1/verify/{verification_id}").json()["status"] == "revoked"
    assert desk.ok("GET", f"{API}/revocations/{revocation}", desk.custodian)["revoked_on"]
    stages = desk.ok("GET", f"{API}/reports/stages?batch_id={batch_id}", desk.officer)
    assert stages["stages"]["revoked"] == 1


# --- what a signing request may not do: choose the content ----------------------------------


def _open_batch(desk: Desk) -> int:
    """The 2020 batch with a slot, taking applications today (the officer's extension)."""
    batch_id: int = desk.ok("POST", f"{API}/batches", desk.officer, BATCH)["id"]
    slot = {"starts_at": "2020-07-06T09:00:00+08:00", "place": PLACE, "capacity": 100}
    desk.ok("POST", f"{API}/batches/{batch_id}/slots", desk.officer, slot)
    _extend(desk, batch_id)
    _train(desk, batch_id)
    return batch_id


def _decided(desk: Desk, batch_id: int, seed: int, outcome: str, reasons: str) -> int:
    """A case taken through intake, booking, attendance and checks to the officer's recorded
    decision; its id."""
    application_id = _intake(desk, batch_id, _person(seed), "02")["id"]
    slot_id = desk.ok("GET", f"{API}/batches/{batch_id}/slots", desk.registrar)[0]["id"]
    booking = {"slot_id": slot_id}
    desk.ok("POST", f"{API}/applications/{application_id}/booking", desk.registrar, booking)
    _attend(desk, application_id)
    _checks(desk, application_id)
    decision = {"outcome": outcome, "reasons": reasons, "deadline_override": OVERRIDE}
    path = f"{API}/applications/{application_id}/decision"
    decided: int = desk.ok("POST", path, desk.officer, decision)["id"]
    approval = f"{API}/applications/{application_id}/deadline-override/approval"
    desk.ok("POST", approval, desk.officer_2)
    return decided


def _key_ids(desk: Desk) -> dict[str, int]:
    tokens = desk.ok("GET", "/api/v1/hsm/tokens", desk.security_officer)
    return {key["label"]: key["id"] for token in tokens for key in token["keys"]}


def _sign_events(desk: Desk, obj: str) -> list[dict[str, Any]]:
    query = f"/api/v1/audit/events?action=signer.sign&object={obj}"
    return [e["event"] for e in desk.ok("GET", query, desk.security_officer)["events"]]


def _signed_payload(desk: Desk, kind: str, document_id: str) -> dict[str, Any]:
    path = f"/api/v1/signing/documents/{kind}/{document_id}"
    cose = desk.ok("GET", path, desk.security_officer)["cose_sign1"]
    message = cbor2.loads(base64.urlsafe_b64decode(cose + "=" * (-len(cose) % 4)))
    payload: dict[str, Any] = cbor2.loads(message.value[2])
    return payload


def test_a_custodian_cannot_turn_a_recorded_refusal_into_an_approval(desk: Desk) -> None:
    batch_id = _open_batch(desk)
    decision_id = _decided(desk, batch_id, 31, "refuse", "degree not recognised")
    document_id = f"DEC-{decision_id}"
    desk.session("decision-1")
    key_id = _key_ids(desk)["decision-1"]

    # The custodian sends an approval of their own making for the officer's refusal.
    approval = {"outcome": "approve", "reasons": "all checks passed", "decided_by": "officer"}
    forged = {"kind": "decision", "document_id": document_id, "content": approval}
    sent = desk.ok(
        "POST", "/api/v1/signing/batches", desk.custodian, {"key_id": key_id, "documents": [forged]}
    )
    assert sent["signed"] == []
    assert [(r["document_id"], r["rule"]) for r in sent["refused"]] == [
        (document_id, "content-from-records")
    ]
    events = _sign_events(desk, f"decision:{document_id}")
    assert [(e["actor"], e["outcome"], e["reason"]) for e in events] == [
        ("custodian", "refused", "content-from-records")
    ]
    # A document no record stands behind is refused (and audited) as well.
    unknown = {"kind": "decision", "document_id": "DEC-999999"}
    sent = desk.ok(
        "POST",
        "/api/v1/signing/batches",
        desk.custodian,
        {"key_id": key_id, "documents": [unknown]},
    )
    assert [r["rule"] for r in sent["refused"]] == ["record-on-file"]
    assert [e["reason"] for e in _sign_events(desk, "decision:DEC-999999")] == ["record-on-file"]

    # The genuine refusal still signs, as the officer recorded it.
    signed = desk.ok("POST", f"{API}/batches/{batch_id}/decisions/sign", desk.custodian)
    assert signed["signed"] == [document_id]
    payload = _signed_payload(desk, "decision", document_id)
    assert (payload["outcome"], payload["reasons"]) == ("refuse", "degree not recognised")
    assert [e["outcome"] for e in _sign_events(desk, f"decision:{document_id}")] == [
        "refused",
        "ok",
    ]


def test_the_pdf_is_signed_in_the_certificate_keys_session_whatever_else_is_open(
    two_usbkeys: Desk, settings: Settings
) -> None:
    desk = two_usbkeys
    second = json.loads(settings.credentials_file.read_text())["tokens"]["USBKEY-02"]
    batch_id = _open_batch(desk)
    _decided(desk, batch_id, 41, "approve", "all checks passed")
    # The custodian holds two sessions: the decision key's on USBKEY-02, opened first, and
    # the certificate key's on USBKEY-01.
    opening = {
        "token_serial": second["serial"],
        "key_label": "decision-2",
        "pin": second["user_pin"],
    }
    desk.ok("POST", "/api/v1/signing/sessions", desk.custodian, opening)
    assert (
        len(desk.ok("POST", f"{API}/batches/{batch_id}/decisions/sign", desk.custodian)["signed"])
        == 1
    )
    desk.session("certificate-1")
    number = desk.ok("POST", f"{API}/batches/{batch_id}/certificates", desk.custodian, {})[
        "issued"
    ][0]
    before = _key_ids_usage(desk)["certificate-1"]

    printed = desk.call("GET", f"/api/v1/certificates/{number}/pdf", desk.custodian)
    assert printed.status_code == 200, printed.text
    assert printed.content.startswith(b"%PDF-") and b"/ByteRange" in printed.content
    events = _sign_events(desk, f"certificate-pdf:{number}")
    assert [(e["outcome"], e["details"]["key"]) for e in events] == [("ok", "certificate-1")]
    assert _key_ids_usage(desk)["certificate-1"] == before + 1

    # Without the certificate key's session, the decision-key session signs no PDF: refused
    # by rule, audited, nothing revealed or signed.
    serial = desk.usbkey["serial"]
    path = f"/api/v1/signing/sessions/{serial}"
    desk.client.delete(path, headers=desk.custodian.signed("DELETE", path))
    refused = desk.call("GET", f"/api/v1/certificates/{number}/pdf", desk.custodian)
    assert refused.status_code == 403 and refused.json()["rule"] == "session"
    events = _sign_events(desk, f"certificate-pdf:{number}")
    assert [(e["outcome"], e["reason"]) for e in events][-1] == ("refused", "session")
    assert _key_ids_usage(desk)["certificate-1"] == before + 1


def _key_ids_usage(desk: Desk) -> dict[str, int]:
    tokens = desk.ok("GET", "/api/v1/hsm/tokens", desk.security_officer)
    return {key["label"]: key["usage_count"] for token in tokens for key in token["keys"]}


def test_revocations_are_approved_and_signed_as_the_records_say(desk: Desk) -> None:
    batch_id = _open_batch(desk)
    _decided(desk, batch_id, 51, "approve", "all checks passed")
    desk.session("decision-1")
    desk.ok("POST", f"{API}/batches/{batch_id}/decisions/sign", desk.custodian)
    desk.session("certificate-1")
    number = desk.ok("POST", f"{API}/batches/{batch_id}/certificates", desk.custodian, {})[
        "issued"
    ][0]
    filed = desk.ok(
        "POST",
        f"{API}/certificates/{number}/revocations",
        desk.officer,
        {"category": "error", "reason": "conclusion corrected"},
    )
    # Officers approve the revocation by its id: the server binds the approval to the content.
    approval = {"revocation_id": filed["id"], "reason": "checked the file"}
    first = desk.ok("POST", "/api/v1/signing/approvals", desk.officer, approval)
    assert first["document_id"] == filed["document_id"] and len(first["content_sha256"]) == 64
    assert desk.call("POST", "/api/v1/signing/approvals", desk.officer, approval).status_code == 409
    assert (
        desk.call("POST", "/api/v1/signing/approvals", desk.custodian, approval).status_code == 403
    )
    gone = {"revocation_id": 999999, "reason": "no such revocation"}
    assert desk.call("POST", "/api/v1/signing/approvals", desk.officer, gone).status_code == 404
    desk.session("revocation-1")
    key_id = _key_ids(desk)["revocation-1"]
    document = {"kind": "revocation", "document_id": filed["document_id"]}
    batch = {"key_id": key_id, "documents": [document]}
    alone = desk.ok("POST", "/api/v1/signing/batches", desk.custodian, batch)
    assert [r["rule"] for r in alone["refused"]] == ["dual-control"]
    second = desk.ok("POST", "/api/v1/signing/approvals", desk.officer_2, approval)
    assert second["content_sha256"] == first["content_sha256"]

    other = {"number": number, "category": "fraud", "reason": "obtained by fraud"}
    altered = desk.ok(
        "POST",
        "/api/v1/signing/batches",
        desk.custodian,
        {"key_id": key_id, "documents": [{**document, "content": other}]},
    )
    assert [r["rule"] for r in altered["refused"]] == ["content-from-records"]
    signed = desk.ok("POST", "/api/v1/signing/batches", desk.custodian, batch)
    assert signed["signed"] == [filed["document_id"]]
    payload = _signed_payload(desk, "revocation", filed["document_id"])
    assert (payload["number"], payload["category"]) == (number, "error")
    path = f"/api/v1/signing/documents/revocation/{filed['document_id']}"
    document_out = desk.ok("GET", path, desk.security_officer)
    cose = base64.urlsafe_b64decode(document_out["cose_sign1"] + "==")
    certificate = x509.load_der_x509_certificate(base64.b64decode(document_out["certificate_der"]))
    assert verify_sign1(cose, certificate).kid == bytes.fromhex(document_out["kid"])
