"""`certsvc audit reconcile`: hold the records against each other and against what was signed
and logged — decisions, signed documents, certificates, public register rows, revocations, the
trust and revocation lists, audit events — and name every mismatch.

A database administrator can rewrite any row, but not the signatures over them (made on tokens,
checked here under the pinned root) nor the audit log (`certsvc audit verify`). Each finding
names the record and what disagrees; no finding means the records tell one story.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.query import ok_leaves
from certify.corrections import CORRECTION_APPROVE
from certify.decisions import (
    APPROVE,
    DECISION_MADE,
    decision_document,
    decision_object,
    live_decision,
)
from certify.issuance import ISSUED, REVOKE_EVENT, REVOKED
from certify.models import Certificate, Decision, Revocation
from certify.records import (
    certificate_document,
    decision_as_recorded,
    document_on_file,
    revocation_document_id,
)
from certsvc.grants import unbacked_grants
from common.cose import CoseInvalid, verify_sign1
from signer.custody import certificate_of
from signer.documents import payload_digest
from signer.models import KeyPurpose, SignedDocumentRow, SigningKey
from verify.anchors import fingerprint
from verify.models import PublicCertificate, SignedTrustList
from verify.proof import payload_disproves
from verify.trust import (
    RevocationList,
    TrustListInvalid,
    latest_revocation_list,
    open_revocation_list,
    open_trust_list,
    published,
    published_revocations,
)

ISSUE_ACTION = "certify.certificate.issue"


@dataclass(frozen=True)
class Finding:
    """One mismatch: the record it is about and what disagrees."""

    record: str
    problem: str

    def __str__(self) -> str:
        return f"{self.record}: {self.problem}"


def reconcile(db: Session, anchors: frozenset[str]) -> list[Finding]:
    """Every mismatch between the records, their signatures and the audit log, privilege rows
    without their grant event included."""
    trust, revocations, findings = _lists(db, anchors)
    events = ok_leaves(db, [DECISION_MADE, CORRECTION_APPROVE, ISSUE_ACTION, REVOKE_EVENT])
    findings += _decisions(db, anchors, events)
    findings += _certificates(db, anchors, trust, revocations, events)
    findings += _register(db, trust)
    findings += [
        Finding(f"{grant.kind} {grant.name}", "no grant event on record matches it")
        for grant in unbacked_grants(db)
    ]
    return findings


def _lists(
    db: Session, anchors: frozenset[str]
) -> tuple[dict[str, object] | None, RevocationList | None, list[Finding]]:
    findings: list[Finding] = []
    trust = revocations = None
    for signed in db.scalars(select(SignedTrustList).order_by(SignedTrustList.version.desc())):
        try:
            trust = open_trust_list(published(signed), anchors)
        except TrustListInvalid as exc:
            findings.append(Finding(f"trust list version {signed.version}", str(exc)))
            continue
        break
    latest = latest_revocation_list(db)
    if latest is not None and trust is not None:
        try:
            revocations = open_revocation_list(published_revocations(latest), trust)
        except TrustListInvalid as exc:
            findings.append(Finding(f"revocation list version {latest.version}", str(exc)))
        if revocations is not None and revocations.version != latest.version:
            findings.append(
                Finding(f"revocation list version {latest.version}", "says another version")
            )
    return trust, revocations, findings


def _signature(
    db: Session, anchors: frozenset[str], kind: str, document_id: str, digest: str
) -> str | None:
    """What is wrong with the signed document `document_id` against the records' `digest`, or
    None: on file, over exactly that content, signed by a key the pinned root certified."""
    row = db.scalar(
        select(SignedDocumentRow).where(
            SignedDocumentRow.kind == kind, SignedDocumentRow.document_id == document_id
        )
    )
    if row is None:
        return "no signed document on file"
    key = db.get(SigningKey, row.signing_key_id)
    if key is None or not _certified(db, anchors, key):
        return "signed by a key the pinned root did not certify"
    try:
        verified = verify_sign1(row.cose, certificate_of(key))
    except CoseInvalid:
        return "its signature does not verify"
    if payload_digest(verified.payload) != digest or row.payload_sha256 != digest:
        return "the records no longer say what was signed"
    return None


def _certified(db: Session, anchors: frozenset[str], key: SigningKey) -> bool:
    certificate = certificate_of(key)
    for root in db.scalars(select(SigningKey).where(SigningKey.purpose == KeyPurpose.ROOT)):
        root_certificate = certificate_of(root)
        if fingerprint(root_certificate.public_bytes(serialization.Encoding.DER)) not in anchors:
            continue
        try:
            certificate.verify_directly_issued_by(root_certificate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def _decisions(
    db: Session, anchors: frozenset[str], events: dict[tuple[str, str], list[dict[str, object]]]
) -> Iterator[Finding]:
    for decision in db.scalars(select(Decision).order_by(Decision.id)):
        name = f"decision {decision.id}"
        if not decision_as_recorded(db, decision):
            yield Finding(name, "differs from what the audit log recorded when it was decided")
        if decision.signed_at is not None:
            document = decision_document(db, decision)
            problem = _signature(
                db, anchors, KeyPurpose.DECISION.value, document.document_id, document.digest()
            )
            if problem is not None:
                yield Finding(name, problem)
    made = {obj for action, obj in events if action == DECISION_MADE}
    on_file = {f"decision:{i}" for i in db.scalars(select(Decision.id))}
    for obj in sorted(made - on_file):
        yield Finding(obj.replace(":", " "), "decided in the audit log, missing from the records")
    yield from _corrections(db, events)


def _corrections(
    db: Session, events: dict[tuple[str, str], list[dict[str, object]]]
) -> Iterator[Finding]:
    """The chains of corrections: the superseded mark agrees with the links (each in the
    signed content of the correction), a link stays inside its case, a correction counts only
    with its second officer's approval on record, and a case has one live decision."""
    decisions = {d.id: d for d in db.scalars(select(Decision).order_by(Decision.id))}
    superseded_by = {d.supersedes_id: d for d in decisions.values() if d.supersedes_id}
    live: dict[int, list[int]] = {}
    for decision in decisions.values():
        name = f"decision {decision.id}"
        later = superseded_by.get(decision.id)
        if decision.superseded_at is not None and later is None:
            yield Finding(name, "marked superseded, but no decision on file supersedes it")
        if decision.superseded_at is None and later is not None:
            yield Finding(name, f"decision {later.id} supersedes it, but it is marked live")
        if decision.superseded_at is None and later is None:
            live.setdefault(decision.application_id, []).append(decision.id)
        earlier = decisions.get(decision.supersedes_id or 0)
        if decision.supersedes_id is not None and (
            earlier is None or earlier.application_id != decision.application_id
        ):
            yield Finding(name, f"supersedes decision {decision.supersedes_id}, not of its case")
        if decision.correction_approved_by is not None:
            approvals = events.get((CORRECTION_APPROVE, decision_object(decision.id)), [])
            if not any(a.get("actor") == decision.correction_approved_by for a in approvals):
                yield Finding(name, "correction approved in the records, not in the audit log")
        elif decision.supersedes_id is not None and decision.signed_at is not None:
            yield Finding(name, "a correction signed without a second officer's approval")
    for application_id, ids in sorted(live.items()):
        if len(ids) > 1:
            yield Finding(
                f"application {application_id}",
                f"{len(ids)} live decisions ({', '.join(map(str, ids))}); a case has one",
            )


def _certificates(
    db: Session,
    anchors: frozenset[str],
    trust: dict[str, object] | None,
    revocations: RevocationList | None,
    events: dict[tuple[str, str], list[dict[str, object]]],
) -> Iterator[Finding]:
    numbers = set()
    listed_revoked = 0
    for certificate in db.scalars(select(Certificate).order_by(Certificate.id)):
        name = f"certificate {certificate.number}"
        numbers.add(certificate.number)
        if certificate.status not in (ISSUED, REVOKED):
            continue
        decision = (
            live_decision(db, certificate.application_id)
            if certificate.decision_id is None
            else db.get(Decision, certificate.decision_id)
        )
        if decision is None or decision.outcome != APPROVE or decision.signed_at is None:
            yield Finding(name, "issued without a signed approval")
        document = certificate_document(db, certificate)
        problem = _signature(
            db, anchors, KeyPurpose.CERTIFICATE.value, document.document_id, document.digest()
        )
        if problem is not None:
            yield Finding(name, problem)
        if (ISSUE_ACTION, f"certificate:{certificate.number}") not in events:
            yield Finding(name, "no issue event in the audit log")
        row = db.get(PublicCertificate, certificate.verification_id)
        entry = None if revocations is None else revocations.find(certificate.verification_id)
        revoke_events = events.get((REVOKE_EVENT, f"certificate:{certificate.number}"), [])
        if certificate.status == REVOKED:
            listed_revoked += 1
            yield from _revoked(db, anchors, certificate, entry, revoke_events)
        elif entry is not None or revoke_events:
            yield Finding(name, "the records say issued, the revocation list or log revoked it")
        if row is None:
            yield Finding(name, "no public register row")
        elif row.status != certificate.status.replace(ISSUED, "valid"):
            yield Finding(name, f"register says {row.status}, the records {certificate.status}")
    if revocations is not None and len(revocations.entries) != listed_revoked:
        yield Finding(
            f"revocation list version {revocations.version}",
            f"lists {len(revocations.entries)} certificates, the records revoked {listed_revoked}",
        )
    versions = [
        version
        for (action, _), leaves in events.items()
        if action == REVOKE_EVENT
        for leaf in leaves
        if (version := _list_version(leaf)) is not None
    ]
    newest = revocations.version if revocations is not None else 0
    if versions and max(versions) > newest:
        yield Finding(
            "revocation list",
            f"the audit log recorded version {max(versions)}, the newest on file is {newest}",
        )
    for action, obj in events:
        if action == ISSUE_ACTION and obj.removeprefix("certificate:") not in numbers:
            yield Finding(obj.replace(":", " "), "issued in the audit log, missing from records")


def _list_version(leaf: dict[str, object]) -> int | None:
    """The revocation list version a revoke event recorded."""
    details = leaf.get("details")
    version = details.get("revocation_list") if isinstance(details, dict) else None
    return version if isinstance(version, int) else None


def _revoked(
    db: Session,
    anchors: frozenset[str],
    certificate: Certificate,
    entry: object | None,
    revoke_events: list[dict[str, object]],
) -> Iterator[Finding]:
    name = f"certificate {certificate.number}"
    revocation = db.scalar(
        select(Revocation).where(
            Revocation.certificate_id == certificate.id, Revocation.revoked_on.is_not(None)
        )
    )
    if revocation is None:
        yield Finding(name, "revoked with no applied revocation on file")
    else:
        document = document_on_file(
            db, KeyPurpose.REVOCATION.value, revocation_document_id(revocation.id)
        )
        if document is not None:
            problem = _signature(
                db, anchors, KeyPurpose.REVOCATION.value, document.document_id, document.digest()
            )
            if problem is not None:
                yield Finding(f"revocation {revocation.id}", problem)
    if entry is None:
        yield Finding(name, "revoked in the records, not in the signed revocation list")
    if not revoke_events:
        yield Finding(name, "no revoke event in the audit log")


def _register(db: Session, trust: dict[str, object] | None) -> Iterator[Finding]:
    """Every public row: a certificate on file behind it, and a payload that proves it."""
    on_file = set(db.scalars(select(Certificate.verification_id)))
    for row in db.scalars(select(PublicCertificate).order_by(PublicCertificate.number)):
        name = f"register row {row.number}"
        if row.verification_id not in on_file:
            yield Finding(name, "no certificate on file behind it")
        if trust is None:
            yield Finding(name, "no trust list opens under the pinned anchors to check it")
            continue
        why = payload_disproves(row.verification_id, row, trust)
        if why is not None:
            yield Finding(name, why)
