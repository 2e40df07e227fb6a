"""Applications over HTTP: registrars file cases from vault tokens (tokenise first through
`/api/v1/vault/tokenise`), book confirmation slots and record check attempts (officers may
record the criminal-record check too); officers decide, with a deadline override and its
reason when the case is late (R3, audited). No response carries a token or personal value
beyond the masked name."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from certify.cases import (
    book_slot,
    create_application,
    get_application,
    get_batch,
    record_attendance,
)
from certify.checks import (
    CRIMINAL_RECORD,
    RECORDER_ROLES,
    RESULTS,
    CheckOutcome,
    PoliceReference,
    approve_replacement,
    history,
    latest_results,
    missing_for_approval,
    record_check,
)
from certify.decisions import (
    OVERRIDE_CATEGORIES,
    OverrideRequest,
    approve_override,
    decide,
    live_decision,
    override_deadline,
)
from certify.eligibility import unmet_rules
from certify.intake import ApplicantTokens, register_applicant
from certify.models import Applicant, Application, Attendance, CaseCheck, Certificate, Decision
from certsvc.accounts import StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep
from certsvc.routes.certify_common import (
    CaseReaderDep,
    ClerkDep,
    OfficerDep,
    RegistrarDep,
    china_today,
)
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.routes.vault import VAULT_TOKEN_SHAPE, VaultDep
from common.errors import InvalidInput, NotFound
from vault.store import Vault

router = APIRouter(prefix="/api/v1/certify", tags=["certify"], responses=ROLE_GATED)
TokenField = Annotated[str, Field(pattern=VAULT_TOKEN_SHAPE)]


class ApplicantIn(BaseModel):
    """The applicant's vault tokens, as `/api/v1/vault/tokenise` returned them."""

    id_number_token: TokenField
    name_token: TokenField
    phone_token: TokenField | None = None
    email_token: TokenField | None = None
    address_token: TokenField | None = None


class ApplicationIn(BaseModel):
    batch_id: int
    applicant: ApplicantIn
    qualification: str = Field(description="KG, PS, JS, SS, VS or VP")
    subject: str = Field(description="two-digit subject code")


class BookingIn(BaseModel):
    slot_id: int


class AttendanceIn(BaseModel):
    confirmed_at: datetime = Field(description="with a time zone, e.g. 2020-07-06T09:20:00+08:00")
    national_reference: str = Field(
        min_length=1, max_length=64, description="the national system's confirmation reference"
    )


class AttendanceOut(BaseModel):
    application_id: int
    confirmed_by: str
    confirmed_at: datetime
    place: str
    national_reference: str


class BookingOut(BaseModel):
    application_id: int
    slot_id: int
    queue_number: int


class CheckIn(BaseModel):
    kind: str = Field(description=", ".join(RESULTS))
    result: str
    source_system: str = Field(min_length=1, max_length=64)
    reference: str = Field(
        min_length=1,
        max_length=64,
        description="the comparison's id (for Mandarin: the certificate number's reference)",
    )
    checked_at: datetime
    value: str | None = Field(
        default=None,
        max_length=32,
        description="what the comparison found: degree level (e.g. 本科) or Mandarin grade "
        "(e.g. 二级甲等), needed with a degree or Mandarin match; exam result",
    )
    police_unit: str | None = Field(
        default=None, max_length=100, description="criminal-record check: the issuing unit"
    )
    police_issued_on: date | None = Field(
        default=None, description="criminal-record check: the date the police issued it"
    )


class CheckOut(BaseModel):
    kind: str
    attempt: int
    result: str
    value: str | None
    source_system: str
    reference: str
    police_unit: str | None
    police_issued_on: date | None
    replaces_result: str | None = Field(
        description="a non-clear criminal-record result this attempt replaced: it counts "
        "only once `approved_by`, a second officer, approves"
    )
    approved_by: str | None
    checked_at: datetime
    recorded_by: str


def check_out(row: CaseCheck) -> CheckOut:
    return CheckOut(
        kind=row.kind,
        attempt=row.attempt,
        result=row.result,
        value=row.value,
        source_system=row.source_system,
        reference=row.reference,
        police_unit=row.police_unit,
        police_issued_on=row.police_issued_on,
        replaces_result=row.replaces_result,
        approved_by=row.approved_by,
        checked_at=row.checked_at,
        recorded_by=row.recorded_by,
    )


class OverrideIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    category: str = Field(description=", ".join(OVERRIDE_CATEGORIES))
    expires_on: date = Field(description="the last day the override lets the case be signed")


class DecisionIn(BaseModel):
    outcome: str = Field(description="approve or refuse")
    reasons: str = Field(min_length=1, max_length=500)
    deadline_override: OverrideIn | None = Field(
        default=None,
        description="asks that the case be signed past its deadline; counts once a second "
        "officer approves it (R3, audited)",
    )


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class DecisionOut(BaseModel):
    id: int
    application_id: int
    outcome: str
    reasons: str
    decided_by: str
    decided_at: datetime
    signed: bool
    signed_at: datetime | None
    supersedes_id: int | None = Field(
        default=None, description="for a correction: the decision it supersedes (R10)"
    )
    correction_reason: str | None = None
    correction_approved_by: str | None = Field(
        default=None, description="the second officer; a correction is signed only once approved"
    )
    superseded: bool = Field(
        default=False, description="a correction superseded it: no longer the case's conclusion"
    )


class CertificateRef(BaseModel):
    number: str
    status: str


class ApplicationOut(BaseModel):
    id: int
    batch_id: int
    applicant_id: int
    masked_name: str | None
    qualification: str
    subject: str
    slot_id: int | None
    queue_number: int | None
    attended: bool = Field(description="attendance at on-site confirmation is recorded")
    deadline_overridden_by: str | None
    deadline_override_approved_by: str | None
    deadline_override_expires_on: date | None
    checks: dict[str, str] = Field(description="kind → result of the latest attempt")
    missing_for_approval: list[str]
    unmet_rules: list[str] = Field(
        description="eligibility rules of the batch's table the case does not meet, each with "
        "its legal source and the value found"
    )
    decision: DecisionOut | None = Field(description="the live decision (R10: corrections)")
    certificates: list[CertificateRef]


def decision_out(decision: Decision) -> DecisionOut:
    return DecisionOut(
        id=decision.id,
        application_id=decision.application_id,
        outcome=decision.outcome,
        reasons=decision.reasons,
        decided_by=decision.decided_by,
        decided_at=decision.decided_at,
        signed=decision.signed_at is not None,
        signed_at=decision.signed_at,
        supersedes_id=decision.supersedes_id,
        correction_reason=decision.correction_reason,
        correction_approved_by=decision.correction_approved_by,
        superseded=decision.superseded_at is not None,
    )


def application_out(db: Session, vault: Vault, application: Application) -> ApplicationOut:
    applicant = db.get_one(Applicant, application.applicant_id)
    masked = vault.masked(db, [applicant.name_token]).get(applicant.name_token)
    results = latest_results(db, application.id)
    decision = live_decision(db, application.id)
    certificates = db.execute(
        select(Certificate.number, Certificate.status)
        .where(Certificate.application_id == application.id)
        .order_by(Certificate.id)
    ).all()
    return ApplicationOut(
        id=application.id,
        batch_id=application.batch_id,
        applicant_id=application.applicant_id,
        masked_name=masked[1] if masked else None,
        qualification=application.qualification,
        subject=application.subject,
        slot_id=application.slot_id,
        queue_number=application.queue_number,
        attended=db.get(Attendance, application.id) is not None,
        deadline_overridden_by=application.override_by,
        deadline_override_approved_by=application.override_approved_by,
        deadline_override_expires_on=application.override_expires_on,
        checks=results,
        missing_for_approval=missing_for_approval(results),
        unmet_rules=[str(u) for u in unmet_rules(db, application)],
        decision=decision_out(decision) if decision is not None else None,
        certificates=[CertificateRef(number=n, status=s) for n, s in certificates],
    )


@router.post("/applications", status_code=status.HTTP_201_CREATED, responses=answers(404, 409))
def post_application(
    body: ApplicationIn, account: RegistrarDep, db: SessionDep, vault: VaultDep
) -> ApplicationOut:
    """File a case for the applicant behind the tokens (one applicant per ID number; the
    facts the ID number states are computed by the vault, the number goes nowhere)."""
    actor = actor_of(account)
    get_batch(db, body.batch_id)
    tokens = ApplicantTokens(**body.applicant.model_dump())
    applicant_id = register_applicant(db, actor, vault, tokens)
    application = create_application(
        db,
        actor,
        body.batch_id,
        applicant_id,
        body.qualification,
        body.subject,
        filed_on=china_today(),
    )
    return application_out(db, vault, application)


@router.get("/applications/{application_id}", responses=answers(404))
def get_application_route(
    application_id: int, _: CaseReaderDep, db: SessionDep, vault: VaultDep
) -> ApplicationOut:
    """The case: appointment, latest checks, decision, certificates."""
    return application_out(db, vault, get_application(db, application_id))


@router.get("/batches/{batch_id}/applications", responses=answers(404))
def list_applications(
    batch_id: int, _: CaseReaderDep, db: SessionDep, vault: VaultDep
) -> list[ApplicationOut]:
    """Every case of the batch."""
    get_batch(db, batch_id)
    rows = db.scalars(
        select(Application).where(Application.batch_id == batch_id).order_by(Application.id)
    )
    return [application_out(db, vault, a) for a in rows]


@router.post(
    "/applications/{application_id}/booking",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_booking(
    application_id: int, body: BookingIn, account: RegistrarDep, db: SessionDep
) -> BookingOut:
    """Book an on-site confirmation slot; the answer is the queue number within it."""
    queue = book_slot(db, actor_of(account), application_id, body.slot_id)
    return BookingOut(application_id=application_id, slot_id=body.slot_id, queue_number=queue)


@router.post(
    "/applications/{application_id}/attendance",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_attendance(
    application_id: int, body: AttendanceIn, account: RegistrarDep, db: SessionDep
) -> AttendanceOut:
    """The applicant came to their booked slot: who confirmed them (the caller), when, where
    (the slot's place) and the national system's reference. An approval needs it."""
    row = record_attendance(
        db, actor_of(account), application_id, body.confirmed_at, body.national_reference
    )
    return AttendanceOut(
        application_id=row.application_id,
        confirmed_by=row.confirmed_by,
        confirmed_at=row.confirmed_at,
        place=row.place,
        national_reference=row.national_reference,
    )


@router.post(
    "/applications/{application_id}/checks",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_check(application_id: int, body: CheckIn, account: ClerkDep, db: SessionDep) -> CheckOut:
    """Record one attempt at a check (R1, R2): outcome, value found, source system and
    reference — never a copy of a document. Registrars record the comparisons and the
    examination; only officers the criminal-record check, with the police's reference."""
    police = None
    if body.police_unit is not None or body.police_issued_on is not None:
        police = PoliceReference(body.police_unit or "", body.police_issued_on)
    outcome = CheckOutcome(
        body.kind,
        body.result,
        body.source_system,
        body.reference,
        body.checked_at,
        body.value,
        police,
    )
    attempt = record_staff_check(db, account, application_id, outcome)
    return check_out(_attempt(db, application_id, body.kind, attempt))


def record_staff_check(
    db: Session, account: StaffAccount, application_id: int, outcome: CheckOutcome
) -> int:
    """Record the attempt if the caller's role records checks of its kind (403 otherwise):
    the API's and the console's one way in."""
    allowed = RECORDER_ROLES.get(outcome.kind)
    if allowed is not None and account.role.value not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"kind: only a {' or '.join(sorted(allowed))} records the {outcome.kind} check",
        )
    if outcome.checked_at.tzinfo is None:
        raise InvalidInput("checked_at: give a time zone (e.g. +08:00)")
    return record_check(db, actor_of(account), application_id, outcome)


def _attempt(db: Session, application_id: int, kind: str, attempt: int) -> CaseCheck:
    row = db.scalar(
        select(CaseCheck).where(
            CaseCheck.application_id == application_id,
            CaseCheck.kind == kind,
            CaseCheck.attempt == attempt,
        )
    )
    if row is None:
        raise NotFound(f"attempt: no {kind} attempt {attempt} on application {application_id}")
    return row


@router.get("/applications/{application_id}/checks", responses=answers(404))
def list_checks(application_id: int, _: ClerkDep, db: SessionDep) -> list[CheckOut]:
    """Every attempt at every check of the case (the history)."""
    get_application(db, application_id)
    return [check_out(c) for c in history(db, application_id)]


@router.post(
    "/applications/{application_id}/checks/criminal_record/{attempt}/approval",
    responses=answers(404, 409),
)
def post_replacement_approval(
    application_id: int, attempt: int, body: ReasonIn, account: OfficerDep, db: SessionDep
) -> CheckOut:
    """R2: a second officer lets a criminal-record attempt that replaced a non-clear result
    count (the officer who recorded it cannot); until then no conclusion is made or signed."""
    approve_replacement(db, actor_of(account), application_id, attempt, body.reason)
    return check_out(_attempt(db, application_id, CRIMINAL_RECORD, attempt))


@router.post(
    "/applications/{application_id}/decision",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_decision(
    application_id: int, body: DecisionIn, account: OfficerDep, db: SessionDep
) -> DecisionOut:
    """Approve or refuse with reasons (R2: only once the criminal-record check is finished);
    with `deadline_override`, an officer asks that it be signed past its deadline (R3)."""
    actor = actor_of(account)
    if body.deadline_override is not None:
        override_deadline(db, actor, application_id, _override(body.deadline_override))
    decision = decide(db, actor, application_id, body.outcome, body.reasons)
    return decision_out(decision)


@router.post("/applications/{application_id}/deadline-override", responses=answers(404, 409))
def post_override(
    application_id: int, body: OverrideIn, account: OfficerDep, db: SessionDep, vault: VaultDep
) -> ApplicationOut:
    """Ask that a late case be signed past its deadline until `expires_on` (a category and a
    reason, audited); a second officer approves it before it counts."""
    override_deadline(db, actor_of(account), application_id, _override(body))
    return application_out(db, vault, get_application(db, application_id))


def _override(body: OverrideIn) -> OverrideRequest:
    return OverrideRequest(body.reason, body.category, body.expires_on)


@router.post(
    "/applications/{application_id}/deadline-override/approval", responses=answers(404, 409)
)
def post_override_approval(
    application_id: int, account: OfficerDep, db: SessionDep, vault: VaultDep
) -> ApplicationOut:
    """A second officer (not the one who asked) approves the deadline override (audited)."""
    approve_override(db, actor_of(account), application_id)
    return application_out(db, vault, get_application(db, application_id))


@router.get("/batches/{batch_id}/decisions", responses=answers(404))
def list_decisions(
    batch_id: int,
    _: CaseReaderDep,
    db: SessionDep,
    signed: bool | None = None,
) -> list[DecisionOut]:
    """The batch's decisions, superseded ones included (marked); `signed=true` for the signed
    ones only, `false` for those awaiting the custodian."""
    get_batch(db, batch_id)
    query = (
        select(Decision)
        .join(Application, Application.id == Decision.application_id)
        .where(Application.batch_id == batch_id)
        .order_by(Decision.id)
    )
    if signed is not None:
        query = query.where(
            Decision.signed_at.is_not(None) if signed else Decision.signed_at.is_(None)
        )
    return [decision_out(d) for d in db.scalars(query)]
