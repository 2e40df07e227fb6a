"""The signing gate: the one way to a signature.

Every signature the service makes — a decision, a certificate's COSE document, its QR payload
and its PDF, a revocation, a trust list, a key certificate, an audit checkpoint — is asked for
here with what it is for (`SignPurpose`). The gate takes the key's row (concurrent signers
never overrun its usage limit), checks the rules that apply (`signer.policy`), signs on the
token, verifies the signature, counts it against the key's usage and leaves exactly one audit
event `signer.sign`: outcome `ok`, `refused` (reason: the rule) or `failed` (reason:
`token-fault`). The raw token operation (`signer._internal.raw`) is imported by this module
alone; `tests/test_signer/test_signing_gate.py` reads every module to hold that.

Events go into the caller's unit of work (`signing_transaction`): an ok event commits with the
action it signs for, or neither does; a refusal or a token failure is kept on record
(`audit.trail.keep_events`) whether the action goes on or rolls back.

Three entry points, by who holds the key:

- `SigningGate.sign` / `SigningGate.chunk`: a custodian's key, in the custodian's signing
  session (one signature, or a batch chunk that checks the key's rules once);
- `sign_as_service`: a key the service unlocks itself (root, audit checkpoint) — ECDSA P-256, or
  Ed25519 for audit checkpoints;
- `sign_root_enrolment`: a root key certifying itself, before it is in the register.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent, DetailValue
from audit.log import append_many
from audit.trail import event, keep_events
from common.cose import kid_of
from common.dbtypes import utcnow
from common.errors import NotFound
from common.unit_of_work import unit_of_work
from signer._internal.raw import DigestSigner, checked_p256, sign_ed25519, sign_p256
from signer.actor import Actor
from signer.custody import certificate_of, token_workstations
from signer.ecdsa import EcdsaSignature
from signer.errors import (
    KeyNotFound,
    SessionLost,
    SignatureInvalid,
    SignerError,
    TokenAbsent,
    TokenFault,
    TokenLocked,
)
from signer.models import HsmToken, KeyPurpose, SigningKey
from signer.policy import (
    CUSTODIAN_PURPOSE_RULES,
    DOCUMENT_RULES,
    ENROLMENT_RULES,
    KEY_RULES,
    SERVICE_RULES,
    CaseGates,
    DocumentContext,
    EnrolmentContext,
    KeyContext,
    PolicyRefused,
    PurposeContext,
    Refusal,
    ServiceContext,
    SignPurpose,
    first_refusal,
    usage_refusal,
)
from signer.sessions import SigningSessions
from signer.tokens import TokenPublicKey, TokenSession

SIGN_ACTION = "signer.sign"
# What a token may answer instead of a signature; each is a `failed` event.
TOKEN_ERRORS = (TokenFault, TokenAbsent, SessionLost, TokenLocked, SignatureInvalid, KeyNotFound)
DETAIL_MAX = 400
# Signatures a pipeline lets the token thread run ahead of the caller: enough to keep both busy,
# few enough that a slow USBKey still ends its chunk close to the chunk's time limit.
PIPELINE_DEPTH = 4

T = TypeVar("T")


@dataclass
class GateTransaction:
    """The caller's unit of work as the gate writes into it: ok events go into `db` with the
    action, refusal and failure events are kept on record (`keep_events`); `unsigned` counts
    service signatures authorised and recorded but not made yet."""

    db: Session
    unsigned: int = 0


@contextmanager
def signing_transaction(sessions: sessionmaker[Session]) -> Iterator[GateTransaction]:
    """One unit of work (`common.unit_of_work`) for an action and the signatures it asks the
    gate for.

    The action and its ok events commit together (fail closed); a signature authorised but
    never made rolls the unit back, so no ok event stands without its signature. Refusal and
    failure events stay on record whether the action goes on or rolls back: every attempt is
    kept, the action only if it completes.
    """
    with unit_of_work(sessions) as db:
        unit = GateTransaction(db)
        yield unit
        if unit.unsigned:
            raise SignerError(
                "a signature was authorised and recorded but never made: nothing of this "
                "action was kept"
            )


@dataclass(frozen=True)
class Subject:
    """What an attempt is about, as its audit event names it: the object (`certificate:<id>`,
    `certificate-qr:<number>`, `trust-list:<version>`…), the SHA-256 of the content it binds
    (default: of the bytes signed) and details of the caller's (a batch name, an override)."""

    object: str
    document_sha256: str | None = None
    details: Mapping[str, DetailValue] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseFacts:
    """A document's facts from the records, for `DOCUMENT_RULES`: its case gates (R2, R3)
    and the officers who approved exactly its content (dual control)."""

    document_id: str
    gates: CaseGates | None
    approvals: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class SignRequest:
    """One signature: what it is for (a `SignPurpose` value; for a document, its kind as
    requested), what its event names, and the exact bytes to sign. A document carries its
    `case` facts; anything else carries none."""

    purpose: str
    subject: Subject
    data: bytes
    case: CaseFacts | None = None

    def bound(self) -> Subject:
        """The subject, bound to the SHA-256 of the bytes signed when the caller named none."""
        if self.subject.document_sha256 is not None:
            return self.subject
        return replace(self.subject, document_sha256=hashlib.sha256(self.data).hexdigest())


class SigningChunk:
    """Signatures with one custodian key inside one transaction, after the key's rules allowed
    it. Each signature passes its own rules (`DOCUMENT_RULES` or `CUSTODIAN_PURPOSE_RULES`) and
    the usage limit (with the running count), is signed and verified; `close` appends the ok
    events at once (`append_many`) and stores the new usage count. A token fault records a
    `failed` event and raises: the transaction rolls back whole.
    """

    def __init__(
        self,
        unit: GateTransaction,
        actor: Actor,
        key: SigningKey,
        token: TokenSession,
        now: datetime,
        after_use: Callable[[], None],
    ) -> None:
        self._unit = unit
        self._actor = actor
        self.key = key
        self.now = now
        self._token = token
        self._after_use = after_use
        self._public_key = _p256_public_key(key)
        self._kid = kid_of(certificate_of(key)).hex()
        self._count = key.usage_count
        self._ok: list[AuditEvent] = []
        self.stopped: Refusal | None = None

    def sign(self, request: SignRequest) -> EcdsaSignature | Refusal:
        """The signature, or the refusal (recorded). A usage-limit refusal also sets `stopped`:
        nothing more is signed with this key in this chunk."""
        refusal = self._check(request)
        if refusal is not None:
            self.refuse(request.purpose, request.bound(), refusal)
            return refusal
        signature = _sign(self._unit, self._actor, self.key, self._token, request, self._public_key)
        self._count += 1
        self._allowed(request)
        return signature

    def _check(self, request: SignRequest) -> Refusal | None:
        """The request's rules and the usage limit, with the running count."""
        refusal = _custodian_check(request, self.key, self.now) or usage_refusal(
            self.key, self._count
        )
        if refusal is not None and refusal.rule == "key-usage-limit":
            self.stopped = refusal
        return refusal

    def _allowed(self, request: SignRequest) -> None:
        details = {**_key_details(self.key, request.purpose), "kid": self._kid}
        self._ok.append(_event(self._actor, details, request.bound(), "ok", "allowed by policy"))

    def refuse(self, purpose: str | None, subject: Subject, refusal: Refusal) -> None:
        """Record a refused attempt: one event naming the rule."""
        keep_events(
            self._unit.db,
            [_refused(self._actor, _key_details(self.key, purpose), subject, refusal)],
        )

    def close(self) -> list[int]:
        """Append the ok events in signing order (their log indexes) and store the count."""
        indexes = append_many(self._unit.db, self._ok)
        self.key.usage_count = self._count
        self._after_use()
        return indexes


@dataclass
class _Entry(Generic[T]):
    """A request or refusal in a pipeline: with `digest`, a signature on its way."""

    tag: T
    purpose: str | None
    subject: Subject
    refusal: Refusal | None = None
    request: SignRequest | None = None
    digest: bytes = b""


class SigningPipeline(Generic[T]):
    """A chunk's signatures made on a token thread (`DigestSigner`) while the caller's thread
    verifies those back and prepares the next: sign then verify in series leaves each side
    idle half the time, and both release the GIL.

    Each request passes its rules and the usage limit when it is submitted, in order, exactly
    as `SigningChunk.sign` checks it; its event — ok, refused, or failed on a token fault — is
    recorded when it is finished, in submission order, so the log and the chunk's transaction
    read as if the signatures were made one by one: after a fault nothing later is recorded,
    and the fault rolls the chunk back whole. Each outcome comes back with the caller's `tag`.
    Use as a context manager around the chunk's work, before `SigningChunk.close`.
    """

    def __init__(self, chunk: SigningChunk) -> None:
        self._chunk = chunk
        self._signer = DigestSigner(chunk._token, chunk.key.label)
        self._entries: deque[_Entry[T]] = deque()
        self._in_flight = 0
        self.submitted = 0

    def __enter__(self) -> SigningPipeline[T]:
        self._signer.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._signer.__exit__(*exc)

    def sign(self, tag: T, request: SignRequest) -> Refusal | None:
        """Submit a signature; its refusal, if the rules refuse it now (recorded in turn)."""
        chunk = self._chunk
        refusal = chunk._check(request)
        if refusal is not None:
            self._entries.append(_Entry(tag, request.purpose, request.bound(), refusal))
            return refusal
        chunk._count += 1
        digest = hashlib.sha256(request.data).digest()
        self._signer.submit(digest)
        self._entries.append(
            _Entry(tag, request.purpose, request.bound(), request=request, digest=digest)
        )
        self._in_flight += 1
        self.submitted += 1
        return None

    def refuse(self, tag: T, purpose: str | None, subject: Subject, refusal: Refusal) -> None:
        """A refusal of the caller's own (as `SigningChunk.refuse`), recorded in turn."""
        self._entries.append(_Entry(tag, purpose, subject, refusal))

    def ready(self) -> Iterator[tuple[T, EcdsaSignature | Refusal]]:
        """What is finished at the head, in order; waits for the oldest signature while more
        than `PIPELINE_DEPTH` are in flight."""
        while self._entries:
            head = self._entries[0]
            if (
                head.request is not None
                and self._in_flight <= PIPELINE_DEPTH
                and not self._signer.ready()
            ):
                return
            yield self._finish(self._entries.popleft())

    def finish(self) -> Iterator[tuple[T, EcdsaSignature | Refusal]]:
        """Everything still pending, in order, waiting for the token."""
        while self._entries:
            yield self._finish(self._entries.popleft())

    def _finish(self, entry: _Entry[T]) -> tuple[T, EcdsaSignature | Refusal]:
        chunk = self._chunk
        if entry.request is None:
            assert entry.refusal is not None
            chunk.refuse(entry.purpose, entry.subject, entry.refusal)
            return entry.tag, entry.refusal
        self._in_flight -= 1
        with _token_faults(chunk._unit, chunk._actor, chunk.key, entry.request):
            raw = self._signer.result()
            signature = checked_p256(
                chunk._token, chunk.key.label, entry.digest, raw, chunk._public_key
            )
        chunk._allowed(entry.request)
        return entry.tag, signature


class SigningGate:
    """Signatures with a custodian's key, inside the custodian's open signing session on the
    key's token: `KEY_RULES`, then `DOCUMENT_RULES` for a document or `CUSTODIAN_PURPOSE_RULES`
    for anything else. One per process, shared by requests."""

    def __init__(
        self, signing_sessions: SigningSessions, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.signing_sessions = signing_sessions
        self._clock = clock

    def sign(
        self, unit: GateTransaction, actor: Actor, key_id: int, request: SignRequest
    ) -> EcdsaSignature:
        """One signature; `PolicyRefused` names the rule that refused it."""
        opened = self.chunk(unit, actor, key_id, request.bound(), request.purpose)
        if isinstance(opened, Refusal):
            raise PolicyRefused(opened)
        signed = opened.sign(request)
        if isinstance(signed, Refusal):
            raise PolicyRefused(signed)
        opened.close()
        return signed

    def chunk(
        self,
        unit: GateTransaction,
        actor: Actor,
        key_id: int,
        subject: Subject,
        purpose: str | None = None,
    ) -> SigningChunk | Refusal:
        """Take the key's row and check its rules once, for a run of signatures; a refusal is
        recorded as one event about `subject` (what the run was to sign)."""
        key = _lock_key(unit.db, key_id)
        token = unit.db.get_one(HsmToken, key.token_serial)
        session = self.signing_sessions.current(token.serial)
        now = self._clock()
        context = KeyContext(
            actor, key, token, token_workstations(unit.db, token.serial), session, now
        )
        refusal = first_refusal(KEY_RULES, context)
        if refusal is not None:
            keep_events(unit.db, [_refused(actor, _key_details(key, purpose), subject, refusal)])
            return refusal
        assert session is not None  # the session rule passed
        signing_sessions = self.signing_sessions
        return SigningChunk(
            unit,
            actor,
            key,
            session.token,
            now,
            lambda: signing_sessions.touch(session),
        )


def sign_as_service(
    unit: GateTransaction,
    actor: Actor,
    key_id: int,
    session: TokenSession | None,
    request: SignRequest,
) -> bytes:
    """One signature with a key the service holds (root, audit-checkpoint), on the session it
    logged in to that key's token (None when it holds none: refused by `token-session`):
    `SERVICE_RULES`; `PolicyRefused` names the rule. The signature as certificates and signed
    notes carry it: ASN.1 DER for ECDSA, 64 bytes for Ed25519."""
    permit = authorise_service(unit, actor, key_id, session, request.purpose, request.bound())
    return permit.sign(request.data)


def authorise_service(
    unit: GateTransaction,
    actor: Actor,
    key_id: int,
    session: TokenSession | None,
    purpose: str,
    subject: Subject,
) -> ServicePermit:
    """`SERVICE_RULES` for one signature whose bytes are not known yet: it is counted and its
    ok event appended now, and `ServicePermit.sign` makes it. An audit checkpoint needs this
    order — its own event goes into the log before the tree head it signs, so it covers it.
    Both are in `unit`'s transaction: the event stays only if the signature was made."""
    key = _lock_key(unit.db, key_id)
    now = utcnow()
    refusal = first_refusal(SERVICE_RULES, ServiceContext(key, purpose, session, now))
    details = _key_details(key, purpose)
    if refusal is not None:
        keep_events(unit.db, [_refused(actor, details, subject, refusal)])
        raise PolicyRefused(refusal)
    assert session is not None  # the token-session rule passed
    public_key = _service_public_key(key)
    key.usage_count += 1
    ok = {**details, "kid": kid_of(certificate_of(key)).hex()}
    append_many(unit.db, [_event(actor, ok, subject, "ok", "allowed by policy")])
    unit.unsigned += 1
    return ServicePermit(unit, actor, key, session, public_key, purpose, subject)


class ServicePermit:
    """One service signature the rules allowed, already counted and recorded: `sign` makes it,
    once; a token fault records a `failed` event and raises (the transaction rolls back)."""

    def __init__(
        self,
        unit: GateTransaction,
        actor: Actor,
        key: SigningKey,
        session: TokenSession,
        public_key: TokenPublicKey,
        purpose: str,
        subject: Subject,
    ) -> None:
        self._unit = unit
        self._actor = actor
        self._key = key
        self._session = session
        self._public_key = public_key
        self._purpose = purpose
        self._subject = subject
        self._used = False

    def sign(self, data: bytes) -> bytes:
        """The signature: ASN.1 DER for ECDSA, 64 bytes for Ed25519."""
        if self._used:
            raise SignerError("a service signature was authorised once and is made once")
        self._used = True
        request = SignRequest(self._purpose, self._subject, data)
        public_key = self._public_key
        with _token_faults(self._unit, self._actor, self._key, request):
            if isinstance(public_key, Ed25519PublicKey):
                signature = sign_ed25519(self._session, self._key.label, data, public_key)
            else:
                signature = sign_p256(self._session, self._key.label, data, public_key).der
        self._unit.unsigned -= 1
        return signature


def sign_root_enrolment(
    unit: GateTransaction,
    actor: Actor,
    session: TokenSession,
    key_label: str,
    subject: Subject,
    data: bytes,
) -> EcdsaSignature:
    """The root key's signature over its own certificate, once, before the key is registered
    (so it is checked against the token's public key, and counted by the registration that
    follows in the same transaction): `ENROLMENT_RULES`."""
    registered = unit.db.scalar(
        select(SigningKey.id).where(
            SigningKey.token_serial == session.serial, SigningKey.label == key_label
        )
    )
    details: dict[str, DetailValue] = {
        "key": key_label,
        "token": session.serial,
        "purpose": SignPurpose.ROOT_CERTIFICATE.value,
    }
    context = EnrolmentContext(session.serial, key_label, registered is not None, session)
    refusal = first_refusal(ENROLMENT_RULES, context)
    if refusal is not None:
        keep_events(unit.db, [_refused(actor, details, subject, refusal)])
        raise PolicyRefused(refusal)
    bound = SignRequest(SignPurpose.ROOT_CERTIFICATE, subject, data).bound()
    try:
        public_key = session.public_key(key_label)
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SignerError(f"key {key_label}: a root key is ECDSA P-256")
        signature = sign_p256(session, key_label, data, public_key)
    except TOKEN_ERRORS as exc:
        keep_events(unit.db, [_failed(actor, details, bound, exc)])
        raise
    append_many(unit.db, [_event(actor, details, bound, "ok", "allowed by policy")])
    return signature


def _custodian_check(request: SignRequest, key: SigningKey, now: datetime) -> Refusal | None:
    if request.case is None:
        return first_refusal(CUSTODIAN_PURPOSE_RULES, PurposeContext(request.purpose, key))
    case = request.case
    context = DocumentContext(
        request.purpose, case.document_id, key, case.gates, case.approvals, now
    )
    return first_refusal(DOCUMENT_RULES, context)


def _lock_key(db: Session, key_id: int) -> SigningKey:
    """The key's row, re-read under its lock: a write first takes the row lock (PostgreSQL)
    or the database's write lock (SQLite) before anything is read, serialising signers per
    key, so the usage count cannot be overrun."""
    db.execute(
        update(SigningKey).where(SigningKey.id == key_id).values(usage_count=SigningKey.usage_count)
    )
    key = db.get(SigningKey, key_id, populate_existing=True)
    if key is None:
        raise NotFound(f"key_id: no signing key {key_id}")
    return key


def _p256_public_key(key: SigningKey) -> ec.EllipticCurvePublicKey:
    """The public key every signature is verified with: the one in the key's registered
    certificate, which must be ECDSA P-256 (ES256)."""
    public = certificate_of(key).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise SignerError(
            f"key {key.label}: its certificate holds no ECDSA P-256 key, and only ES256 keys "
            f"sign; the security officer provisions a P-256 key"
        )
    return public


def _service_public_key(key: SigningKey) -> TokenPublicKey:
    """A service key's public half, from its registered certificate: ECDSA P-256 (ES256), or
    Ed25519 (what audit checkpoints carry for public witnesses)."""
    public = certificate_of(key).public_key()
    if isinstance(public, Ed25519PublicKey):
        if key.purpose is not KeyPurpose.AUDIT_CHECKPOINT:
            raise SignerError(f"key {key.label}: only audit-checkpoint keys sign with Ed25519")
        return public
    return _p256_public_key(key)


def _sign(
    unit: GateTransaction,
    actor: Actor,
    key: SigningKey,
    token: TokenSession,
    request: SignRequest,
    public_key: ec.EllipticCurvePublicKey,
) -> EcdsaSignature:
    with _token_faults(unit, actor, key, request):
        return sign_p256(token, key.label, request.data, public_key)


@contextmanager
def _token_faults(
    unit: GateTransaction, actor: Actor, key: SigningKey, request: SignRequest
) -> Iterator[None]:
    """A token that answers with an error instead of a signature: one `failed` event."""
    try:
        yield
    except TOKEN_ERRORS as exc:
        details = _key_details(key, request.purpose)
        keep_events(unit.db, [_failed(actor, details, request.bound(), exc)])
        raise


def _key_details(key: SigningKey, purpose: str | None) -> dict[str, DetailValue]:
    details: dict[str, DetailValue] = {
        "key_id": key.id,
        "key": key.label,
        "token": key.token_serial,
    }
    if purpose is not None:
        details["purpose"] = purpose
    return details


def _event(
    actor: Actor,
    details: Mapping[str, DetailValue],
    subject: Subject,
    outcome: str,
    reason: str,
) -> AuditEvent:
    return event(
        actor,
        SIGN_ACTION,
        subject.object,
        outcome=outcome,
        reason=reason,
        document_sha256=subject.document_sha256,
        details={**details, **subject.details},
    )


def _refused(
    actor: Actor, details: Mapping[str, DetailValue], subject: Subject, refusal: Refusal
) -> AuditEvent:
    with_message = {**details, "detail": refusal.message[:DETAIL_MAX]}
    return _event(actor, with_message, subject, "refused", refusal.rule)


def _failed(
    actor: Actor, details: Mapping[str, DetailValue], subject: Subject, exc: Exception
) -> AuditEvent:
    with_error = {**details, "error": type(exc).__name__}
    return _event(actor, with_error, subject, "failed", "token-fault")
