"""Signing certificates, decisions and revocations: content from the records, policy and the
token through the signing gate, then the signed documents and their audit events committed
together.

A signing request names documents (kind and id), never what they say: the content comes from
the records (`DocumentRecords`, supplied by `certify`). A document with no record behind it is
refused (rule `record-on-file`); a request that still sends content differing from the records
is refused (rule `content-from-records`); both are audited like every refusal.

A batch is worked in chunks, each one database transaction in which the gate takes the key's
row (so two workers never sign with one key at once, and the usage count cannot be overrun) and
checks the key's rules once; the chunk skips documents already signed, signs the rest, and
commits documents and events together. A token fault rolls its chunk back — those signatures
are discarded, nothing is half-recorded — and re-running the same batch signs only what is
still missing.

A job of many units (`common.unit_of_work`): the signer takes a sessionmaker, never a request's
session, and commits chunk by chunk by design; each chunk is atomic.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import cbor2
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from common.cose import encode_sign1, kid_of, protected_header, to_be_signed
from common.dbtypes import utcnow
from common.errors import InvalidInput, NotFound, ServiceFault
from signer.actor import Actor
from signer.custody import approvals_for, certificate_of
from signer.ecdsa import EcdsaSignature
from signer.errors import SignerError
from signer.gate import (
    TOKEN_ERRORS,
    CaseFacts,
    SigningChunk,
    SigningGate,
    SigningPipeline,
    SignRequest,
    Subject,
    signing_transaction,
)
from signer.models import KeyPurpose, SignedDocumentRow
from signer.policy import (
    GATED_KINDS,
    CaseGates,
    DocumentRecords,
    PolicyRefused,
    Refusal,
)

_INSERT_DOCUMENT = insert(cast(Table, SignedDocumentRow.__table__))
DOCUMENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DocumentRef:
    """A document to sign, by name: its kind (the key purpose it needs) and its stable id (the
    idempotence key). `claimed` is content a requester still sends: it never becomes what is
    signed, and the document is refused unless it is exactly what the records say."""

    kind: str
    document_id: str
    claimed: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not DOCUMENT_ID_RE.fullmatch(self.document_id):
            raise InvalidInput(
                "document_id: 1–100 characters of A-Z a-z 0-9 . _ : -, starting with a letter "
                "or digit"
            )


@dataclass(frozen=True)
class Document:
    """A document as the records say it, signed as deterministic CBOR (RFC 8949 §4.2.1)."""

    kind: str
    document_id: str
    content: Mapping[str, Any]

    def payload(self) -> bytes:
        payload = canonical(self.content)
        if payload is None:
            raise InvalidInput(
                f"content: document {self.document_id} holds a value CBOR cannot encode"
            )
        return payload

    def digest(self) -> str:
        """SHA-256 of the payload, hex: what an approval and an earlier signature are bound to."""
        return payload_digest(self.payload())


def canonical(content: Mapping[str, Any]) -> bytes | None:
    """`content` as deterministic CBOR, or None when it holds a value CBOR cannot encode."""
    try:
        return cbor2.dumps(dict(content), canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError):
        return None


def payload_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


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


class BatchInterrupted(SignerError, ServiceFault):
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


@dataclass(frozen=True)
class _Prepared:
    """A document ready to sign: as the records say it, its payload, its event's subject."""

    document: Document
    payload: bytes
    digest: str
    subject: Subject


@dataclass
class _ChunkResult:
    position: int
    signed: list[_Signed] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    refused: list[RefusedDocument] = field(default_factory=list)


class DocumentSigner:
    """Signs documents named by a request, with content from the records; one per process,
    shared by requests."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        gate: SigningGate,
        records: DocumentRecords,
        chunk_size: int = 200,
        chunk_seconds: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._gate = gate
        self._records = records
        self._chunk_size = chunk_size
        self._chunk_seconds = chunk_seconds

    def sign(self, actor: Actor, key_id: int, document: DocumentRef) -> SignedDocumentRow:
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
        documents: Sequence[DocumentRef],
        batch: str | None = None,
        progress: Progress | None = None,
    ) -> BatchReport:
        """Sign every document not yet signed; re-running the same batch is safe."""
        unique = list({(d.kind, d.document_id): d for d in documents}.values())
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
        documents: Sequence[DocumentRef],
        start: int,
        report: BatchReport,
    ) -> int:
        """One transaction: the key's rules once, then documents until the chunk is full or
        its time is up; the report grows only by what committed."""
        try:
            with signing_transaction(self._sessions) as unit:
                remaining = documents[start:]
                opened = self._gate.chunk(
                    unit, actor, key_id, *self._run_subject(unit.db, remaining, report.batch)
                )
                if isinstance(opened, Refusal):
                    report.stopped = opened
                    return start
                result = self._sign_chunk(
                    unit.db, opened, remaining[: self._chunk_size], start, report
                )
                self._store(unit.db, actor, opened, result.signed, report.batch)
        except TOKEN_ERRORS as exc:
            raise BatchInterrupted(report, exc) from exc
        report.signed.extend(s.document.document_id for s in result.signed)
        report.already_signed.extend(result.already)
        report.refused.extend(result.refused)
        return result.position

    def _sign_chunk(
        self,
        db: Session,
        chunk: SigningChunk,
        documents: Sequence[DocumentRef],
        start: int,
        report: BatchReport,
    ) -> _ChunkResult:
        """Documents until the chunk is full or its time is up: each as the records say it,
        skipped when signed before with the same content, else signed through the gate's
        pipeline — the token signs one document while this thread verifies and encodes the
        one before and reads the records of the next."""
        result = _ChunkResult(start)
        earlier = self._earlier(db, documents)
        approvals = approvals_for(
            db, [d.document_id for d in documents if d.kind == KeyPurpose.REVOCATION.value]
        )
        protected = protected_header(kid_of(certificate_of(chunk.key)))
        deadline = time.monotonic() + self._chunk_seconds
        with SigningPipeline[DocumentRef | _Prepared](chunk) as pipeline:
            for ref in documents:
                if pipeline.submitted and time.monotonic() > deadline:
                    break
                result.position += 1
                previous = earlier.get((ref.kind, ref.document_id))
                prepared = self._prepare(db, ref, previous, report.batch)
                if isinstance(prepared, tuple):
                    pipeline.refuse(ref, ref.kind, *prepared)
                elif previous == prepared.digest:
                    result.already.append(ref.document_id)
                else:
                    request = self._request(db, prepared, approvals, protected, chunk)
                    if pipeline.sign(prepared, request) is not None and chunk.stopped:
                        report.stopped = chunk.stopped
                        break
                _collect(pipeline.ready(), protected, result)
            _collect(pipeline.finish(), protected, result)
        return result

    def _prepare(
        self, db: Session, ref: DocumentRef, previous: str | None, batch: str
    ) -> _Prepared | tuple[Subject, Refusal]:
        """The document as the records say it, or what its refusal is about and why: no record
        behind it, content sent that differs, signed before with other content."""
        subject = Subject(f"{ref.kind}:{ref.document_id}", details={"batch": batch})
        content = self._records.content_for(db, ref.kind, ref.document_id)
        if content is None:
            return subject, _no_record(ref)
        document = Document(ref.kind, ref.document_id, content)
        payload = document.payload()
        digest = payload_digest(payload)
        subject = replace(subject, document_sha256=digest)
        refusal = _content_refusal(ref, digest, previous)
        if refusal is not None:
            return subject, refusal
        return _Prepared(document, payload, digest, subject)

    def _request(
        self,
        db: Session,
        prepared: _Prepared,
        approvals: Mapping[str, list[tuple[str, str, str | None]]],
        protected: bytes,
        chunk: SigningChunk,
    ) -> SignRequest:
        """What the gate is asked to sign for a document: its Sig_structure, its case gates
        and the officers who approved exactly its content."""
        document = prepared.document
        gates = self._gates_for(db, document.kind, document.document_id)
        approved = [
            (officer, role)
            for officer, role, digest in approvals.get(document.document_id, [])
            if digest == prepared.digest
        ]
        override = _override_details(gates, chunk)
        return SignRequest(
            document.kind,
            replace(prepared.subject, details={**prepared.subject.details, **override}),
            to_be_signed(protected, prepared.payload),
            CaseFacts(document.document_id, gates, approved),
        )

    def _run_subject(
        self, db: Session, remaining: Sequence[DocumentRef], batch: str
    ) -> tuple[Subject, str | None]:
        """What a refusal by the key's rules is about: the one document left, or the batch."""
        if len(remaining) != 1:
            return Subject(
                f"batch:{batch}", details={"batch": batch, "documents": len(remaining)}
            ), None
        ref = remaining[0]
        content = self._records.content_for(db, ref.kind, ref.document_id)
        digest = None if content is None else Document(ref.kind, ref.document_id, content).digest()
        return Subject(f"{ref.kind}:{ref.document_id}", digest, {"batch": batch}), ref.kind

    def _earlier(self, db: Session, chunk: Sequence[DocumentRef]) -> dict[tuple[str, str], str]:
        """The payload digests of the chunk's documents signed before, looked up by the unique
        index on (kind, document_id): a condition on `document_id` alone reads the whole table,
        and every chunk would cost more as the years' documents pile up."""
        by_kind: dict[str, list[str]] = {}
        for ref in chunk:
            by_kind.setdefault(ref.kind, []).append(ref.document_id)
        earlier: dict[tuple[str, str], str] = {}
        for kind, ids in by_kind.items():
            rows = db.execute(
                select(SignedDocumentRow.document_id, SignedDocumentRow.payload_sha256).where(
                    SignedDocumentRow.kind == kind, SignedDocumentRow.document_id.in_(ids)
                )
            )
            earlier.update(((kind, document_id), digest) for document_id, digest in rows)
        return earlier

    def _gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates | None:
        if kind not in GATED_KINDS:
            return None
        return self._records.gates_for(db, kind, document_id)

    def _store(
        self, db: Session, actor: Actor, chunk: SigningChunk, signed: list[_Signed], batch: str
    ) -> None:
        """The chunk's events (appended by the gate, in few statements) and its documents,
        each naming its event, in the chunk's transaction: one multi-row Core insert, as the
        events go in (the ORM's unit of work costs more than the insert itself)."""
        indexes = chunk.close()
        if not signed:
            return
        key = chunk.key
        kid = kid_of(certificate_of(key))
        now = utcnow()
        db.connection().execute(
            _INSERT_DOCUMENT,
            [
                {
                    "kind": item.document.kind,
                    "document_id": item.document.document_id,
                    "payload_sha256": item.payload_sha256,
                    "cose": item.cose,
                    "signing_key_id": key.id,
                    "kid": kid,
                    "audit_index": index,
                    "signed_by": actor.username,
                    "workstation": actor.workstation or "",
                    "batch": batch,
                    "signed_at": now,
                }
                for item, index in zip(signed, indexes, strict=True)
            ],
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


def _override_details(
    gates: CaseGates | None, chunk: SigningChunk
) -> dict[str, str | int | bool | None]:
    if gates is None or gates.override is None or gates.deadline is None:
        return {}
    if chunk.now <= gates.deadline:
        return {}
    return {
        "deadline": gates.deadline.isoformat(),
        "deadline_override_by": gates.override.officer,
        "deadline_override_reason": gates.override.reason[:200],
        "deadline_override_approved_by": gates.override.approved_by,
    }


def _content_refusal(ref: DocumentRef, digest: str, previous: str | None) -> Refusal | None:
    """The signer's own refusals about what a document says: content sent that differs from
    the records, or a document signed before with other content."""
    if ref.claimed is not None:
        claimed = canonical(ref.claimed)
        if claimed is None or payload_digest(claimed) != digest:
            return Refusal(
                "content-from-records",
                f"{ref.kind} {ref.document_id}: the content sent differs from what the records "
                f"say, and only the records' content is ever signed; send the kind and "
                f"document_id alone",
            )
    if previous is not None and previous != digest:
        return Refusal(
            "already-signed",
            f"{ref.kind} {ref.document_id} is already signed with other content; a signed "
            f"document is never replaced — revoke it and issue a new one",
        )
    return None


def _no_record(ref: DocumentRef) -> Refusal:
    return Refusal(
        "record-on-file",
        f"{ref.kind} {ref.document_id}: no record on file — the service signs only documents "
        f"built from its own records (a recorded decision, an issued certificate, a filed "
        f"revocation); name one it holds",
    )


def _collect(
    finished: Iterator[tuple[DocumentRef | _Prepared, EcdsaSignature | Refusal]],
    protected: bytes,
    result: _ChunkResult,
) -> None:
    """Signatures and refusals the pipeline finished, into the chunk's result."""
    for item, outcome in finished:
        if isinstance(outcome, Refusal):
            document_id = (
                item.document_id if isinstance(item, DocumentRef) else item.document.document_id
            )
            result.refused.append(RefusedDocument(document_id, outcome.rule, outcome.message))
        else:
            assert isinstance(item, _Prepared)
            cose = encode_sign1(protected, item.payload, outcome.raw)
            result.signed.append(_Signed(item.document, item.digest, cose))
