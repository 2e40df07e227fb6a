"""Issue certificates from signed approvals, and revoke them (R10).

Issue: reserve a number and a verification id (committed, so the signer can build the
certificate document and find its case gates from the records), sign the certificate document
under the policy, then — in one transaction with its gate event — sign the QR claims through the
gate in the same open session, publish the public fields to the register and mark the
certificate issued. A fault anywhere leaves a reserved certificate that the next run
finishes with the same number (the signer returns the earlier signature for the same content).

Revoke: an officer files it, two officers approve it (the signer's dual control), the
custodian signs it with the revocation key, and the register changes in the same transaction
as the case record, with the next version of the signed revocation list (the public side's
proof of the status): verification says "revoked" at once.

Both are jobs of many units (`common.unit_of_work`): they take a sessionmaker (`Issuer`), never
a request's session, and commit certificate by certificate, revocation by revocation, by
design; each unit is atomic and a re-run finishes what a fault left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from audit.trail import record
from certify.cases import get_application
from certify.decisions import (
    APPROVE,
    CERTIFICATE_PREFIX,
    REVOCATION_PREFIX,
    _officer,
    live_clause,
    live_decision,
)
from certify.models import Applicant, Application, Certificate, Decision, Revocation
from certify.numbers import next_number
from certify.records import certificate_document_id, revocation_document, revocation_document_id
from common.cose import kid_of
from common.errors import Conflict, InvalidInput, NotFound
from common.unit_of_work import unit_of_work
from signer.actor import Actor
from signer.custody import active_key, approve_revocation, certificate_of
from signer.documents import BatchReport, DocumentRef, DocumentSigner
from signer.gate import GateTransaction, SigningGate, SignRequest, Subject, signing_transaction
from signer.models import KeyPurpose, RevocationApproval, SigningKey
from signer.policy import SignPurpose
from vault.store import Vault
from verify.codes import REVOCATION_CATEGORIES
from verify.payload import Claims, new_verification_id, qr_text, sign_claims
from verify.register import PublicFields, publish_certificate, revoke_certificate
from verify.trust import (
    Revoked,
    TrustListInvalid,
    next_revocation_list,
    store_revocation_list,
    verified_revocations,
)
from verify.trust import canonical as trust_canonical

PENDING, ISSUED, REVOKED = "pending", "issued", "revoked"
REVOKE_EVENT = "certify.certificate.revoke"  # recorded with the revocation's id once signed


@dataclass(frozen=True)
class Issuer:
    """What issuing needs; one per process."""

    sessions: sessionmaker[Session]
    signer: DocumentSigner
    gate: SigningGate
    vault: Vault
    body_code: str
    public_base_url: str
    trust_anchors: frozenset[str]


@dataclass
class IssueReport:
    issued: list[str] = field(default_factory=list)
    signing: BatchReport | None = None


def issue(issuer: Issuer, actor: Actor, application_ids: list[int], today: date) -> IssueReport:
    """Issue (or finish issuing) a certificate for each application with a signed approval."""
    with unit_of_work(issuer.sessions) as db:
        key = _key(db, issuer.body_code, KeyPurpose.CERTIFICATE)
        reserved = [
            _reserve(db, issuer, application_id, today) for application_id in application_ids
        ]
        documents = [
            DocumentRef(KeyPurpose.CERTIFICATE.value, certificate_document_id(c.number))
            for c in reserved
            if c.status == PENDING
        ]
    report = IssueReport()
    report.signing = issuer.signer.sign_batch(actor, key.id, documents)
    for document_id in report.signing.signed + report.signing.already_signed:
        number = document_id.removeprefix(CERTIFICATE_PREFIX)
        with signing_transaction(issuer.sessions) as unit:
            if _publish(unit, issuer, actor, key, number):
                report.issued.append(number)
    return report


def _key(db: Session, body_code: str, purpose: KeyPurpose) -> SigningKey:
    key = active_key(db, body_code, purpose)
    if key is None:
        raise NotFound(f"key: the body has no active {purpose.value} key")
    return key


def _reserve(db: Session, issuer: Issuer, application_id: int, today: date) -> Certificate:
    application = get_application(db, application_id)
    decision = live_decision(db, application_id)
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
    revoked = db.scalar(
        select(Certificate)
        .where(Certificate.application_id == application_id, Certificate.status == REVOKED)
        .order_by(Certificate.id.desc())
        .limit(1)
    )
    if revoked is not None and revoked.decision_id in (None, decision.id):
        raise Conflict(
            f"application {application_id}: certificate {revoked.number} issued on this "
            f"approval was revoked; only a corrected conclusion issues again"
        )
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
        decision_id=decision.id,
        replaces=revoked.number if revoked is not None else None,
    )
    db.add(certificate)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(
            f"application {application_id}: another request is issuing its certificate"
        ) from None
    return certificate


def _publish(
    unit: GateTransaction, issuer: Issuer, actor: Actor, key: SigningKey, number: str
) -> bool:
    """Sign the QR claims through the gate (the certificate key's custodian rules, counted,
    one event), publish, mark issued — one transaction; False if done before."""
    db = unit.db
    certificate = db.scalar(
        select(Certificate).where(Certificate.number == number).with_for_update()
    )
    if certificate is None or certificate.status != PENDING:
        return False
    application = db.get_one(Application, certificate.application_id)
    claims = Claims(
        body=issuer.body_code,
        number=number,
        qualification=application.qualification,
        subject=application.subject,
        masked_name=certificate.masked_name,
        issue_date=certificate.issue_date,
        issued_at=certificate.issued_at,
    )
    qr = Subject(f"certificate-qr:{number}")
    cose = sign_claims(
        claims,
        certificate.verification_id,
        kid_of(certificate_of(key)),
        lambda tbs: (
            issuer.gate.sign(
                unit, actor, key.id, SignRequest(SignPurpose.CERTIFICATE_QR, qr, tbs)
            ).raw
        ),
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
    record(
        db, actor, "certify.certificate.issue", f"certificate:{number}", details={"key": key.label}
    )
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
    record(
        db,
        actor,
        "certify.revocation.request",
        f"certificate:{number}",
        details={"category": category},
    )
    return revocation


def approve(db: Session, actor: Actor, revocation_id: int, reason: str) -> RevocationApproval:
    """One officer's approval, bound to the SHA-256 of the revocation as the records say it
    (what will be signed), recorded by the signer (which counts distinct officers and
    persons). The revocation's row is locked first: parallel approvals run one at a time."""
    db.get(Revocation, revocation_id, with_for_update=True)
    document = revocation_document(db, revocation_id)
    return approve_revocation(db, actor, document.document_id, document.digest(), reason)


RETURN_NOTE_MAX = 200


def record_return(
    db: Session, actor: Actor, revocation_id: int, returned_on: date, note: str
) -> Revocation:
    """R10: the printed certificate of a signed revocation came back to the body (收回证书);
    recorded once, by case staff, audited."""
    if actor.role not in ("registrar", "officer"):
        raise Conflict("only a registrar or an officer records a returned certificate")
    if len(note) > RETURN_NOTE_MAX:
        raise InvalidInput(f"note: at most {RETURN_NOTE_MAX} characters")
    revocation = db.get(Revocation, revocation_id, with_for_update=True)
    if revocation is None:
        raise NotFound(f"revocation_id: no revocation {revocation_id}")
    if revocation.revoked_on is None:
        raise Conflict(f"revocation {revocation_id} is not signed yet: nothing is recalled")
    if revocation.returned_on is not None:
        raise Conflict(f"revocation {revocation_id}: the return is recorded already")
    if returned_on < revocation.revoked_on:
        raise InvalidInput(f"returned_on: before the revocation ({revocation.revoked_on})")
    revocation.returned_on, revocation.return_recorded_by = returned_on, actor.username
    revocation.return_note = note.strip() or None
    record(
        db,
        actor,
        "certify.revocation.return",
        f"revocation:{revocation_id}",
        details={"returned_on": returned_on.isoformat()},
    )
    return revocation


def sign_revocations(
    issuer: Issuer, actor: Actor, revocation_ids: list[int], today: date
) -> BatchReport:
    """Sign the revocations with the revocation key; each signed one revokes its certificate,
    its public register entry and signs the next revocation list version, in one transaction."""
    with issuer.sessions() as db:
        key = _key(db, issuer.body_code, KeyPurpose.REVOCATION)
        for revocation_id in revocation_ids:
            if db.get(Revocation, revocation_id) is None:
                raise NotFound(f"revocation_ids: no revocation {revocation_id}")
    documents = [
        DocumentRef(KeyPurpose.REVOCATION.value, revocation_document_id(r)) for r in revocation_ids
    ]
    report = issuer.signer.sign_batch(actor, key.id, documents)
    for document_id in report.signed + report.already_signed:
        with signing_transaction(issuer.sessions) as unit:
            _apply(
                unit, issuer, actor, key, int(document_id.removeprefix(REVOCATION_PREFIX)), today
            )
    return report


def _apply(
    unit: GateTransaction,
    issuer: Issuer,
    actor: Actor,
    key: SigningKey,
    revocation_id: int,
    today: date,
) -> None:
    db = unit.db
    revocation = db.get_one(Revocation, revocation_id, with_for_update=True)
    if revocation.revoked_on is not None:
        return
    certificate = db.get_one(Certificate, revocation.certificate_id, with_for_update=True)
    certificate.status = REVOKED
    revocation.revoked_on = today
    version = publish_revocation(
        unit,
        issuer.gate,
        actor,
        key,
        issuer.trust_anchors,
        certificate.verification_id,
        Revoked(today, revocation.category),
    )
    record(
        db,
        actor,
        REVOKE_EVENT,
        f"certificate:{certificate.number}",
        details={
            "category": revocation.category,
            "revocation": revocation_id,
            "revocation_list": version,
        },
    )


def publish_revocation(
    unit: GateTransaction,
    gate: SigningGate,
    actor: Actor,
    key: SigningKey,
    trust_anchors: frozenset[str],
    verification_id: str,
    revoked: Revoked,
) -> int:
    """Revoke the register entry and sign the next revocation list version — the previous
    signed one, which must verify under the pinned trust anchors, plus this certificate —
    through the gate with the revocation `key`, in `unit`; the new version."""
    db = unit.db
    revoke_certificate(db, verification_id, revoked.on, revoked.category)
    try:
        previous = verified_revocations(db, trust_anchors)
    except TrustListInvalid as exc:
        raise Conflict(
            f"revocation list: the newest on file does not verify ({exc}); "
            "run `certsvc audit reconcile` and restore it before revoking more"
        ) from None
    kid = kid_of(certificate_of(key)).hex()
    document = next_revocation_list(previous, key.body_code, kid, verification_id, revoked)
    subject = Subject(f"revocation-list:{key.body_code}:{document['version']}")
    signature = gate.sign(
        unit,
        actor,
        key.id,
        SignRequest(SignPurpose.REVOCATION_LIST, subject, trust_canonical(document)),
    )
    store_revocation_list(db, document, signature.der)
    return int(document["version"])


def issuable(db: Session, batch_id: int) -> list[int]:
    """Applications of the batch with a live signed approval, no issued certificate and none
    revoked that was issued on that approval (a pending one is finished by issuing again; a
    corrected approval reissues)."""
    issued = select(Certificate.application_id).where(Certificate.status == ISSUED)
    recalled = exists().where(Certificate.decision_id == Decision.id, Certificate.status == REVOKED)
    return list(
        db.scalars(
            select(Application.id)
            .join(Decision, Decision.application_id == Application.id)
            .where(
                Application.batch_id == batch_id,
                live_clause(),
                Decision.outcome == APPROVE,
                Decision.signed_at.is_not(None),
                Application.id.not_in(issued),
                ~recalled,
            )
            .order_by(Application.id)
        )
    )
