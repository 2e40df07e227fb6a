"""Decisions: an officer concludes (approve or refuse, with reasons), a custodian signs the
conclusions of a batch with the decision key. The signer asks `CaseRecords` for the case gates:
R2 (criminal-record check) and R3 (deadline, or an officer's audited override)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import get_application, get_batch
from certify.checks import CRIMINAL_RECORD, latest_results, missing_for_approval
from certify.models import Application, Batch, Certificate, Decision
from certify.trail import audit
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import OFFICER_ROLE, Actor
from signer.custody import active_key
from signer.documents import BatchReport, Document, DocumentSigner
from signer.models import KeyPurpose
from signer.policy import CaseGates, DeadlineOverride

APPROVE, REFUSE = "approve", "refuse"
CHINA = ZoneInfo("Asia/Shanghai")
DECISION_PREFIX, CERTIFICATE_PREFIX = "DEC-", "CRT-"
OVERRIDE_REASON_MIN = 10


def end_of_day(day: date) -> datetime:
    """The last second of `day` in China, in UTC: a deadline date holds all that day."""
    return datetime.combine(day, time(23, 59, 59), CHINA).astimezone(UTC)


def decision_document_id(decision_id: int) -> str:
    return f"{DECISION_PREFIX}{decision_id}"


def _officer(actor: Actor) -> None:
    if actor.role != OFFICER_ROLE:
        raise Conflict("only an officer decides, overrides a deadline or files a revocation")


def decide(db: Session, actor: Actor, application_id: int, outcome: str, reasons: str) -> Decision:
    """Record an officer's conclusion; R2: only once the criminal-record check is finished."""
    _officer(actor)
    application = get_application(db, application_id)
    if outcome not in (APPROVE, REFUSE):
        raise InvalidInput("outcome: approve or refuse")
    if not reasons.strip():
        raise InvalidInput("reasons: state the grounds of the conclusion")
    results = latest_results(db, application_id)
    if results.get(CRIMINAL_RECORD) not in ("clear", "record"):
        raise InvalidInput("R2: the criminal-record check is not finished; no conclusion before it")
    missing = missing_for_approval(results)
    if outcome == APPROVE and missing:
        raise InvalidInput(f"outcome: cannot approve, checks not passed: {', '.join(missing)}")
    if db.scalar(select(Decision.id).where(Decision.application_id == application_id)):
        raise Conflict(f"application {application_id} already has a decision")
    decision = Decision(
        application_id=application.id,
        outcome=outcome,
        reasons=reasons[:500],
        decided_by=actor.username,
    )
    db.add(decision)
    db.flush()
    audit(db, actor, "certify.decision.make", f"decision:{decision.id}", outcome=outcome)
    return decision


def override_deadline(db: Session, actor: Actor, application_id: int, reason: str) -> None:
    """R3: an officer lets a late case be signed; the reason goes to the audit log."""
    _officer(actor)
    if len(reason.strip()) < OVERRIDE_REASON_MIN:
        raise InvalidInput(f"reason: at least {OVERRIDE_REASON_MIN} characters")
    application = get_application(db, application_id)
    application.override_by, application.override_reason = actor.username, reason[:500]
    audit(db, actor, "certify.deadline.override", f"application:{application_id}", reason=reason)


def sign_decisions(
    sessions: sessionmaker[Session], signer: DocumentSigner, actor: Actor, batch_id: int
) -> BatchReport:
    """Sign every unsigned decision of a batch; safe to run again after a fault."""
    with sessions() as db:
        batch = get_batch(db, batch_id)
        key = active_key(db, batch.body_code, KeyPurpose.DECISION)
        if key is None:
            raise NotFound("key: the body has no active decision key")
        rows = db.execute(
            select(Decision, Application)
            .join(Application, Application.id == Decision.application_id)
            .where(Application.batch_id == batch_id, Decision.signed_at.is_(None))
            .order_by(Decision.id)
        ).all()
        documents = [_decision_document(batch, d, a) for d, a in rows]
        key_id = key.id
    report = signer.sign_batch(actor, key_id, documents, batch=f"decisions-{batch_id}")
    done = report.signed + report.already_signed
    with sessions.begin() as db:
        for document_id in done:
            decision = db.get_one(Decision, int(document_id.removeprefix(DECISION_PREFIX)))
            decision.signed_at = decision.signed_at or utcnow()
    return report


def _decision_document(batch: Batch, decision: Decision, application: Application) -> Document:
    return Document(
        KeyPurpose.DECISION.value,
        decision_document_id(decision.id),
        {
            "body": batch.body_code,
            "batch": batch.name,
            "application": application.id,
            "applicant": application.applicant_id,
            "qualification": application.qualification,
            "subject": application.subject,
            "outcome": decision.outcome,
            "reasons": decision.reasons,
            "decided_by": decision.decided_by,
            "decided_on": decision.decided_at.date().isoformat(),
        },
    )


def signed_decisions(db: Session, batch_id: int) -> list[Decision]:
    return list(
        db.scalars(
            select(Decision)
            .join(Application, Application.id == Decision.application_id)
            .where(Application.batch_id == batch_id, Decision.signed_at.is_not(None))
            .order_by(Decision.id)
        )
    )


class CaseRecords:
    """The signer's `CaseGateSource`: gates read from the case on file, never the request.
    No case (or, for a certificate, no signed approval) gives None, which the signer refuses."""

    def gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates | None:
        if kind == KeyPurpose.DECISION.value and document_id.startswith(DECISION_PREFIX):
            decision = _by_id(db, Decision, document_id.removeprefix(DECISION_PREFIX))
            if decision is None:
                return None
            application = db.get_one(Application, decision.application_id)
            accepted = ("clear",) if decision.outcome == APPROVE else ("clear", "record")
            due = db.get_one(Batch, application.batch_id).decision_deadline
            return _gates(db, application, accepted, due)
        if kind == KeyPurpose.CERTIFICATE.value and document_id.startswith(CERTIFICATE_PREFIX):
            number = document_id.removeprefix(CERTIFICATE_PREFIX)
            certificate = db.scalar(select(Certificate).where(Certificate.number == number))
            if certificate is None:
                return None
            application = db.get_one(Application, certificate.application_id)
            decision = db.scalar(select(Decision).where(Decision.application_id == application.id))
            if decision is None or decision.outcome != APPROVE or decision.signed_at is None:
                return None
            due = db.get_one(Batch, application.batch_id).closes_on
            return _gates(db, application, ("clear",), due)
        return None


def _by_id(db: Session, model: type[Decision], text: str) -> Decision | None:
    return db.get(model, int(text)) if text.isdigit() else None


def _gates(
    db: Session, application: Application, accepted: tuple[str, ...], due: date
) -> CaseGates:
    clear = latest_results(db, application.id).get(CRIMINAL_RECORD) in accepted
    override = None
    if application.override_by and application.override_reason:
        override = DeadlineOverride(
            application.override_by, OFFICER_ROLE, application.override_reason
        )
    return CaseGates(criminal_record_clear=clear, deadline=end_of_day(due), override=override)
