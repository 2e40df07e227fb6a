"""The signing policy: small named rules, each refusing with what to do, checked by the signing
gate (`signer.gate`) before every signature. Which rules apply depends on the key and on what
the signature is for (its `SignPurpose`):

- a custodian's key (certificate, decision, revocation) signs inside the custodian's session:
  `KEY_RULES` (once per batch chunk), then per signature `DOCUMENT_RULES` for a document or
  `CUSTODIAN_PURPOSE_RULES` for anything else (the certificate's QR payload and PDF);
- a key the service holds itself (root, audit-checkpoint) signs under `SERVICE_RULES`;
- a root key certifying itself, before it is in the register, under `ENROLMENT_RULES`.

Nothing here touches a token or the database.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from signer.actor import CUSTODIAN_ROLE, OFFICER_ROLE, Actor
from signer.errors import SignerError
from signer.models import HsmToken, KeyPurpose, KeyStatus, SigningKey
from signer.sessions import SigningSession
from signer.tokens import TokenSession


class SignPurpose(enum.StrEnum):
    """What a signature is for; each is made by a key of one purpose (`KEY_PURPOSE_OF`)."""

    DECISION = "decision"
    CERTIFICATE = "certificate"
    REVOCATION = "revocation"
    CERTIFICATE_QR = "certificate-qr"
    CERTIFICATE_PDF = "certificate-pdf"
    REVOCATION_LIST = "revocation-list"
    TRUST_LIST = "trust-list"
    KEY_CERTIFICATE = "key-certificate"
    ROOT_CERTIFICATE = "root-certificate"
    AUDIT_CHECKPOINT = "audit-checkpoint"


KEY_PURPOSE_OF: Mapping[SignPurpose, KeyPurpose] = {
    SignPurpose.DECISION: KeyPurpose.DECISION,
    SignPurpose.CERTIFICATE: KeyPurpose.CERTIFICATE,
    SignPurpose.REVOCATION: KeyPurpose.REVOCATION,
    SignPurpose.CERTIFICATE_QR: KeyPurpose.CERTIFICATE,
    SignPurpose.CERTIFICATE_PDF: KeyPurpose.CERTIFICATE,
    SignPurpose.REVOCATION_LIST: KeyPurpose.REVOCATION,
    SignPurpose.TRUST_LIST: KeyPurpose.ROOT,
    SignPurpose.KEY_CERTIFICATE: KeyPurpose.ROOT,
    SignPurpose.ROOT_CERTIFICATE: KeyPurpose.ROOT,
    SignPurpose.AUDIT_CHECKPOINT: KeyPurpose.AUDIT_CHECKPOINT,
}
DOCUMENT_KINDS = (KeyPurpose.CERTIFICATE, KeyPurpose.DECISION, KeyPurpose.REVOCATION)
GATED_KINDS = (KeyPurpose.CERTIFICATE, KeyPurpose.DECISION)
# Keys the service unlocks itself (service PINs, at provisioning): never in a custodian's session.
SERVICE_KEYS = frozenset({KeyPurpose.ROOT, KeyPurpose.AUDIT_CHECKPOINT})
SIGNER_ROLES = frozenset({CUSTODIAN_ROLE})
APPROVALS_NEEDED = 2
# Case rules `certify` judges from its records (eligibility under the rule table, attendance
# at on-site confirmation, a corrected conclusion's second officer, no unanswered objection to
# the 公示); the policy refuses by these names.
ELIGIBILITY, CONFIRMATION = "eligibility", "confirmation"
CORRECTION, OBJECTION = "correction", "objection"
CRIMINAL_RECORD_RULE = "criminal-record"
CASE_RULES = (ELIGIBILITY, CONFIRMATION, CORRECTION, OBJECTION)


@dataclass(frozen=True)
class Refusal:
    """Which rule refused, and a message saying why and what to do."""

    rule: str
    message: str


class PolicyRefused(SignerError):
    """A signature the policy does not allow; `rule` names the rule that refused it."""

    status_code = 403

    def __init__(self, refusal: Refusal) -> None:
        self.rule = refusal.rule
        super().__init__(f"signing refused by rule {refusal.rule!r}: {refusal.message}")

    def public(self) -> dict[str, object]:
        return {**super().public(), "rule": self.rule}


@dataclass(frozen=True)
class DeadlineOverride:
    """An officer's decision to sign past the R3 deadline, with the reason, approved by a
    second officer and valid until it expires; it is audited."""

    officer: str
    officer_role: str
    reason: str
    approved_by: str | None = None
    expires: datetime | None = None


@dataclass(frozen=True)
class CaseGates:
    """What `certify` knows about a document's case: the R2 check, the R3 deadline, whether
    the records still say what was recorded in the audit log when the document was made, and
    the case rules it finds unmet, by the policy rule that refuses them (`CASE_RULES`, or
    `criminal-record` for a replaced result awaiting approval) → why."""

    criminal_record_clear: bool
    deadline: datetime | None = None
    override: DeadlineOverride | None = None
    as_recorded: bool = True
    unmet: Mapping[str, str] = field(default_factory=dict)


class CaseGateSource(Protocol):
    """Supplied by `certify`: the gates of the case behind a document, None when no case is on
    file (which refuses the signature)."""

    def gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates | None: ...


class ContentSource(Protocol):
    """Supplied by `certify`: what a document says, built from the records on file; None when
    no record is behind the id (which refuses the signature). A signing request names
    documents, never their content."""

    def content_for(self, db: Session, kind: str, document_id: str) -> Mapping[str, Any] | None: ...


class DocumentRecords(CaseGateSource, ContentSource, Protocol):
    """Everything the document signer asks the records: each document's content and gates."""


@dataclass(frozen=True)
class KeyContext:
    """What the key-and-session rules look at, once per batch chunk."""

    actor: Actor
    key: SigningKey
    token: HsmToken
    token_workstations: Collection[str]
    session: SigningSession | None
    now: datetime


@dataclass(frozen=True)
class DocumentContext:
    """What the document rules look at: the document, its case gates and approvals."""

    kind: str
    document_id: str
    key: SigningKey
    gates: CaseGates | None
    approvals: Sequence[tuple[str, str]]
    now: datetime


@dataclass(frozen=True)
class PurposeContext:
    """What a custodian's signature other than a document is for (the QR payload, the PDF)."""

    purpose: str
    key: SigningKey


@dataclass(frozen=True)
class ServiceContext:
    """What the service-signing rules look at: a key the service holds, the session it holds
    on that key's token, and what the signature is for."""

    key: SigningKey
    purpose: str
    session: TokenSession | None
    now: datetime

    @property
    def token_serial(self) -> str:
        return self.key.token_serial


@dataclass(frozen=True)
class EnrolmentContext:
    """A root key certifying itself: it is on a token, not yet in the register."""

    token_serial: str
    key_label: str
    registered: bool
    session: TokenSession | None


class _KeyState(Protocol):
    """A key at a moment: what the key's own rules look at, for custodian and service alike."""

    @property
    def key(self) -> SigningKey: ...

    @property
    def now(self) -> datetime: ...


class _TokenHeld(Protocol):
    @property
    def token_serial(self) -> str: ...

    @property
    def session(self) -> TokenSession | None: ...


C = TypeVar("C")


@dataclass(frozen=True)
class Rule(Generic[C]):
    """A named check on one kind of context: a `Rule[KeyContext]` cannot sit in a list of
    `Rule[DocumentContext]` (mypy refuses it), so no rule is silently skipped or misapplied."""

    name: str
    check: Callable[[C], str | None]


def _role(c: KeyContext) -> str | None:
    if c.actor.role in SIGNER_ROLES:
        return None
    return (
        f"the {c.actor.role} role never signs; the USBKey's custodian signs from their workstation"
    )


def _not_retired(c: _KeyState) -> str | None:
    if c.key.status is not KeyStatus.RETIRED:
        return None
    when = f" on {c.key.retired_at:%Y-%m-%d}" if c.key.retired_at else ""
    return (
        f"key {c.key.label} was retired{when} and never signs again; "
        f"sign with the body's active {c.key.purpose.value} key"
    )


def _certificate_not_revoked(c: _KeyState) -> str | None:
    if c.key.certificate_revoked_at is None:
        return None
    return (
        f"the certificate of key {c.key.label} was revoked on "
        f"{c.key.certificate_revoked_at:%Y-%m-%d}; the key never signs again"
    )


def _within_validity(c: _KeyState) -> str | None:
    if c.key.not_before <= c.now <= c.key.not_after:
        return None
    return (
        f"key {c.key.label}'s certificate is valid from {c.key.not_before:%Y-%m-%d} to "
        f"{c.key.not_after:%Y-%m-%d}, not now; the security officer provisions a new key"
    )


def usage_refusal(key: SigningKey, count: int) -> Refusal | None:
    """`key-usage-limit`, checked before each signature with the running count."""
    if key.usage_limit is None or count < key.usage_limit:
        return None
    return Refusal(
        "key-usage-limit",
        f"key {key.label} has made {count} of its {key.usage_limit} allowed signatures; "
        f"the security officer provisions a new key",
    )


def _under_limit(c: _KeyState) -> str | None:
    refusal = usage_refusal(c.key, c.key.usage_count)
    return refusal.message if refusal else None


def _session(c: KeyContext) -> str | None:
    if c.session is None or not c.session.is_open:
        return (
            f"no open signing session on USBKey {c.token.label}: insert it and open a session "
            f"for key {c.key.label} with the PIN from your workstation"
        )
    if c.session.key_label != c.key.label:
        opened_for = c.session.key_label or "no key"
        return (
            f"the session on USBKey {c.token.label} was opened for {opened_for}, not for key "
            f"{c.key.label}: close it and open one for this key"
        )
    return None


def _custodian(c: KeyContext) -> str | None:
    if c.token.custodian_id != c.actor.account_id:
        return f"USBKey {c.token.label} is not in your custody; only its custodian signs with it"
    if c.session is not None and c.session.custodian != c.actor.username:
        return f"the session on USBKey {c.token.label} was opened by another custodian"
    return None


def _workstation(c: KeyContext) -> str | None:
    name = c.actor.workstation
    if name is None:
        return "the request was not signed by a registered workstation"
    if name not in c.token_workstations:
        return (
            f"workstation {name} is not registered for USBKey {c.token.label}; an admin "
            f"registers it for the token"
        )
    if c.session is not None and c.session.workstation != name:
        return (
            f"the session on USBKey {c.token.label} was opened on workstation "
            f"{c.session.workstation}, not {name}: sign from where the key is inserted"
        )
    return None


def _purpose(d: DocumentContext) -> str | None:
    if d.kind not in {k.value for k in DOCUMENT_KINDS}:
        kinds = ", ".join(k.value for k in DOCUMENT_KINDS)
        return f"{d.kind!r} is not a document kind; the signer signs: {kinds}"
    if d.kind != d.key.purpose.value:
        return f"key {d.key.label} signs {d.key.purpose.value} documents only, not a {d.kind}"
    return None


def _criminal_record(d: DocumentContext) -> str | None:
    if d.kind not in GATED_KINDS:
        return None
    if d.gates is None:
        return f"R2: no case is on file for {d.kind} {d.document_id}, so no criminal-record check"
    if not d.gates.criminal_record_clear:
        why = d.gates.unmet.get(CRIMINAL_RECORD_RULE)
        if why is not None:
            return f"{d.kind} {d.document_id}: {why}"
        return (
            f"R2: the criminal-record check for {d.kind} {d.document_id} is not finished and "
            f"clear; finish it before any conclusion"
        )
    return None


def _as_recorded(d: DocumentContext) -> str | None:
    if d.kind not in GATED_KINDS or d.gates is None or d.gates.as_recorded:
        return None
    return (
        f"{d.kind} {d.document_id}: the records no longer say what the audit log recorded when "
        f"it was made (edited in the database?); nothing is signed — run `certsvc audit "
        f"reconcile` and have a security officer look"
    )


def _case_rule(name: str) -> Callable[[DocumentContext], str | None]:
    """The check of one case rule whose verdict `certify` gives in `CaseGates.unmet`."""

    def check(d: DocumentContext) -> str | None:
        if d.kind not in GATED_KINDS or d.gates is None:
            return None
        why = d.gates.unmet.get(name)
        return None if why is None else f"{d.kind} {d.document_id}: {why}"

    return check


def _deadline(d: DocumentContext) -> str | None:
    if d.kind not in GATED_KINDS or d.gates is None or d.gates.deadline is None:
        return None
    if d.now <= d.gates.deadline:
        return None
    override = d.gates.override
    if override is None:
        return (
            f"R3: the deadline for {d.kind} {d.document_id} passed on "
            f"{d.gates.deadline:%Y-%m-%d}; an officer may override it, with a reason"
        )
    if override.officer_role != OFFICER_ROLE or not override.reason.strip():
        return "R3: a deadline override must come from an officer and give a reason"
    if override.approved_by is None or override.approved_by == override.officer:
        return (
            f"R3: the deadline override for {d.kind} {d.document_id} asked by "
            f"{override.officer} awaits a second officer's approval"
        )
    if override.expires is None or d.now > override.expires:
        return (
            f"R3: the deadline override for {d.kind} {d.document_id} has no expiry or "
            f"expired; an officer asks a new one"
        )
    return None


def _dual_control(d: DocumentContext) -> str | None:
    if d.kind != KeyPurpose.REVOCATION.value:
        return None
    officers = {officer for officer, role in d.approvals if role == OFFICER_ROLE}
    if len(officers) >= APPROVALS_NEEDED:
        return None
    return (
        f"revocation {d.document_id} is approved by {len(officers)} officer(s); "
        f"{APPROVALS_NEEDED} different officers must approve it before it is signed"
    )


def _custodian_purpose(c: PurposeContext) -> str | None:
    wanted = _key_purpose(c.purpose)
    if wanted is None or c.purpose in {k.value for k in DOCUMENT_KINDS}:
        return f"{c.purpose!r} is not a signature a custodian's key makes outside a document"
    if wanted in SERVICE_KEYS:
        return f"a {c.purpose} is signed by the service's {wanted.value} key, not in a session"
    if c.key.purpose is not wanted:
        return f"a {c.purpose} is signed by a {wanted.value} key, not by key {c.key.label}"
    return None


def _service_key(c: ServiceContext) -> str | None:
    if c.key.purpose in SERVICE_KEYS:
        return None
    return (
        f"key {c.key.label} is a custodian's {c.key.purpose.value} key: it signs only in its "
        f"custodian's session, never unattended"
    )


def _service_purpose(c: ServiceContext) -> str | None:
    wanted = _key_purpose(c.purpose)
    if wanted is None:
        return f"{c.purpose!r} is not something the service signs"
    if c.key.purpose is not wanted:
        return f"a {c.purpose} is signed by the {wanted.value} key, not by key {c.key.label}"
    return None


def _token_session(c: _TokenHeld) -> str | None:
    if c.session is not None and c.session.is_open and c.session.serial == c.token_serial:
        return None
    return (
        f"the service holds no logged-in session on token {c.token_serial}: unlock that token "
        f"(its service PIN) before signing with its key"
    )


def _not_registered(c: EnrolmentContext) -> str | None:
    if not c.registered:
        return None
    return (
        f"key {c.key_label} on token {c.token_serial} is registered already: a root certifies "
        f"itself once, when it is enrolled"
    )


def _key_purpose(purpose: str) -> KeyPurpose | None:
    try:
        return KEY_PURPOSE_OF[SignPurpose(purpose)]
    except ValueError:
        return None


# A custodian's key, inside the custodian's session: checked once per batch chunk.
KEY_RULES: tuple[Rule[KeyContext], ...] = (
    Rule("role", _role),
    Rule("key-retired", _not_retired),
    Rule("key-certificate-revoked", _certificate_not_revoked),
    Rule("key-validity", _within_validity),
    Rule("key-usage-limit", _under_limit),
    Rule("custodian", _custodian),
    Rule("workstation", _workstation),
    Rule("session", _session),
)
# Each document a custodian signs (certificate, decision, revocation).
DOCUMENT_RULES: tuple[Rule[DocumentContext], ...] = (
    Rule("purpose", _purpose),
    Rule(CRIMINAL_RECORD_RULE, _criminal_record),
    *(Rule(name, _case_rule(name)) for name in CASE_RULES),
    Rule("as-recorded", _as_recorded),  # after the case rules: a tampered case names its gap
    Rule("deadline", _deadline),
    Rule("dual-control", _dual_control),
)
# Each other signature a custodian's key makes (the certificate's QR payload and PDF).
CUSTODIAN_PURPOSE_RULES: tuple[Rule[PurposeContext], ...] = (Rule("purpose", _custodian_purpose),)
# Keys the service holds and unlocks itself (root, audit-checkpoint): trust lists, key
# certificates, audit checkpoints.
SERVICE_RULES: tuple[Rule[ServiceContext], ...] = (
    Rule("service-key", _service_key),
    Rule("key-retired", _not_retired),
    Rule("key-certificate-revoked", _certificate_not_revoked),
    Rule("key-validity", _within_validity),
    Rule("key-usage-limit", _under_limit),
    Rule("purpose", _service_purpose),
    Rule("token-session", _token_session),
)
# A root key's self-signed certificate, made once when the body's root is enrolled.
ENROLMENT_RULES: tuple[Rule[EnrolmentContext], ...] = (
    Rule("key-registered", _not_registered),
    Rule("token-session", _token_session),
)


def first_refusal(rules: Sequence[Rule[C]], context: C) -> Refusal | None:
    """The first rule in `rules` that refuses `context`, or None when all allow it."""
    for rule in rules:
        message = rule.check(context)
        if message is not None:
            return Refusal(rule.name, message)
    return None
