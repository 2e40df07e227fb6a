"""Signing documents end to end on real tokens and databases: content from the records,
policy, idempotent batches, usage limits, token faults and resumption, dual control, case gates,
custody, fail-closed audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from audit.events import decode_leaf
from audit.log import AuditUnavailable
from audit.models import AuditEventRow, AuditHead
from certsvc.accounts import Role, create_account, password_hasher
from common.cose import verify_sign1
from common.errors import Conflict
from signer.actor import Actor
from signer.custody import (
    accept_handover,
    approve_revocation,
    certificate_of,
    offer_handover,
    retire_key,
    token_workstations,
)
from signer.documents import BatchInterrupted, Document, DocumentRef
from signer.models import SignedDocumentRow, SigningKey
from signer.policy import CaseGates, DeadlineOverride, PolicyRefused
from signing_env import SigningEnv, certificates, content_of


def _rows(env: SigningEnv) -> list[SignedDocumentRow]:
    with env.sessions() as db:
        return list(db.scalars(select(SignedDocumentRow).order_by(SignedDocumentRow.id)))


def _events(env: SigningEnv, outcome: str | None = None) -> list[AuditEventRow]:
    """Signing events of staff (not those of provisioning: key certificates, trust list, the
    first revocation list `init` signs)."""
    query = select(AuditEventRow).where(
        AuditEventRow.action == "signer.sign",
        AuditEventRow.role != "system",
        AuditEventRow.object.not_like("revocation-list:%"),
    )
    if outcome is not None:
        query = query.where(AuditEventRow.outcome == outcome)
    with env.sessions() as db:
        return list(db.scalars(query.order_by(AuditEventRow.idx)))


def _key(env: SigningEnv, label: str) -> SigningKey:
    with env.sessions() as db:
        return db.scalars(select(SigningKey).where(SigningKey.label == label)).one()


def _set_limit(env: SigningEnv, label: str, limit: int | None) -> None:
    with env.sessions.begin() as db:
        db.scalars(select(SigningKey).where(SigningKey.label == label)).one().usage_limit = limit


def test_batch_signs_each_document_once_and_a_rerun_signs_nothing(env: SigningEnv) -> None:
    env.open()
    key_id = env.key_id("certificate-1")
    documents = certificates(40)
    seen: list[tuple[int, int]] = []
    report = env.signer.sign_batch(
        env.custodian, key_id, documents, progress=lambda d, t: seen.append((d, t))
    )
    assert len(report.signed) == 40 and not report.refused and report.stopped is None
    assert seen[-1] == (40, 40) and len(seen) >= 3
    rows = _rows(env)
    certificate = certificate_of(_key(env, "certificate-1"))
    assert [verify_sign1(r.cose, certificate).kid for r in rows] == [r.kid for r in rows]
    events = {e.idx: e for e in _events(env, "ok")}
    assert {r.audit_index for r in rows} == set(events)
    assert all(events[r.audit_index].object == f"certificate:{r.document_id}" for r in rows)
    assert _key(env, "certificate-1").usage_count == 40

    again = env.signer.sign_batch(env.custodian, key_id, [*documents, *certificates(2, "D")])
    assert len(again.already_signed) == 40 and again.signed == ["D00000", "D00001"]
    assert len(_rows(env)) == 42 and len(_events(env, "ok")) == 42


def test_changed_content_is_never_re_signed(env: SigningEnv) -> None:
    env.open()
    key_id = env.key_id("certificate-1")
    env.records.contents["C1"] = {"n": 1}
    env.signer.sign(env.custodian, key_id, DocumentRef("certificate", "C1"))
    env.records.contents["C1"] = {"n": 2}  # the record changed after it was signed
    with pytest.raises(PolicyRefused, match="already signed with other content") as refused:
        env.signer.sign(env.custodian, key_id, DocumentRef("certificate", "C1"))
    assert refused.value.rule == "already-signed"
    assert [e.outcome for e in _events(env)] == ["ok", "refused"]


def test_content_comes_from_the_records_never_from_the_request(env: SigningEnv) -> None:
    env.open()
    key_id = env.key_id("certificate-1")
    env.records.missing.add("C-none")
    forged = DocumentRef("certificate", "C1", {"kind": "certificate", "number": "C2"})
    genuine = DocumentRef("certificate", "C2", content_of("certificate", "C2"))
    report = env.signer.sign_batch(
        env.custodian, key_id, [forged, genuine, DocumentRef("certificate", "C-none")]
    )
    assert report.signed == ["C2"]  # content sent that is exactly the record's is harmless
    assert {(r.document_id, r.rule) for r in report.refused} == {
        ("C1", "content-from-records"),
        ("C-none", "record-on-file"),
    }
    refused = {e.object: e for e in _events(env, "refused")}
    assert set(refused) == {"certificate:C1", "certificate:C-none"}
    assert decode_leaf(refused["certificate:C1"].leaf)["reason"] == "content-from-records"
    # What C1's event binds is the record's content, not what was sent.
    record = Document("certificate", "C1", content_of("certificate", "C1"))
    assert decode_leaf(refused["certificate:C1"].leaf)["doc"] == record.digest()
    # C1 signs as the records say it once nothing else is claimed.
    row = env.signer.sign(env.custodian, key_id, DocumentRef("certificate", "C1"))
    certificate = certificate_of(_key(env, "certificate-1"))
    assert verify_sign1(row.cose, certificate).payload == record.payload()


def test_key_at_its_usage_limit_stops(env: SigningEnv) -> None:
    env.open()
    _set_limit(env, "certificate-1", 5)
    report = env.signer.sign_batch(env.custodian, env.key_id("certificate-1"), certificates(8))
    assert len(report.signed) == 5
    assert report.stopped is not None and report.stopped.rule == "key-usage-limit"
    assert report.refused[0].document_id == "C00005" and report.not_attempted == 2
    assert _key(env, "certificate-1").usage_count == 5
    with pytest.raises(PolicyRefused, match="5 of its 5"):
        env.signer.sign(env.custodian, env.key_id("certificate-1"), certificates(1, "X")[0])


def test_token_pulled_mid_batch_then_resumed_signs_every_document_exactly_once(
    env: SigningEnv,
) -> None:
    env.open()
    key_id = env.key_id("certificate-1")
    documents = certificates(50)
    env.bay.arm_fault(env.usbkey["serial"], "sign", "DeviceRemoved", skip=20, unplug=True)
    with pytest.raises(BatchInterrupted, match="run the same batch again") as interrupted:
        env.signer.sign_batch(env.custodian, key_id, documents, batch="b1")
    committed = len(interrupted.value.report.signed)
    assert committed == 16  # the first chunk; the second was rolled back whole
    assert len(_rows(env)) == committed == _key(env, "certificate-1").usage_count
    failed = _events(env, "failed")
    assert [e.object for e in failed] == ["certificate:C00020"]

    refused = env.signer.sign_batch(env.custodian, key_id, documents, batch="b1")
    assert refused.stopped is not None and refused.stopped.rule == "session"
    assert refused.signed == [] and refused.not_attempted == 50
    env.bay.replug(env.usbkey["serial"])
    env.open()
    resumed = env.signer.sign_batch(env.custodian, key_id, documents, batch="b1")
    assert len(resumed.already_signed) == committed and len(resumed.signed) == 50 - committed
    rows = _rows(env)
    assert sorted(r.document_id for r in rows) == [d.document_id for d in documents]
    assert _key(env, "certificate-1").usage_count == 50
    certificate = certificate_of(_key(env, "certificate-1"))
    for row in rows:
        verify_sign1(row.cose, certificate)


def test_session_expires_when_idle_and_at_its_absolute_end(env: SigningEnv) -> None:
    env.open()
    key_id = env.key_id("certificate-1")
    env.clock.now += 599
    env.signer.sign(env.custodian, key_id, certificates(1)[0])
    env.clock.now += 601
    with pytest.raises(PolicyRefused) as refused:
        env.signer.sign(env.custodian, key_id, certificates(1, "Y")[0])
    assert refused.value.rule == "session"
    env.open()
    env.clock.now += 3601
    with pytest.raises(PolicyRefused, match="no open signing session"):
        env.signer.sign(env.custodian, key_id, certificates(1, "Z")[0])


def test_wrong_custodian_and_unregistered_workstation_are_refused(env: SigningEnv) -> None:
    env.open()
    key_id = env.key_id("certificate-1")
    officer = env.account("officer")
    with pytest.raises(PolicyRefused) as refused:
        env.signer.sign(officer, key_id, certificates(1)[0])
    assert refused.value.rule == "role"
    stranger = Actor("custodian2", env.custodian.account_id + 100, "custodian", "ws-x")
    with pytest.raises(PolicyRefused, match="not in your custody"):
        env.signer.sign(stranger, key_id, certificates(1)[0])
    elsewhere = Actor(env.custodian.username, env.custodian.account_id, "custodian", "ws-else")
    with pytest.raises(PolicyRefused, match="not registered for USBKey") as refused:
        env.signer.sign(elsewhere, key_id, certificates(1)[0])
    assert refused.value.rule == "workstation"
    outcomes = [(e.outcome, e.actor) for e in _events(env)]
    assert outcomes == [
        ("refused", "officer"),
        ("refused", "custodian2"),
        ("refused", "custodian"),
    ]
    assert _rows(env) == []


def test_a_session_for_another_key_does_not_sign(env: SigningEnv) -> None:
    env.open("decision-1")
    with pytest.raises(PolicyRefused, match="opened for decision-1") as refused:
        env.signer.sign(env.custodian, env.key_id("certificate-1"), certificates(1)[0])
    assert refused.value.rule == "session"


def test_revocation_needs_two_distinct_officers_approving_its_content(env: SigningEnv) -> None:
    env.open("revocation-1")
    key_id = env.key_id("revocation-1")
    content = {"certificate": "C00001", "reason": "fraud"}
    env.records.contents["R1"] = content
    revocation = DocumentRef("revocation", "R1")
    digest = Document("revocation", "R1", content).digest()
    with pytest.raises(PolicyRefused, match="approved by 0 officer") as refused:
        env.signer.sign(env.custodian, key_id, revocation)
    assert refused.value.rule == "dual-control"
    first = env.account("officer")
    with env.sessions.begin() as db:
        approve_revocation(db, first, "R1", digest, "forged degree certificate")
    with env.sessions.begin() as db, pytest.raises(Conflict, match="second officer"):
        approve_revocation(db, first, "R1", digest, "again")
    with pytest.raises(PolicyRefused, match="approved by 1 officer"):
        env.signer.sign(env.custodian, key_id, revocation)
    with env.sessions.begin() as db, pytest.raises(Exception, match="only an officer"):
        approve_revocation(db, env.account("registrar"), "R1", digest, "me too")
    second = Actor("officer2", first.account_id, "officer", None)
    with env.sessions.begin() as db:
        approve_revocation(db, second, "R1", digest, "confirmed")
    # Two approvals of R1, but the record now says other things: they count for none of it.
    env.records.contents["R1"] = {"certificate": "C00002", "reason": "fraud"}
    with pytest.raises(PolicyRefused, match="approved by 0 officer"):
        env.signer.sign(env.custodian, key_id, revocation)
    env.records.contents["R1"] = content
    row = env.signer.sign(env.custodian, key_id, revocation)
    assert row.kind == "revocation"


def test_case_gates_r2_and_r3_with_an_audited_override(env: SigningEnv) -> None:
    env.open("decision-1")
    key_id = env.key_id("decision-1")
    past = datetime.now(UTC) - timedelta(days=2)
    env.records.cases["D-open"] = CaseGates(criminal_record_clear=False)
    env.records.cases["D-late"] = CaseGates(True, deadline=past)
    env.records.cases["D-overridden"] = CaseGates(
        True,
        deadline=past,
        override=DeadlineOverride(
            "officer",
            "officer",
            "appeal upheld",
            approved_by="officer-b",
            expires=datetime.now(UTC) + timedelta(days=1),
        ),
    )
    env.records.default = None
    decisions = [
        DocumentRef("decision", name) for name in ("D-open", "D-late", "D-overridden", "D-nocase")
    ]
    report = env.signer.sign_batch(env.custodian, key_id, decisions)
    assert report.signed == ["D-overridden"]
    assert {(r.document_id, r.rule) for r in report.refused} == {
        ("D-open", "criminal-record"),
        ("D-late", "deadline"),
        ("D-nocase", "criminal-record"),
    }
    details = [decode_leaf(e.leaf)["details"] for e in _events(env, "ok")]
    assert details[0]["deadline_override_by"] == "officer"  # type: ignore[index]
    assert details[0]["deadline_override_approved_by"] == "officer-b"  # type: ignore[index]


def test_retired_key_never_signs_again_but_its_signatures_still_verify(env: SigningEnv) -> None:
    env.open()
    key_id = env.key_id("certificate-1")
    row = env.signer.sign(env.custodian, key_id, certificates(1)[0])
    with env.sessions.begin() as db:
        retire_key(db, env.account("security_officer"), key_id, "USBKey replaced")
    with pytest.raises(PolicyRefused) as refused:
        env.signer.sign(env.custodian, key_id, certificates(1, "N")[0])
    assert refused.value.rule == "key-retired"
    verify_sign1(row.cose, certificate_of(_key(env, "certificate-1")))


def test_nothing_is_signed_when_the_audit_event_cannot_be_written(env: SigningEnv) -> None:
    env.open()
    with env.sessions.begin() as db:
        db.execute(delete(AuditHead))
    with pytest.raises(AuditUnavailable):
        env.signer.sign(env.custodian, env.key_id("certificate-1"), certificates(1)[0])
    assert _rows(env) == []
    assert _key(env, "certificate-1").usage_count == 0


def test_handover_moves_custody_and_the_old_custodian_can_no_longer_sign(
    env: SigningEnv,
) -> None:
    serial = env.usbkey["serial"]
    with env.sessions.begin() as db:
        account = create_account(
            db, "custodian-b", Role.CUSTODIAN, "pw-123456789", hasher=password_hasher(env.settings)
        )
        db.flush()
        incoming = Actor("custodian-b", account.id, "custodian", "ws-b")
        handover = offer_handover(db, env.custodian, serial, account.id, "custodian")
    env.open()
    with env.sessions.begin() as db:
        accept_handover(db, incoming, handover.id)
        assert token_workstations(db, serial) == set()
    with pytest.raises(PolicyRefused, match="not in your custody"):
        env.signer.sign(env.custodian, env.key_id("certificate-1"), certificates(1)[0])
    with env.sessions() as db:
        actions = db.scalars(
            select(AuditEventRow.action).where(AuditEventRow.action.like("signer.custody.%"))
        ).all()
        count = db.scalar(select(func.count()).select_from(SignedDocumentRow))
    assert "signer.custody.handover_offer" in actions
    assert "signer.custody.handover_accept" in actions
    assert count == 0
