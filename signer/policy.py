"""The signing policy: small named rules, each refusing with what to do, checked before every
signature. Rules about the key and the session hold for a whole batch; rules about a document
hold for that document. Nothing here touches a token or the database.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from signer.actor import CUSTODIAN_ROLE, OFFICER_ROLE, Actor
from signer.errors import SignerError
from signer.models import HsmToken, KeyPurpose, KeyStatus, SigningKey
from signer.sessions import SigningSession

DOCUMENT_KINDS = (KeyPurpose.CERTIFICATE, KeyPurpose.DECISION, KeyPurpose.REVOCATION)
GATED_KINDS = (KeyPurpose.CERTIFICATE, KeyPurpose.DECISION)
SIGNER_ROLES = frozenset({CUSTODIAN_ROLE})
APPROVALS_NEEDED = 2


@dataclass(frozen=True)
class Refusal:
    """Which rule refused, and a message saying why and what to do."""

    rule: str
    message: str


class PolicyRefused(SignerError):
    """A signature the policy does not allow; `rule` names the rule that refused it."""

    def __init__(self, refusal: Refusal) -> None:
        self.rule = refusal.rule
        super().__init__(f"signing refused by rule {refusal.rule!r}: {refusal.message}")


@dataclass(frozen=True)
class DeadlineOverride:
    """An officer's decision to sign past the R3 deadline, with the reason; it is audited."""

    officer: str
    officer_role: str
    reason: str


@dataclass(frozen=True)
class CaseGates:
    """What `certify` knows about a document's case: the R2 check and the R3 deadline."""

    criminal_record_clear: bool
    deadline: datetime | None = None
    override: DeadlineOverride | None = None


class CaseGateSource(Protocol):
    """Supplied by `certify`: the gates of the case behind a document, None when no case is on
    file (which refuses the signature)."""

    def gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates | None: ...


class NoCaseRecords:
    """The gate source until `certify` provides one: no case is on file, so no certificate or
    decision can be signed (fail closed); revocations need no case gates."""

    def gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates | None:
        return None


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


def _not_retired(c: KeyContext) -> str | None:
    if c.key.status is not KeyStatus.RETIRED:
        return None
    when = f" on {c.key.retired_at:%Y-%m-%d}" if c.key.retired_at else ""
    return (
        f"key {c.key.label} was retired{when} and never signs again; "
        f"sign with the body's active {c.key.purpose.value} key"
    )


def _certificate_not_revoked(c: KeyContext) -> str | None:
    if c.key.certificate_revoked_at is None:
        return None
    return (
        f"the certificate of key {c.key.label} was revoked on "
        f"{c.key.certificate_revoked_at:%Y-%m-%d}; the key never signs again"
    )


def _within_validity(c: KeyContext) -> str | None:
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


def _under_limit(c: KeyContext) -> str | None:
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
        return (
            f"R2: the criminal-record check for {d.kind} {d.document_id} is not finished and "
            f"clear; finish it before any conclusion"
        )
    return None


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
DOCUMENT_RULES: tuple[Rule[DocumentContext], ...] = (
    Rule("purpose", _purpose),
    Rule("criminal-record", _criminal_record),
    Rule("deadline", _deadline),
    Rule("dual-control", _dual_control),
)


def first_refusal(rules: Sequence[Rule[C]], context: C) -> Refusal | None:
    """The first rule in `rules` that refuses `context`, or None when all allow it."""
    for rule in rules:
        message = rule.check(context)
        if message is not None:
            return Refusal(rule.name, message)
    return None
