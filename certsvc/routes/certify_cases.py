"""Applications over HTTP: registrars file cases from vault tokens (tokenise first through
`/api/v1/vault/tokenise`), book confirmation slots and record check attempts (officers may
record the criminal-record check too); officers decide, with a deadline override and its
reason when the case is late (R3, audited). No response carries a token or personal value
beyond the masked name."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from certify.cases import book_slot, create_application, get_application, get_batch
from certify.checks import (
    RECORDER_ROLES,
    RESULTS,
    CheckOutcome,
    history,
    latest_results,
    missing_for_approval,
    record_check,
)
from certify.decisions import decide, override_deadline
from certify.intake import ApplicantTokens, register_applicant
from certify.models import Applicant, Application, Certificate, Decision
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep
from certsvc.routes.certify_common import CaseReaderDep, ClerkDep, OfficerDep, RegistrarDep
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.routes.vault import VAULT_TOKEN_SHAPE, VaultDep
from common.errors import InvalidInput
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


class BookingOut(BaseModel):
    application_id: int
    slot_id: int
    queue_number: int


class CheckIn(BaseModel):
    kind: str = Field(description=", ".join(RESULTS))
    result: str
    source_system: str = Field(min_length=1, max_length=64)
    reference: str = Field(min_length=1, max_length=64, description="the comparison's id")
    checked_at: datetime


class CheckOut(BaseModel):
    kind: str
    attempt: int
    result: str
    source_system: str
    reference: str
    checked_at: datetime
    recorded_by: str


class DecisionIn(BaseModel):
    outcome: str = Field(description="approve or refuse")
    reasons: str = Field(min_length=1, max_length=500)
    deadline_override_reason: str | None = Field(
        default=None, max_length=500, description="lets a late case be signed (audited)"
    )


class OverrideIn(BaseModel):
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
    deadline_overridden_by: str | None
    checks: dict[str, str] = Field(description="kind → result of the latest attempt")
    missing_for_approval: list[str]
    decision: DecisionOut | None
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
    )


def application_out(db: Session, vault: Vault, application: Application) -> ApplicationOut:
    applicant = db.get_one(Applicant, application.applicant_id)
    masked = vault.masked(db, [applicant.name_token]).get(applicant.name_token)
    results = latest_results(db, application.id)
    decision = db.scalar(select(Decision).where(Decision.application_id == application.id))
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
        deadline_overridden_by=application.override_by,
        checks=results,
        missing_for_approval=missing_for_approval(results),
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
        db, actor, body.batch_id, applicant_id, body.qualification, body.subject
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
    "/applications/{application_id}/checks",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_check(application_id: int, body: CheckIn, account: ClerkDep, db: SessionDep) -> CheckOut:
    """Record one attempt at a check (R1, R2): outcome, source system and reference — never a
    copy of a document. Registrars record every kind; officers the criminal-record check."""
    if body.kind in RECORDER_ROLES and account.role.value not in RECORDER_ROLES[body.kind]:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"kind: only a registrar records the {body.kind} check",
        )
    if body.checked_at.tzinfo is None:
        raise InvalidInput("checked_at: give a time zone (e.g. +08:00)")
    outcome = CheckOutcome(
        body.kind, body.result, body.source_system, body.reference, body.checked_at
    )
    attempt = record_check(db, actor_of(account), application_id, outcome)
    return CheckOut(
        kind=body.kind,
        attempt=attempt,
        result=body.result,
        source_system=body.source_system,
        reference=body.reference,
        checked_at=body.checked_at,
        recorded_by=account.username,
    )


@router.get("/applications/{application_id}/checks", responses=answers(404))
def list_checks(application_id: int, _: ClerkDep, db: SessionDep) -> list[CheckOut]:
    """Every attempt at every check of the case (the history)."""
    get_application(db, application_id)
    return [
        CheckOut(
            kind=c.kind,
            attempt=c.attempt,
            result=c.result,
            source_system=c.source_system,
            reference=c.reference,
            checked_at=c.checked_at,
            recorded_by=c.recorded_by,
        )
        for c in history(db, application_id)
    ]


@router.post(
    "/applications/{application_id}/decision",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_decision(
    application_id: int, body: DecisionIn, account: OfficerDep, db: SessionDep
) -> DecisionOut:
    """Approve or refuse with reasons (R2: only once the criminal-record check is finished);
    with `deadline_override_reason`, the case may be signed past its deadline (R3, audited)."""
    actor = actor_of(account)
    if body.deadline_override_reason is not None:
        override_deadline(db, actor, application_id, body.deadline_override_reason)
    decision = decide(db, actor, application_id, body.outcome, body.reasons)
    return decision_out(decision)


@router.post("/applications/{application_id}/deadline-override", responses=answers(404, 409))
def post_override(
    application_id: int, body: OverrideIn, account: OfficerDep, db: SessionDep, vault: VaultDep
) -> ApplicationOut:
    """Let a late case be signed past its deadline; the reason goes to the audit log."""
    override_deadline(db, actor_of(account), application_id, body.reason)
    return application_out(db, vault, get_application(db, application_id))


@router.get("/batches/{batch_id}/decisions", responses=answers(404))
def list_decisions(
    batch_id: int,
    _: CaseReaderDep,
    db: SessionDep,
    signed: bool | None = None,
) -> list[DecisionOut]:
    """The batch's decisions; `signed=true` for the signed ones only, `false` for those
    awaiting the custodian."""
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
