"""Signing certificates, decisions and revocations: policy first, then the token, then the
signed document and its audit event committed together.

A batch is worked in chunks, each one database transaction that first takes the key's row (so
two workers never sign with one key at once, and the usage count cannot be overrun), skips
documents already signed, signs the rest on the token, and commits documents and events
together. A token fault rolls its chunk back — those signatures are discarded, nothing is
half-recorded — and re-running the same batch signs only what is still missing.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.log import append_many
from common.cose import encode_sign1, kid_of, protected_header, to_be_signed
from common.dbtypes import utcnow
from common.errors import InvalidInput, NotFound
from signer.actor import Actor
from signer.audit_trail import actor_event, record
from signer.custody import approvals_for, certificate_of, token_workstations
from signer.ecdsa import sign_p256
from signer.errors import (
    KeyNotFound,
    SessionLost,
    SignatureInvalid,
    SignerError,
    TokenAbsent,
    TokenFault,
    TokenLocked,
)
from signer.models import HsmToken, KeyPurpose, SignedDocumentRow, SigningKey
from signer.policy import (
    DOCUMENT_RULES,
    GATED_KINDS,
    KEY_RULES,
    CaseGates,
    CaseGateSource,
    DocumentContext,
    KeyContext,
    PolicyRefused,
    Refusal,
    first_refusal,
    usage_refusal,
)
from signer.sessions import SigningSessions

SIGN_ACTION = "signer.sign"
DOCUMENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
TOKEN_ERRORS = (TokenFault, TokenAbsent, SessionLost, TokenLocked, SignatureInvalid, KeyNotFound)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Document:
    """A document to sign: its kind (the key purpose it needs), the caller's stable id (the
    idempotence key) and its content, signed as deterministic CBOR (RFC 8949 §4.2.1)."""

    kind: str
    document_id: str
    content: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not DOCUMENT_ID_RE.fullmatch(self.document_id):
            raise InvalidInput(
                "document_id: 1–100 characters of A-Z a-z 0-9 . _ : -, starting with a letter "
                "or digit"
            )

    def payload(self) -> bytes:
        try:
            return cbor2.dumps(dict(self.content), canonical=True)
        except (cbor2.CBOREncodeError, TypeError, ValueError):
            raise InvalidInput(
                f"content: document {self.document_id} holds a value CBOR cannot encode"
            ) from None

    def digest(self) -> str:
        """SHA-256 of the payload, hex: what an approval and an earlier signature are bound to."""
        return payload_digest(self.payload())


def payload_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class _Prepared:
    document: Document
    payload: bytes
    digest: str


@dataclass(frozen=True)
class RefusedDocument:
    document_id: str
    rule: str
    message: str


@dataclass
class BatchReport:
    """What a batch run did; `stopped` names the rule that ended it early, if any."""

    batch: str
    total: int
    signed: list[str] = field(default_factory=list)
    already_signed: list[str] = field(default_factory=list)
    refused: list[RefusedDocument] = field(default_factory=list)
    stopped: Refusal | None = None

    @property
    def not_attempted(self) -> int:
        return self.total - len(self.signed) - len(self.already_signed) - len(self.refused)


class BatchInterrupted(SignerError):
    """The token failed mid-batch; what was committed stays, the rest is signed on a re-run."""

    def __init__(self, report: BatchReport, cause: SignerError) -> None:
        self.report = report
        done = len(report.signed) + len(report.already_signed)
        super().__init__(
            f"{cause} — batch {report.batch} stopped after {done} of {report.total} documents; "
            f"nothing was half-recorded: re-insert the USBKey, open a new session and run the "
            f"same batch again to sign the {report.total - done} still missing"
        )


@dataclass
class _Signed:
    document: Document
    payload_sha256: str
    cose: bytes
    override: dict[str, str | int | bool | None]


class DocumentSigner:
    """Signs documents under the policy; one per process, shared by requests."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signing_sessions: SigningSessions,
        gates: CaseGateSource,
        clock: Callable[[], datetime] = utcnow,
        chunk_size: int = 200,
        chunk_seconds: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._signing_sessions = signing_sessions
        self._gates = gates
        self._clock = clock
        self._chunk_size = chunk_size
        self._chunk_seconds = chunk_seconds

    def sign(self, actor: Actor, key_id: int, document: Document) -> SignedDocumentRow:
        """Sign one document (or return its earlier signature); `PolicyRefused` names the rule."""
        report = self.sign_batch(actor, key_id, [document])
        if report.refused:
            refused = report.refused[0]
            raise PolicyRefused(Refusal(refused.rule, refused.message))
        if report.stopped is not None:
            raise PolicyRefused(report.stopped)
        with self._sessions() as db:
            return signed_document(db, document.kind, document.document_id)

    def sign_batch(
        self,
        actor: Actor,
        key_id: int,
        documents: Sequence[Document],
        batch: str | None = None,
        progress: Progress | None = None,
    ) -> BatchReport:
        """Sign every document not yet signed; re-running the same batch is safe."""
        unique = [
            _Prepared(d, payload, payload_digest(payload))
            for d in {(d.kind, d.document_id): d for d in documents}.values()
            for payload in (d.payload(),)
        ]
        report = BatchReport(batch=batch or uuid.uuid4().hex, total=len(unique))
        position = 0
        while position < len(unique) and report.stopped is None:
            position = self._chunk(actor, key_id, unique, position, report)
            if progress is not None:
                progress(position, len(unique))
        return report

    def _chunk(
        self,
        actor: Actor,
        key_id: int,
        documents: Sequence[_Prepared],
        start: int,
        report: BatchReport,
    ) -> int:
        signed: list[_Signed] = []
        refused: list[tuple[_Prepared, Refusal]] = []
        already: list[str] = []
        current: _Prepared | None = None
        position = start
        try:
            with self._sessions.begin() as db:
                # A write first: it takes the key's row lock (PostgreSQL) or the database's
                # write lock (SQLite) before anything is read, serialising workers per key.
                db.execute(
                    update(SigningKey)
                    .where(SigningKey.id == key_id)
                    .values(usage_count=SigningKey.usage_count)
                )
                key = db.get(SigningKey, key_id, populate_existing=True)
                if key is None:
                    raise NotFound(f"key_id: no signing key {key_id}")
                token = db.get(HsmToken, key.token_serial)
                assert token is not None
                session = self._signing_sessions.current(token.serial)
                now = self._clock()
                stop = first_refusal(
                    KEY_RULES,
                    KeyContext(
                        actor, key, token, token_workstations(db, token.serial), session, now
                    ),
                )
                if stop is not None:
                    report.stopped = stop
                    self._record_stop(db, actor, key, documents[start:], stop, report.batch)
                    return start
                assert session is not None
                chunk = documents[start : start + self._chunk_size]
                earlier = self._earlier(db, chunk)
                approvals = approvals_for(
                    db,
                    [
                        p.document.document_id
                        for p in chunk
                        if p.document.kind == KeyPurpose.REVOCATION.value
                    ],
                )
                certificate = certificate_of(key)
                public_key = certificate.public_key()
                if not isinstance(public_key, ec.EllipticCurvePublicKey):
                    raise TypeError(f"key {key.label}: only ECDSA P-256 keys sign documents")
                protected = protected_header(kid_of(certificate))
                count = key.usage_count
                deadline = time.monotonic() + self._chunk_seconds
                for prepared in chunk:
                    if signed and time.monotonic() > deadline:
                        break
                    position += 1
                    document = prepared.document
                    previous = earlier.get((document.kind, document.document_id))
                    if previous == prepared.digest:
                        already.append(document.document_id)
                        continue
                    if previous is not None:
                        refused.append((prepared, _changed(document)))
                        continue
                    gates = self._gates_for(db, document)
                    refusal = first_refusal(
                        DOCUMENT_RULES,
                        DocumentContext(
                            document.kind,
                            document.document_id,
                            key,
                            gates,
                            [
                                (officer, role)
                                for officer, role, digest in approvals.get(document.document_id, [])
                                if digest == prepared.digest
                            ],
                            now,
                        ),
                    )
                    if refusal is None:
                        refusal = usage_refusal(key, count)
                        if refusal is not None:
                            report.stopped = refusal
                    if refusal is not None:
                        refused.append((prepared, refusal))
                        if report.stopped is not None:
                            break
                        continue
                    current = prepared
                    signature = sign_p256(
                        session.token,
                        key.label,
                        to_be_signed(protected, prepared.payload),
                        public_key,
                    )
                    signed.append(
                        _Signed(
                            document,
                            prepared.digest,
                            encode_sign1(protected, prepared.payload, signature.raw),
                            _override_details(gates, now),
                        )
                    )
                    count += 1
                current = None
                self._signing_sessions.touch(session)
                self._store(db, actor, key, signed, report.batch)
                self._record_refusals(db, actor, key, refused, report)
                key.usage_count = count
        except TOKEN_ERRORS as exc:
            if current is not None:
                self._record_failure(actor, key_id, current, exc, report.batch)
            raise BatchInterrupted(report, exc) from exc
        report.signed.extend(s.document.document_id for s in signed)
        report.already_signed.extend(already)
        return position

    def _earlier(self, db: Session, chunk: Sequence[_Prepared]) -> dict[tuple[str, str], str]:
        ids = [p.document.document_id for p in chunk]
        rows = db.execute(
            select(
                SignedDocumentRow.kind,
                SignedDocumentRow.document_id,
                SignedDocumentRow.payload_sha256,
            ).where(SignedDocumentRow.document_id.in_(ids))
        )
        return {(kind, document_id): digest for kind, document_id, digest in rows}

    def _gates_for(self, db: Session, document: Document) -> CaseGates | None:
        if document.kind not in GATED_KINDS:
            return None
        return self._gates.gates_for(db, document.kind, document.document_id)

    def _store(
        self, db: Session, actor: Actor, key: SigningKey, signed: list[_Signed], batch: str
    ) -> None:
        """The chunk's documents and their audit events, in one transaction and few statements."""
        if not signed:
            return
        kid = kid_of(certificate_of(key))
        events = [
            actor_event(
                actor,
                SIGN_ACTION,
                _object(item.document),
                outcome="ok",
                reason="allowed by policy",
                document_sha256=item.payload_sha256,
                details={**_key_details(key, batch), "kid": kid.hex(), **item.override},
            )
            for item in signed
        ]
        indexes = append_many(db, events)
        db.add_all(
            SignedDocumentRow(
                kind=item.document.kind,
                document_id=item.document.document_id,
                payload_sha256=item.payload_sha256,
                cose=item.cose,
                signing_key_id=key.id,
                kid=kid,
                audit_index=index,
                signed_by=actor.username,
                workstation=actor.workstation or "",
                batch=batch,
            )
            for item, index in zip(signed, indexes, strict=True)
        )

    def _record_refusals(
        self,
        db: Session,
        actor: Actor,
        key: SigningKey,
        refused: list[tuple[_Prepared, Refusal]],
        report: BatchReport,
    ) -> None:
        for prepared, refusal in refused:
            document = prepared.document
            record(
                db,
                actor,
                SIGN_ACTION,
                _object(document),
                outcome="refused",
                reason=refusal.rule,
                document_sha256=prepared.digest,
                details={**_key_details(key, report.batch), "detail": refusal.message[:400]},
            )
            report.refused.append(
                RefusedDocument(document.document_id, refusal.rule, refusal.message)
            )

    def _record_stop(
        self,
        db: Session,
        actor: Actor,
        key: SigningKey,
        remaining: Sequence[_Prepared],
        refusal: Refusal,
        batch: str,
    ) -> None:
        """A key or session rule refuses the rest of the batch: one event for it, naming the
        document when only one was left."""
        single = remaining[0] if len(remaining) == 1 else None
        record(
            db,
            actor,
            SIGN_ACTION,
            _object(single.document) if single else f"batch:{batch}",
            outcome="refused",
            reason=refusal.rule,
            document_sha256=single.digest if single else None,
            details={
                **_key_details(key, batch),
                "documents": len(remaining),
                "detail": refusal.message[:400],
            },
        )

    def _record_failure(
        self, actor: Actor, key_id: int, prepared: _Prepared, exc: Exception, batch: str
    ) -> None:
        """A token fault is an attempt too: recorded in its own transaction, after the
        chunk's rollback."""
        with self._sessions.begin() as db:
            key = db.get(SigningKey, key_id)
            record(
                db,
                actor,
                SIGN_ACTION,
                _object(prepared.document),
                outcome="failed",
                reason="token-fault",
                document_sha256=prepared.digest,
                details={
                    **(_key_details(key, batch) if key else {}),
                    "error": type(exc).__name__,
                },
            )


def signed_document(db: Session, kind: str, document_id: str) -> SignedDocumentRow:
    row = db.scalar(
        select(SignedDocumentRow).where(
            SignedDocumentRow.kind == kind, SignedDocumentRow.document_id == document_id
        )
    )
    if row is None:
        raise NotFound(f"document: no signed {kind} {document_id}")
    return row


def _object(document: Document) -> str:
    return f"{document.kind}:{document.document_id}"


def _key_details(key: SigningKey, batch: str) -> dict[str, str | int | bool | None]:
    return {"key_id": key.id, "key": key.label, "token": key.token_serial, "batch": batch}


def _override_details(gates: CaseGates | None, now: datetime) -> dict[str, str | int | bool | None]:
    if gates is None or gates.override is None or gates.deadline is None:
        return {}
    if now <= gates.deadline:
        return {}
    return {
        "deadline": gates.deadline.isoformat(),
        "deadline_override_by": gates.override.officer,
        "deadline_override_reason": gates.override.reason[:200],
    }


def _changed(document: Document) -> Refusal:
    return Refusal(
        "already-signed",
        f"{document.kind} {document.document_id} is already signed with other content; a "
        f"signed document is never replaced — revoke it and issue a new one",
    )
