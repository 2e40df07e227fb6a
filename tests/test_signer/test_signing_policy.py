"""Each policy rule on its own, then in combination: the first refusing rule is named. The rule
sets: a custodian's key and session, each document, a custodian's other signatures (QR, PDF),
the service's own keys, a root's enrolment."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signer.actor import Actor
from signer.models import HsmToken, KeyPurpose, KeyStatus, SigningKey
from signer.policy import (
    CUSTODIAN_PURPOSE_RULES,
    DOCUMENT_RULES,
    ENROLMENT_RULES,
    KEY_RULES,
    SERVICE_RULES,
    CaseGates,
    DeadlineOverride,
    DocumentContext,
    EnrolmentContext,
    KeyContext,
    PurposeContext,
    ServiceContext,
    first_refusal,
    usage_refusal,
)
from signer.sessions import SigningSession

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CUSTODIAN = Actor("keeper", 7, "custodian", "ws-a")


class _OpenToken:
    serial = "S1"
    label = "USBKEY-01"
    is_open = True


class _ClosedToken(_OpenToken):
    is_open = False


class _OtherToken(_OpenToken):
    serial = "S2"


def _key(**changes: Any) -> SigningKey:
    values: dict[str, Any] = {
        "id": 1,
        "token_serial": "S1",
        "label": "certificate-1",
        "purpose": KeyPurpose.CERTIFICATE,
        "status": KeyStatus.ACTIVE,
        "not_before": NOW - timedelta(days=1),
        "not_after": NOW + timedelta(days=365),
        "usage_count": 0,
        "usage_limit": None,
        "retired_at": None,
        "certificate_revoked_at": None,
    }
    values.update(changes)
    return SigningKey(**values)


def _session(**changes: Any) -> SigningSession:
    values: dict[str, Any] = {
        "token": _OpenToken(),
        "custodian": "keeper",
        "workstation": "ws-a",
        "opened_at": 0.0,
        "last_used_at": 0.0,
        "expires_at": 1e12,
        "idle_seconds": 600.0,
        "key_label": "certificate-1",
    }
    values.update(changes)
    return SigningSession(**values)


def _context(**changes: Any) -> KeyContext:
    values: dict[str, Any] = {
        "actor": CUSTODIAN,
        "key": _key(),
        "token": HsmToken(serial="S1", label="USBKEY-01", custodian_id=7),
        "token_workstations": {"ws-a"},
        "session": _session(),
        "now": NOW,
    }
    values.update(changes)
    return KeyContext(**values)


def _document(**changes: Any) -> DocumentContext:
    values: dict[str, Any] = {
        "kind": "certificate",
        "document_id": "C1",
        "key": _key(),
        "gates": CaseGates(criminal_record_clear=True, deadline=NOW + timedelta(days=3)),
        "approvals": [],
        "now": NOW,
    }
    values.update(changes)
    return DocumentContext(**values)


def _rule(context: KeyContext | DocumentContext) -> str | None:
    rules = KEY_RULES if isinstance(context, KeyContext) else DOCUMENT_RULES
    refusal = first_refusal(rules, context)
    return None if refusal is None else refusal.rule


def test_everything_in_order_is_allowed() -> None:
    assert _rule(_context()) is None
    assert _rule(_document()) is None


@pytest.mark.parametrize(
    ("context", "rule"),
    [
        (_context(actor=replace(CUSTODIAN, role="officer")), "role"),
        (_context(actor=replace(CUSTODIAN, role="admin")), "role"),
        (_context(key=_key(status=KeyStatus.RETIRED, retired_at=NOW)), "key-retired"),
        (_context(key=_key(certificate_revoked_at=NOW)), "key-certificate-revoked"),
        (_context(key=_key(not_after=NOW - timedelta(seconds=1))), "key-validity"),
        (_context(key=_key(not_before=NOW + timedelta(days=1))), "key-validity"),
        (_context(key=_key(usage_count=10, usage_limit=10)), "key-usage-limit"),
        (_context(actor=replace(CUSTODIAN, account_id=8)), "custodian"),
        (_context(session=_session(custodian="other")), "custodian"),
        (_context(actor=replace(CUSTODIAN, workstation=None)), "workstation"),
        (_context(actor=replace(CUSTODIAN, workstation="ws-b")), "workstation"),
        (_context(token_workstations={"ws-b"}), "workstation"),
        (_context(session=_session(workstation="ws-b")), "workstation"),
        (_context(session=None), "session"),
        (_context(session=_session(key_label="decision-1")), "session"),
        (_context(session=_session(key_label=None)), "session"),
    ],
)
def test_each_key_rule_refuses_on_its_own(context: KeyContext, rule: str) -> None:
    assert _rule(context) == rule


def test_refusals_say_what_to_do() -> None:
    refusal = first_refusal(KEY_RULES, _context(session=None))
    assert refusal is not None and "open a session" in refusal.message
    refusal = first_refusal(KEY_RULES, _context(token_workstations=set()))
    assert refusal is not None and "registers it" in refusal.message
    refusal = first_refusal(DOCUMENT_RULES, _document(gates=None))
    assert refusal is not None and refusal.message.startswith("R2")


late = CaseGates(True, deadline=NOW - timedelta(days=1))
APPROVED = DeadlineOverride(
    "o1", "officer", "applicant's appeal upheld", approved_by="o2", expires=NOW + timedelta(1)
)


@pytest.mark.parametrize(
    ("context", "rule"),
    [
        (_document(kind="decision"), "purpose"),
        (_document(kind="audit-checkpoint"), "purpose"),
        (_document(gates=None), "criminal-record"),
        (_document(gates=CaseGates(criminal_record_clear=False)), "criminal-record"),
        (_document(gates=late), "deadline"),
        (
            _document(gates=replace(late, override=DeadlineOverride("o1", "registrar", "why"))),
            "deadline",
        ),
        (
            _document(gates=replace(late, override=DeadlineOverride("o1", "officer", " "))),
            "deadline",
        ),
        (_document(gates=replace(late, override=replace(APPROVED, approved_by=None))), "deadline"),
        (_document(gates=replace(late, override=replace(APPROVED, approved_by="o1"))), "deadline"),
        (
            _document(gates=replace(late, override=replace(APPROVED, expires=NOW - timedelta(1)))),
            "deadline",
        ),
        (_document(gates=replace(late, override=replace(APPROVED, expires=None))), "deadline"),
        (
            _document(gates=CaseGates(True, unmet={"eligibility": "rule SS.subjects"})),
            "eligibility",
        ),
        (_document(gates=CaseGates(True, unmet={"confirmation": "no attendance"})), "confirmation"),
        (
            _document(
                kind="revocation",
                key=_key(purpose=KeyPurpose.REVOCATION),
                approvals=[("o1", "officer"), ("o1", "officer")],
            ),
            "dual-control",
        ),
        (
            _document(
                kind="revocation",
                key=_key(purpose=KeyPurpose.REVOCATION),
                approvals=[("o1", "officer"), ("r1", "registrar")],
            ),
            "dual-control",
        ),
    ],
)
def test_each_document_rule_refuses_on_its_own(context: DocumentContext, rule: str) -> None:
    assert _rule(context) == rule


def test_an_officers_override_approved_by_a_second_and_unexpired_passes_the_deadline() -> None:
    assert _rule(_document(gates=replace(late, override=APPROVED))) is None


def test_two_distinct_officers_allow_a_revocation_without_case_gates() -> None:
    revocation = _document(
        kind="revocation",
        key=_key(purpose=KeyPurpose.REVOCATION),
        gates=None,
        approvals=[("o1", "officer"), ("o2", "officer")],
    )
    assert _rule(revocation) is None


def test_combined_refusals_name_the_first_rule_in_order() -> None:
    everything_wrong = _context(
        actor=Actor("x", 8, "officer", None),
        key=_key(status=KeyStatus.RETIRED, usage_count=5, usage_limit=5),
        session=None,
    )
    assert _rule(everything_wrong) == "role"
    assert _rule(replace(everything_wrong, actor=replace(CUSTODIAN, account_id=8))) == "key-retired"
    assert _rule(_document(kind="decision", gates=None)) == "purpose"
    assert (
        _rule(_document(gates=CaseGates(False, deadline=NOW - timedelta(days=1))))
        == "criminal-record"
    )


def test_usage_limit_counts_the_running_total() -> None:
    key = _key(usage_limit=3)
    assert usage_refusal(key, 2) is None
    refusal = usage_refusal(key, 3)
    assert refusal is not None and refusal.rule == "key-usage-limit"
    assert usage_refusal(_key(usage_limit=None), 10**9) is None


def _root(**changes: Any) -> SigningKey:
    return _key(label="root", purpose=KeyPurpose.ROOT, **changes)


def _service(**changes: Any) -> ServiceContext:
    values: dict[str, Any] = {
        "key": _root(),
        "purpose": "trust-list",
        "session": _OpenToken(),
        "now": NOW,
    }
    values.update(changes)
    return ServiceContext(**values)


def test_service_signing_allows_its_keys_own_purposes() -> None:
    assert first_refusal(SERVICE_RULES, _service()) is None
    assert first_refusal(SERVICE_RULES, _service(purpose="key-certificate")) is None
    checkpoint = _key(label="audit-1", purpose=KeyPurpose.AUDIT_CHECKPOINT)
    assert (
        first_refusal(SERVICE_RULES, _service(key=checkpoint, purpose="audit-checkpoint")) is None
    )


@pytest.mark.parametrize(
    ("context", "rule"),
    [
        (_service(key=_key(), purpose="certificate-qr"), "service-key"),
        (_service(key=_root(status=KeyStatus.RETIRED, retired_at=NOW)), "key-retired"),
        (_service(key=_root(certificate_revoked_at=NOW)), "key-certificate-revoked"),
        (_service(key=_root(not_after=NOW - timedelta(seconds=1))), "key-validity"),
        (_service(key=_root(usage_count=3, usage_limit=3)), "key-usage-limit"),
        (_service(purpose="audit-checkpoint"), "purpose"),
        (_service(purpose="decision"), "purpose"),
        (_service(purpose="anything"), "purpose"),
        (_service(session=None), "token-session"),
        (_service(session=_ClosedToken()), "token-session"),
        (_service(session=_OtherToken()), "token-session"),
    ],
)
def test_each_service_rule_refuses_on_its_own(context: ServiceContext, rule: str) -> None:
    refusal = first_refusal(SERVICE_RULES, context)
    assert refusal is not None and refusal.rule == rule


@pytest.mark.parametrize(
    ("purpose", "key", "refused"),
    [
        ("certificate-qr", _key(), False),
        ("certificate-pdf", _key(), False),
        ("certificate-pdf", _key(purpose=KeyPurpose.DECISION), True),
        ("trust-list", _root(), True),  # the service's, never in a session
        ("certificate", _key(), True),  # a document: the document rules decide
        ("anything", _key(), True),
    ],
)
def test_a_custodians_other_signatures_need_the_matching_key(
    purpose: str, key: SigningKey, refused: bool
) -> None:
    refusal = first_refusal(CUSTODIAN_PURPOSE_RULES, PurposeContext(purpose, key))
    assert (refusal is not None) is refused
    assert refusal is None or refusal.rule == "purpose"


def test_a_root_enrols_once_on_its_own_logged_in_token() -> None:
    enrolling = EnrolmentContext("S1", "root", registered=False, session=_OpenToken())  # type: ignore[arg-type]
    assert first_refusal(ENROLMENT_RULES, enrolling) is None
    refusal = first_refusal(ENROLMENT_RULES, replace(enrolling, registered=True))
    assert refusal is not None and refusal.rule == "key-registered"
    refusal = first_refusal(ENROLMENT_RULES, replace(enrolling, session=_ClosedToken()))
    assert refusal is not None and refusal.rule == "token-session"
