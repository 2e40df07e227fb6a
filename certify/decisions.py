"""Decisions: an officer concludes (approve or refuse, with reasons), a custodian signs the
conclusions of a batch with the decision key. The signer builds each decision it signs from the
record, and asks `certify.records.CaseRecords` for its case gates: R2 (criminal-record check)
and R3 (deadline, or an officer's audited override)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from audit.events import DetailValue
from audit.trail import record
from certify.cases import CHINA, attendance_missing, get_application, get_batch
from certify.checks import (
    CRIMINAL_RECORD,
    latest_results,
    missing_for_approval,
    unapproved_replacement,
)
from certify.eligibility import Ineligible, unmet_rules
from certify.models import Application, Batch, Decision
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from common.unit_of_work import unit_of_work
from signer.actor import OFFICER_ROLE, Actor
from signer.custody import active_key
from signer.documents import BatchReport, Document, DocumentRef, DocumentSigner
from signer.models import KeyPurpose
from signer.second_person import Approval, Party, approve_as_second

APPROVE, REFUSE = "approve", "refuse"
DECISION_PREFIX, CERTIFICATE_PREFIX, REVOCATION_PREFIX = "DEC-", "CRT-", "REV-"
OVERRIDE_REASON_MIN = 10
DECISION_MADE = "certify.decision.make"
# Why a deadline may be overridden (the report groups overrides by these).
OVERRIDE_CATEGORIES: dict[str, str] = {
    "appeal": "申请人申诉或复核成立",
    "police": "犯罪记录核查延迟",
    "system": "信息系统或设备故障",
    "correction": "纠正认定结论",
    "other": "其他（理由中写明）",
}


@dataclass(frozen=True)
class OverrideRequest:
    reason: str
    category: str
    expires_on: date


def end_of_day(day: date) -> datetime:
    """The last second of `day` in China, in UTC: a deadline date holds all that day."""
    return datetime.combine(day, time(23, 59, 59), CHINA).astimezone(UTC)


def decision_document_id(decision_id: int) -> str:
    return f"{DECISION_PREFIX}{decision_id}"


def decision_document(db: Session, decision: Decision) -> Document:
    """The conclusion as the officer recorded it."""
    application = db.get_one(Application, decision.application_id)
    batch = db.get_one(Batch, application.batch_id)
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
            "rules": batch.rule_version,
            "reasons": decision.reasons,
            "decided_by": decision.decided_by,
            "decided_on": decision.decided_at.date().isoformat(),
            **_correction(decision),
        },
    )


def _correction(decision: Decision) -> dict[str, str]:
    """What a correction adds to its content: the decision it supersedes and why (a first
    decision's content stays as it always was)."""
    if decision.supersedes_id is None:
        return {}
    return {
        "supersedes": decision_document_id(decision.supersedes_id),
        "correction": decision.correction_reason or "",
    }


def decision_object(decision_id: int) -> str:
    return f"decision:{decision_id}"


def _officer(actor: Actor) -> None:
    if actor.role != OFFICER_ROLE:
        raise Conflict("only an officer decides, overrides a deadline or files a revocation")


def decide(db: Session, actor: Actor, application_id: int, outcome: str, reasons: str) -> Decision:
    """Record an officer's conclusion, the case's first (a later one is a correction)."""
    _officer(actor)
    application = get_application(db, application_id)
    check_conclusion(db, application, outcome, reasons)
    if db.scalar(select(Decision.id).where(Decision.application_id == application_id)):
        raise Conflict(
            f"application {application_id} already has a decision; an officer files a correction"
        )
    decision = Decision(
        application_id=application.id,
        outcome=outcome,
        reasons=reasons[:500],
        decided_by=actor.username,
        decided_by_person=actor.person,
    )
    db.add(decision)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(f"application {application_id} already has a decision") from None
    record_decision(db, actor, decision)
    return decision


def check_conclusion(db: Session, application: Application, outcome: str, reasons: str) -> None:
    """The gates every conclusion passes, first or corrected. R2: only once the
    criminal-record check is finished; R0: an approval only when the case meets its batch's
    eligibility rules, with its checks passed and on-site confirmation on file."""
    if outcome not in (APPROVE, REFUSE):
        raise InvalidInput("outcome: approve or refuse")
    if not reasons.strip():
        raise InvalidInput("reasons: state the grounds of the conclusion")
    results = latest_results(db, application.id)
    if results.get(CRIMINAL_RECORD) not in ("clear", "record"):
        raise InvalidInput("R2: the criminal-record check is not finished; no conclusion before it")
    unapproved = unapproved_replacement(db, application.id)
    if unapproved is not None:
        raise Conflict(f"{unapproved}; no conclusion before it is approved")
    missing = missing_for_approval(results)
    if outcome == APPROVE and missing:
        raise InvalidInput(f"outcome: cannot approve, checks not passed: {', '.join(missing)}")
    if outcome == APPROVE:
        unconfirmed = attendance_missing(db, application.id)
        if unconfirmed is not None:
            raise Conflict(unconfirmed)
        unmet = unmet_rules(db, application)
        if unmet:
            raise Ineligible(unmet)


def record_decision(db: Session, actor: Actor, decision: Decision, reason: str = "") -> None:
    """The decision's audit event, carrying the digest of its content as made: what signing
    and `certsvc audit reconcile` hold the record to."""
    details: dict[str, DetailValue] = {"outcome": decision.outcome}
    if decision.supersedes_id is not None:
        details["supersedes"] = decision.supersedes_id
    record(
        db,
        actor,
        DECISION_MADE,
        decision_object(decision.id),
        reason=reason,
        document_sha256=decision_document(db, decision).digest(),
        details=details,
    )


def live_clause() -> ColumnElement[bool]:
    """A decision is live when it is not marked superseded and no decision supersedes it:
    both must say so, so flipping the mark alone (or the link alone) changes nothing."""
    later = aliased(Decision)
    return and_(
        Decision.superseded_at.is_(None),
        ~exists().where(later.supersedes_id == Decision.id),
    )


def live_decision(db: Session, application_id: int) -> Decision | None:
    """The case's live decision (None before the first)."""
    return db.scalar(
        select(Decision).where(Decision.application_id == application_id, live_clause())
    )


def override_deadline(
    db: Session, actor: Actor, application_id: int, request: OverrideRequest
) -> None:
    """R3: an officer asks that a late case be signed until `expires_on`, for a reason of a
    category; it counts once a second officer approves it (`approve_override`). A new request
    replaces an earlier one and its approval. Audited."""
    _officer(actor)
    if request.category not in OVERRIDE_CATEGORIES:
        raise InvalidInput(f"category: one of {', '.join(OVERRIDE_CATEGORIES)}")
    if len(request.reason.strip()) < OVERRIDE_REASON_MIN:
        raise InvalidInput(f"reason: at least {OVERRIDE_REASON_MIN} characters")
    application = get_application(db, application_id)
    due = get_batch(db, application.batch_id).decision_deadline
    if request.expires_on <= due:
        raise InvalidInput(f"expires_on: after the deadline it overrides ({due.isoformat()})")
    application.override_by, application.override_reason = actor.username, request.reason[:500]
    application.override_category, application.override_expires_on = (
        request.category,
        request.expires_on,
    )
    application.override_person = actor.person
    application.override_approved_by = application.override_approved_at = None
    record(
        db,
        actor,
        "certify.deadline.override",
        f"application:{application_id}",
        reason=request.reason,
        details={"category": request.category, "expires_on": request.expires_on.isoformat()},
    )


def approve_override(db: Session, actor: Actor, application_id: int) -> None:
    """R3: a second officer, not the one who asked, lets the override count. Audited."""
    application = get_application(db, application_id)
    if application.override_by is None:
        raise Conflict(f"application {application_id}: no deadline override was asked")
    approve_as_second(
        db,
        actor,
        Approval(
            f"application {application_id}: the deadline override",
            [Party(application.override_by, "asked it", application.override_person)],
            "certify.deadline.override.approve",
            f"application:{application_id}",
            approved_by=application.override_approved_by,
            details={"asked_by": application.override_by},
        ),
    )
    application.override_approved_by, application.override_approved_at = actor.username, utcnow()


def sign_decisions(
    sessions: sessionmaker[Session], signer: DocumentSigner, actor: Actor, batch_id: int
) -> BatchReport:
    """Sign every unsigned decision of a batch; safe to run again after a fault. A job of many
    units (`common.unit_of_work`): the batch signer commits chunk by chunk, then one unit marks
    what was signed."""
    with sessions() as db:
        batch = get_batch(db, batch_id)
        key = active_key(db, batch.body_code, KeyPurpose.DECISION)
        if key is None:
            raise NotFound("key: the body has no active decision key")
        unsigned = db.scalars(
            select(Decision.id)
            .join(Application, Application.id == Decision.application_id)
            .where(Application.batch_id == batch_id, Decision.signed_at.is_(None))
            .order_by(Decision.id)
        ).all()
        documents = [
            DocumentRef(KeyPurpose.DECISION.value, decision_document_id(d)) for d in unsigned
        ]
        key_id = key.id
    report = signer.sign_batch(actor, key_id, documents, batch=f"decisions-{batch_id}")
    done = report.signed + report.already_signed
    with unit_of_work(sessions) as db:
        for document_id in done:
            decision = db.get_one(Decision, int(document_id.removeprefix(DECISION_PREFIX)))
            decision.signed_at = decision.signed_at or utcnow()
    return report


def signed_decisions(db: Session, batch_id: int) -> list[Decision]:
    return list(
        db.scalars(
            select(Decision)
            .join(Application, Application.id == Decision.application_id)
            .where(Application.batch_id == batch_id, Decision.signed_at.is_not(None))
            .order_by(Decision.id)
        )
    )
