"""One gate per signature: the raw token operation is called nowhere but in the signing gate
(read from the code itself), and every kind of signature the service makes — a certificate's
PDF and QR payload, the trust list, an audit checkpoint — passes the rules for its key, counts
against the key's usage and leaves exactly one audit event, on real SoftHSM tokens and both
databases."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from audit.events import AuditEvent, decode_leaf
from audit.log import append, size
from audit.models import AuditEventRow
from audit.publish import latest_checkpoint
from certsvc.audit_keys import CHECKPOINTER, CheckpointKeyHolder
from certsvc.bootstrap import INIT_SIGNER, ROOT_USBKEY
from certsvc.trust_publish import publish_trust_list
from common.cose import kid_of, verify_sign1
from printing.render import CertificateSheet, render_certificate_pdf
from signer.actor import Actor
from signer.custody import certificate_of, retire_key
from signer.gate import (
    SignRequest,
    Subject,
    sign_as_service,
    sign_root_enrolment,
    signing_transaction,
)
from signer.models import KeyStatus, SigningKey
from signer.pades import sign_pdf, signer_for_key
from signer.policy import PolicyRefused, SignPurpose
from signing_env import SigningEnv
from verify.payload import Claims, sign_claims
from verify.qrimage import qr_modules
from verify.trust import latest_trust_list

ROOT = Path(__file__).resolve().parents[2]
# Where the service's code lives: every package, and the benchmarks.
SOURCES = (
    "audit",
    "bench",
    "certify",
    "certsvc",
    "common",
    "hsm_sim",
    "printing",
    "signer",
    "vault",
    "verify",
)
# The raw operation and what is underneath it, each with the one module allowed to use it.
RAW_OPERATIONS = {
    "sign_p256": "signer/gate.py",
    "sign_ed25519": "signer/gate.py",
    "DigestSigner": "signer/gate.py",
    "sign_digest": "signer/_internal/raw.py",
    "sign_eddsa": "signer/_internal/raw.py",
}
PRIVATE_PACKAGE = "signer._internal"
GATE = "signer/gate.py"


@dataclass(frozen=True)
class Use:
    """A place in the code that reaches the raw operation."""

    path: str
    line: int
    what: str

    def allowed(self) -> bool:
        name = self.what.split(" ", 1)[1]
        if self.what.startswith("import "):
            return self.path == GATE
        return RAW_OPERATIONS.get(name) == self.path


def raw_uses(root: Path, sources: tuple[str, ...] = SOURCES) -> list[Use]:
    """Every call of, reference to or import of the raw operation under `root`: names and
    attributes (`sign_p256(…)`, `session.sign_digest(…)`, a function passed as a callback),
    the names as strings (`getattr(session, "sign_digest")`), and imports of the private
    package whatever they are renamed to."""
    found: list[Use] = []
    for source in sources:
        for file in sorted((root / source).rglob("*.py")):
            path = file.relative_to(root).as_posix()
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=path)
            for node in ast.walk(tree):
                found.extend(Use(path, node.lineno, what) for what in _reaches_raw(node))
    return found


def _reaches_raw(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name) and node.id in RAW_OPERATIONS:
        return [f"uses {node.id}"]
    if isinstance(node, ast.Attribute) and node.attr in RAW_OPERATIONS:
        return [f"uses {node.attr}"]
    if isinstance(node, ast.Constant) and node.value in RAW_OPERATIONS:
        return [f"uses {node.value}"]
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        names = [f"{module}.{alias.name}" for alias in node.names]
        private = [f"import {m}" for m in (module, *names) if m.startswith(PRIVATE_PACKAGE)]
        raw = [f"uses {a.name}" for a in node.names if a.name in RAW_OPERATIONS]
        return private[:1] + raw
    if isinstance(node, ast.Import):
        return [f"import {a.name}" for a in node.names if a.name.startswith(PRIVATE_PACKAGE)]
    return []


def test_no_signature_is_made_around_the_gate() -> None:
    outside = [use for use in raw_uses(ROOT) if not use.allowed()]
    assert outside == [], "the raw token operation used outside the signing gate"


def test_the_inspection_sees_the_gates_own_use_of_the_raw_operation() -> None:
    """Not vacuous: the reading finds what is there."""
    uses = raw_uses(ROOT)
    assert {(u.path, u.what) for u in uses} >= {
        (GATE, "import signer._internal.raw"),
        (GATE, "uses sign_p256"),
        (GATE, "uses sign_ed25519"),
        (GATE, "uses DigestSigner"),
        ("signer/_internal/raw.py", "uses sign_digest"),
        ("signer/_internal/raw.py", "uses sign_eddsa"),
    }


def test_the_inspection_finds_every_way_around(tmp_path: Path) -> None:
    """Callers as the service had them before the gate, and ways to hide one."""
    package = tmp_path / "certify"
    package.mkdir()
    (package / "issue.py").write_text(
        "from signer._internal.raw import sign_p256 as quick\n"
        "import signer._internal.raw\n"
        "from signer import _internal\n"
        "def f(session, key, tbs, public):\n"
        "    quick(session, key.label, tbs, public)\n"
        "    session.sign_digest(key.label, tbs)\n"
        "    sign = getattr(session, 'sign_digest')\n"
        "    return sign_claims(tbs, lambda data: _internal.raw.sign_p256(session, 'k', data))\n"
    )
    found = sorted((u.line, u.what) for u in raw_uses(tmp_path, ("certify",)))
    assert found == [
        (1, "import signer._internal.raw"),
        (1, "uses sign_p256"),
        (2, "import signer._internal.raw"),
        (3, "import signer._internal"),
        (6, "uses sign_digest"),
        (7, "uses sign_digest"),
        (8, "uses sign_p256"),
    ]
    assert not any(use.allowed() for use in raw_uses(tmp_path, ("certify",)))


# --- each signature the service makes, through the gate, on real tokens ----------------------


@dataclass(frozen=True)
class Purpose:
    """A kind of signature: the key that makes it, the object its event names, and the act
    that asks for it as the service does."""

    name: str
    key: str
    object: str
    act: Callable[[SigningEnv], Any]
    # The event names the SHA-256 of what was signed; a checkpoint's event is written before
    # the checkpoint is built (so that the checkpoint covers it) and names its size instead.
    binds_digest: bool = True
    # Keys that sign together for the act (a checkpoint: every checkpoint key, `key` first).
    signing_together: tuple[str, ...] = ()


def _sheet() -> CertificateSheet:
    return CertificateSheet(
        holder_name="欧阳明华",
        qualification_zh="高级中学教师资格",
        qualification_en="Senior secondary school teacher",
        subject_zh="数学",
        subject_en="Mathematics",
        number="20264100000000001",
        body_name="河南省教育厅（演示）",
        issue_date=date(2026, 3, 2),
        qr_modules=qr_modules("HTTP://127.0.0.1:8000/V/7K3QZD5W2M9XR4TB6NHY8JCV1P#TC1:X"),
    )


def _certificate_pdf(env: SigningEnv) -> bytes:
    """As `certify.certificate_pdf` signs: PAdES, in the custodian's certificate-key session."""
    env.open("certificate-1")
    with signing_transaction(env.sessions) as unit:
        key = _key_in(unit.db, "certificate-1")
        subject = Subject("certificate-pdf:20264100000000001")
        signer = signer_for_key(
            unit.db,
            key,
            lambda data: (
                env.gate.sign(
                    unit,
                    env.custodian,
                    key.id,
                    SignRequest(SignPurpose.CERTIFICATE_PDF, subject, data),
                ).der
            ),
        )
        return sign_pdf(render_certificate_pdf(_sheet()), signer)


def _certificate_qr(env: SigningEnv) -> bytes:
    """As `certify.issuance` signs the QR claims: COSE, in the custodian's session."""
    env.open("certificate-1")
    claims = Claims("410000", "20264100000000001", "SS", "02", "欧阳**", date(2026, 3, 2), 0)
    with signing_transaction(env.sessions) as unit:
        key = _key_in(unit.db, "certificate-1")
        subject = Subject("certificate-qr:20264100000000001")
        return sign_claims(
            claims,
            "7K3QZD5W2M9XR4TB6NHY8JCV1P",
            kid_of(certificate_of(key)),
            lambda tbs: (
                env.gate.sign(
                    unit,
                    env.custodian,
                    key.id,
                    SignRequest(SignPurpose.CERTIFICATE_QR, subject, tbs),
                ).raw
            ),
        )


def _trust_list(env: SigningEnv) -> bool:
    """A key retired, so the trust list must be signed again by the root."""
    with env.sessions.begin() as db:
        revocation_key = _key_in(db, "revocation-1")
        retire_key(db, env.account("security_officer"), revocation_key.id, "USBKey replaced")
    with _root_session(env) as root:
        return publish_trust_list(env.settings, env.sessions, root, INIT_SIGNER)


def _checkpoint(env: SigningEnv) -> int:
    """Something happened since the last checkpoint, so a new one is signed."""
    with env.sessions.begin() as db:
        append(db, AuditEvent("security_officer", "security_officer", "audit.note", "log", "ok"))
    holder = CheckpointKeyHolder(env.settings, env.tokens, env.sessions)
    try:
        return holder.publish(env.sessions, CHECKPOINTER).row.size
    finally:
        holder.close()


PURPOSES = [
    Purpose("certificate-pdf", "certificate-1", "certificate-pdf:", _certificate_pdf),
    Purpose("certificate-qr", "certificate-1", "certificate-qr:", _certificate_qr),
    Purpose("trust-list", "root", "trust-list:", _trust_list),
    Purpose(
        "audit-checkpoint",
        "audit-checkpoint-1",
        "audit-checkpoint:",
        _checkpoint,
        False,
        ("audit-checkpoint-ed25519-1",),
    ),
]
PURPOSE_IDS = [p.name for p in PURPOSES]


def _key_in(db: Any, label: str) -> SigningKey:
    return db.scalars(select(SigningKey).where(SigningKey.label == label)).one()  # type: ignore[no-any-return]


def _key(env: SigningEnv, label: str) -> SigningKey:
    with env.sessions() as db:
        return _key_in(db, label)


def _set(env: SigningEnv, label: str, **values: Any) -> None:
    with env.sessions.begin() as db:
        key = _key_in(db, label)
        for name, value in values.items():
            setattr(key, name, value)


def _root_session(env: SigningEnv) -> Any:
    root = env.credentials["tokens"][ROOT_USBKEY]
    return env.tokens.login(root["serial"], root["user_pin"])


def _sign_events_since(env: SigningEnv, start: int) -> list[dict[str, Any]]:
    with env.sessions() as db:
        rows = db.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.idx >= start, AuditEventRow.action == "signer.sign")
            .order_by(AuditEventRow.idx)
        ).all()
    return [decode_leaf(row.leaf) for row in rows]


def _log_size(env: SigningEnv) -> int:
    with env.sessions() as db:
        return size(db)


def _produced(env: SigningEnv) -> tuple[int | None, int | None]:
    """The newest trust list version and checkpoint size: what a refused act must not add."""
    with env.sessions() as db:
        trust, checkpoint = latest_trust_list(db), latest_checkpoint(db)
        return (
            None if trust is None else trust.version,
            None if checkpoint is None else checkpoint.size,
        )


def _now() -> datetime:
    return datetime.now(UTC)


KEY_STATES: dict[str, Callable[[SigningKey], dict[str, Any]]] = {
    "key-retired": lambda key: {"status": KeyStatus.RETIRED, "retired_at": _now()},
    "key-usage-limit": lambda key: {"usage_limit": key.usage_count},
    "key-certificate-revoked": lambda key: {"certificate_revoked_at": _now()},
}


@pytest.mark.parametrize("rule", list(KEY_STATES))
@pytest.mark.parametrize("purpose", PURPOSES, ids=PURPOSE_IDS)
def test_a_key_that_may_not_sign_refuses_each_purpose_with_one_event(
    env: SigningEnv, purpose: Purpose, rule: str
) -> None:
    key = _key(env, purpose.key)
    for label in (purpose.key, *purpose.signing_together):
        _set(env, label, **KEY_STATES[rule](_key(env, label)))
    produced, start = _produced(env), _log_size(env)

    with pytest.raises(PolicyRefused) as refused:
        purpose.act(env)

    assert refused.value.rule == rule
    events = _sign_events_since(env, start)
    assert [(e["outcome"], e["reason"]) for e in events] == [("refused", rule)]
    assert str(events[0]["object"]).startswith(purpose.object)
    assert events[0]["details"]["purpose"] == purpose.name  # type: ignore[index]
    assert events[0]["details"]["key"] == purpose.key  # type: ignore[index]
    assert _key(env, purpose.key).usage_count == key.usage_count
    assert _produced(env) == produced  # no trust list, no checkpoint signed


@pytest.mark.parametrize("purpose", PURPOSES, ids=PURPOSE_IDS)
def test_each_signature_counts_against_its_key_and_leaves_one_ok_event(
    env: SigningEnv, purpose: Purpose
) -> None:
    before = _key(env, purpose.key).usage_count
    start = _log_size(env)

    purpose.act(env)

    after = _key(env, purpose.key)
    assert after.usage_count == before + 1
    events = _sign_events_since(env, start)
    keys = [e["details"]["key"] for e in events]  # type: ignore[index]
    assert sorted(keys) == sorted((purpose.key, *purpose.signing_together))
    events = [e for e in events if e["details"]["key"] == purpose.key]  # type: ignore[index]
    assert [(e["outcome"], e["reason"]) for e in events] == [("ok", "allowed by policy")]
    event = events[0]
    assert str(event["object"]).startswith(purpose.object)
    details: dict[str, Any] = event["details"]  # type: ignore[assignment]
    assert (details["purpose"], details["key_id"]) == (purpose.name, after.id)
    assert details["kid"] == kid_of(certificate_of(after)).hex()
    assert (event["doc"] is not None) is purpose.binds_digest


def test_the_qr_payload_from_the_gate_verifies_with_the_certificate_key(env: SigningEnv) -> None:
    cose = _certificate_qr(env)
    verified = verify_sign1(
        cose, certificate_of(_key(env, "certificate-1")), b"7K3QZD5W2M9XR4TB6NHY8JCV1P"
    )
    assert verified.kid == kid_of(certificate_of(_key(env, "certificate-1")))


def test_a_custodians_signature_needs_the_custodian_rules(env: SigningEnv) -> None:
    """The QR payload and the PDF are signed inside the custodian's session: another key's
    session, another workstation or another role is refused, each with its event."""
    env.open("decision-1")
    start = _log_size(env)
    with pytest.raises(PolicyRefused) as refused:
        _certificate_qr_as(env, env.custodian)
    assert refused.value.rule == "session"
    env.signing.end(env.usbkey["serial"])
    env.open("certificate-1")
    elsewhere = Actor(env.custodian.username, env.custodian.account_id, "custodian", "ws-x")
    with pytest.raises(PolicyRefused) as refused:
        _certificate_qr_as(env, elsewhere)
    assert refused.value.rule == "workstation"
    with pytest.raises(PolicyRefused) as refused:
        _certificate_qr_as(env, env.account("officer"))
    assert refused.value.rule == "role"
    events = _sign_events_since(env, start)
    assert [(e["object"], e["reason"]) for e in events] == [
        ("certificate-qr:X", "session"),
        ("certificate-qr:X", "workstation"),
        ("certificate-qr:X", "role"),
    ]
    assert _key(env, "certificate-1").usage_count == 0


def _certificate_qr_as(env: SigningEnv, actor: Actor) -> None:
    with signing_transaction(env.sessions) as unit:
        key = _key_in(unit.db, "certificate-1")
        request = SignRequest(SignPurpose.CERTIFICATE_QR, Subject("certificate-qr:X"), b"claims")
        env.gate.sign(unit, actor, key.id, request)


def test_service_signing_rules(env: SigningEnv) -> None:
    """The service's own keys sign unattended, under their own rule set: a custodian's key
    never does, a service key signs only what its purpose is, only on a logged-in session of
    its own token; and a custodian's session never signs for the service."""
    data = b'{"version":99}'
    cases: list[tuple[str, str, SignPurpose, bool]] = [
        ("certificate-1", "service-key", SignPurpose.CERTIFICATE_QR, True),
        ("root", "purpose", SignPurpose.AUDIT_CHECKPOINT, True),
        ("audit-checkpoint-1", "token-session", SignPurpose.AUDIT_CHECKPOINT, True),
        ("root", "token-session", SignPurpose.TRUST_LIST, False),
    ]
    with _root_session(env) as root:
        for label, rule, purpose, with_root in cases:
            start = _log_size(env)
            with (
                pytest.raises(PolicyRefused) as refused,
                signing_transaction(env.sessions) as unit,
            ):
                key = _key_in(unit.db, label)
                request = SignRequest(purpose, Subject(f"{purpose.value}:test"), data)
                sign_as_service(unit, INIT_SIGNER, key.id, root if with_root else None, request)
            assert refused.value.rule == rule, label
            events = _sign_events_since(env, start)
            assert [(e["outcome"], e["reason"]) for e in events] == [("refused", rule)]
    env.open("certificate-1")
    with pytest.raises(PolicyRefused) as refused, signing_transaction(env.sessions) as unit:
        key = _key_in(unit.db, "certificate-1")
        request = SignRequest(SignPurpose.TRUST_LIST, Subject("trust-list:test"), data)
        env.gate.sign(unit, env.custodian, key.id, request)
    assert refused.value.rule == "purpose"


def test_a_registered_root_never_certifies_itself_again(env: SigningEnv) -> None:
    start = _log_size(env)
    with (
        _root_session(env) as root,
        pytest.raises(PolicyRefused) as refused,
        signing_transaction(env.sessions) as unit,
    ):
        sign_root_enrolment(
            unit, INIT_SIGNER, root, "root", Subject("root-certificate:again"), b"tbs"
        )
    assert refused.value.rule == "key-registered"
    assert [e["reason"] for e in _sign_events_since(env, start)] == ["key-registered"]


def test_provisioning_signed_every_certificate_and_list_through_the_gate(
    env: SigningEnv,
) -> None:
    """`certsvc init`: the root's self-certificate, each key's certificate, the trust list and
    the first checkpoint's signatures (one per checkpoint key: Ed25519 and P-256) are each one
    ok event, counted on the key that made it."""
    with env.sessions() as db:
        rows = db.scalars(
            select(AuditEventRow).where(
                AuditEventRow.action == "signer.sign", AuditEventRow.actor == "certsvc-init"
            )
        ).all()
    kinds = sorted(str(decode_leaf(r.leaf)["object"]).split(":")[0] for r in rows)
    checkpoint_keys = ["audit-checkpoint-1", "audit-checkpoint-ed25519-1"]
    keys = ["certificate-1", "decision-1", "revocation-1", *checkpoint_keys]
    assert kinds == sorted(
        ["root-certificate", "trust-list"]
        + ["audit-checkpoint"] * len(checkpoint_keys)
        + ["key-certificate"] * len(keys)
    )
    assert {r.outcome for r in rows} == {"ok"}
    assert _key(env, "root").usage_count == 1 + len(keys) + 1  # itself, the keys, the list
    for label in checkpoint_keys:
        assert _key(env, label).usage_count == 1
    with env.sessions() as db:
        checkpoint = latest_checkpoint(db)
        assert checkpoint is not None and size(db) == checkpoint.size
        newest = select(AuditEventRow.leaf).order_by(AuditEventRow.idx.desc())
        last = decode_leaf(db.scalars(newest).first() or b"")
    # The checkpoint covers its own signature's event: the last one it holds.
    assert last["object"] == f"audit-checkpoint:{checkpoint.size}"


def test_the_trust_list_is_refused_when_the_root_is_past_its_validity(env: SigningEnv) -> None:
    _set(env, "root", not_after=_now() - timedelta(days=1))
    version = _produced(env)[0]
    with pytest.raises(PolicyRefused) as refused:
        _trust_list(env)
    assert refused.value.rule == "key-validity"
    assert _produced(env)[0] == version
    # The refusal rolled the publication back whole, and stayed on record.
    with env.sessions() as db:
        reasons = db.scalars(
            select(AuditEventRow.outcome).where(AuditEventRow.object.like("trust-list:%"))
        ).all()
    assert sorted(reasons) == ["ok", "refused"]  # init's list, and this refusal
