"""Issue certificates from signed approvals, and revoke them (R10).

Issue: reserve a number and a verification id (committed, so the signer's case gates can find
the certificate), sign the certificate document under the policy, then — in one transaction —
sign the QR claims with the same open session, publish the public fields to the register and
mark the certificate issued. A fault anywhere leaves a reserved certificate that the next run
finishes with the same number (the signer returns the earlier signature for the same content).

Revoke: an officer files it, two officers approve it (the signer's dual control), the
custodian signs it with the revocation key, and the register changes in the same transaction
as the case record: verification says "revoked" at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import get_application
from certify.decisions import APPROVE, CERTIFICATE_PREFIX, _officer
from certify.models import Applicant, Application, Batch, Certificate, Decision, Revocation
from certify.numbers import next_number
from certify.trail import audit
from common.cose import kid_of
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor
from signer.custody import active_key, approve_revocation, certificate_of
from signer.documents import BatchReport, Document, DocumentSigner
from signer.ecdsa import sign_p256
from signer.errors import SessionLost
from signer.models import KeyPurpose, SigningKey
from signer.sessions import SigningSessions
from vault.store import Vault
from verify.codes import REVOCATION_CATEGORIES
from verify.payload import Claims, new_verification_id, qr_text, sign_claims
from verify.register import PublicFields, publish_certificate, revoke_certificate

PENDING, ISSUED, REVOKED = "pending", "issued", "revoked"
REVOCATION_PREFIX = "REV-"


@dataclass(frozen=True)
class Issuer:
    """What issuing needs; one per process."""

    sessions: sessionmaker[Session]
    signer: DocumentSigner
    signing_sessions: SigningSessions
    vault: Vault
    body_code: str
    public_base_url: str


@dataclass
class IssueReport:
    issued: list[str] = field(default_factory=list)
    signing: BatchReport | None = None


def issue(issuer: Issuer, actor: Actor, application_ids: list[int], today: date) -> IssueReport:
    """Issue (or finish issuing) a certificate for each application with a signed approval."""
    with issuer.sessions.begin() as db:
        key = _key(db, issuer.body_code, KeyPurpose.CERTIFICATE)
        reserved = [
            _reserve(db, issuer, application_id, today) for application_id in application_ids
        ]
        documents = [_certificate_document(db, c) for c in reserved if c.status == PENDING]
    report = IssueReport()
    report.signing = issuer.signer.sign_batch(actor, key.id, documents)
    for document_id in report.signing.signed + report.signing.already_signed:
        number = document_id.removeprefix(CERTIFICATE_PREFIX)
        with issuer.sessions.begin() as db:
            if _publish(db, issuer, actor, key, number):
                report.issued.append(number)
    return report


def _key(db: Session, body_code: str, purpose: KeyPurpose) -> SigningKey:
    key = active_key(db, body_code, purpose)
    if key is None:
        raise NotFound(f"key: the body has no active {purpose.value} key")
    return key


def _reserve(db: Session, issuer: Issuer, application_id: int, today: date) -> Certificate:
    application = get_application(db, application_id)
    decision = db.scalar(select(Decision).where(Decision.application_id == application_id))
    if decision is None or decision.outcome != APPROVE or decision.signed_at is None:
        raise Conflict(f"application {application_id}: no signed approval to issue from")
    current = db.scalar(
        select(Certificate).where(
            Certificate.application_id == application_id,
            Certificate.status.in_((PENDING, ISSUED)),
        )
    )
    if current is not None:
        return current
    applicant = db.get_one(Applicant, application.applicant_id)
    masked = issuer.vault.masked(db, [applicant.name_token])[applicant.name_token][1]
    certificate = Certificate(
        application_id=application_id,
        number=next_number(db, issuer.body_code, today.year),
        verification_id=new_verification_id(),
        masked_name=masked,
        issue_date=today,
        issued_at=int(time.time()),
        status=PENDING,
    )
    db.add(certificate)
    db.flush()
    return certificate


def _certificate_document(db: Session, certificate: Certificate) -> Document:
    application = db.get_one(Application, certificate.application_id)
    batch = db.get_one(Batch, application.batch_id)
    return Document(
        KeyPurpose.CERTIFICATE.value,
        f"{CERTIFICATE_PREFIX}{certificate.number}",
        {
            "body": batch.body_code,
            "batch": batch.name,
            "application": application.id,
            "applicant": application.applicant_id,
            "number": certificate.number,
            "verification_id": certificate.verification_id,
            "qualification": application.qualification,
            "subject": application.subject,
            "masked_name": certificate.masked_name,
            "issue_date": certificate.issue_date.isoformat(),
        },
    )


def _publish(db: Session, issuer: Issuer, actor: Actor, key: SigningKey, number: str) -> bool:
    """Sign the QR claims, publish, mark issued — one transaction; False if done before."""
    certificate = db.scalar(
        select(Certificate).where(Certificate.number == number).with_for_update()
    )
    if certificate is None or certificate.status != PENDING:
        return False
    application = db.get_one(Application, certificate.application_id)
    session = issuer.signing_sessions.current(key.token_serial)
    if session is None:
        raise SessionLost(key.token_serial)
    x509_certificate = certificate_of(key)
    public_key = x509_certificate.public_key()
    claims = Claims(
        body=issuer.body_code,
        number=number,
        qualification=application.qualification,
        subject=application.subject,
        masked_name=certificate.masked_name,
        issue_date=certificate.issue_date,
        issued_at=certificate.issued_at,
    )
    cose = sign_claims(
        claims,
        certificate.verification_id,
        kid_of(x509_certificate),
        lambda tbs: sign_p256(session.token, key.label, tbs, public_key).raw,  # type: ignore[arg-type]
    )
    publish_certificate(
        db,
        PublicFields(
            certificate.verification_id,
            number,
            application.qualification,
            application.subject,
            issuer.body_code,
            certificate.issue_date,
            certificate.masked_name,
        ),
        cose,
    )
    certificate.status = ISSUED
    certificate.issued_by = actor.username
    certificate.qr_text = qr_text(issuer.public_base_url, certificate.verification_id, cose)
    audit(db, actor, "certify.certificate.issue", f"certificate:{number}", key=key.label)
    return True


def request_revocation(
    db: Session, actor: Actor, number: str, category: str, reason: str
) -> Revocation:
    """An officer files a revocation; it needs two officers' approvals before signing."""
    _officer(actor)
    if category not in REVOCATION_CATEGORIES:
        raise InvalidInput(f"category: one of {', '.join(REVOCATION_CATEGORIES)}")
    if not reason.strip():
        raise InvalidInput("reason: say why the certificate is revoked")
    certificate = db.scalar(select(Certificate).where(Certificate.number == number))
    if certificate is None or certificate.status != ISSUED:
        raise NotFound(f"number: no issued certificate {number}")
    revocation = Revocation(
        certificate_id=certificate.id,
        category=category,
        reason=reason[:500],
        requested_by=actor.username,
    )
    db.add(revocation)
    db.flush()
    audit(db, actor, "certify.revocation.request", f"certificate:{number}", category=category)
    return revocation


def revocation_document_id(revocation_id: int) -> str:
    return f"{REVOCATION_PREFIX}{revocation_id}"


def approve(db: Session, actor: Actor, revocation_id: int, reason: str) -> None:
    """One officer's approval, recorded by the signer (which counts distinct officers)."""
    document = revocation_document(db, revocation_id)
    approve_revocation(db, actor, document.document_id, document.digest(), reason)


def sign_revocations(
    issuer: Issuer, actor: Actor, revocation_ids: list[int], today: date
) -> BatchReport:
    """Sign the revocations with the revocation key; each signed one revokes its certificate
    and its public register entry in one transaction."""
    with issuer.sessions() as db:
        key = _key(db, issuer.body_code, KeyPurpose.REVOCATION)
        documents = [revocation_document(db, r) for r in revocation_ids]
    report = issuer.signer.sign_batch(actor, key.id, documents)
    for document_id in report.signed + report.already_signed:
        with issuer.sessions.begin() as db:
            _apply(db, actor, int(document_id.removeprefix(REVOCATION_PREFIX)), today)
    return report


def revocation_document(db: Session, revocation_id: int) -> Document:
    """The revocation as it is approved and signed: its certificate and why."""
    revocation = db.get(Revocation, revocation_id)
    if revocation is None:
        raise NotFound(f"revocation_id: no revocation {revocation_id}")
    certificate = db.get_one(Certificate, revocation.certificate_id)
    return Document(
        KeyPurpose.REVOCATION.value,
        revocation_document_id(revocation_id),
        {
            "number": certificate.number,
            "verification_id": certificate.verification_id,
            "category": revocation.category,
            "reason": revocation.reason,
            "requested_by": revocation.requested_by,
        },
    )


def _apply(db: Session, actor: Actor, revocation_id: int, today: date) -> None:
    revocation = db.get_one(Revocation, revocation_id, with_for_update=True)
    if revocation.revoked_on is not None:
        return
    certificate = db.get_one(Certificate, revocation.certificate_id, with_for_update=True)
    certificate.status = REVOKED
    revocation.revoked_on = today
    revoke_certificate(db, certificate.verification_id, today, revocation.category)
    audit(
        db,
        actor,
        "certify.certificate.revoke",
        f"certificate:{certificate.number}",
        category=revocation.category,
        revocation=revocation_id,
    )


def issuable(db: Session, batch_id: int) -> list[int]:
    """Applications of the batch with a signed approval and no issued or revoked certificate
    (a pending one is finished by issuing again)."""
    done = select(Certificate.application_id).where(Certificate.status.in_((ISSUED, REVOKED)))
    return list(
        db.scalars(
            select(Application.id)
            .join(Decision, Decision.application_id == Application.id)
            .where(
                Application.batch_id == batch_id,
                Decision.outcome == APPROVE,
                Decision.signed_at.is_not(None),
                Application.id.not_in(done),
            )
            .order_by(Application.id)
        )
    )
