"""Certification batches over HTTP: officers create batches (R3 dates checked, the decision
deadline computed in Chinese working days) and their on-site confirmation slots; case staff
read them with the working days left to each deadline; officers publish the batch's
conclusions (allow-listed fields, checked before storing) and hand-written announcements."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from certify.cases import (
    BatchPlan,
    SlotPlan,
    add_slot,
    create_batch,
    extend_registration,
    file_plan,
    get_batch,
    record_training,
)
from certify.models import (
    Announcement,
    ApplicantRequest,
    Application,
    Batch,
    ConfirmationSlot,
)
from certify.publication import announcements, publish_conclusions, publish_text
from certify.reports import open_objections
from certify.requests import (
    RESPONSE_WORKDAYS,
    answer_request,
    record_request,
    requests_report,
)
from certify.workdays import WorkCalendar, work_calendar
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep, SettingsDep
from certsvc.routes.certify_common import (
    CaseReaderDep,
    ClerkDep,
    OfficerDep,
    ReportDep,
    china_today,
    contacts,
    staff_hosts,
)
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.routes.vault import VaultDep
from common.errors import CertsvcError

router = APIRouter(prefix="/api/v1/certify", tags=["certify"], responses=ROLE_GATED)


class BatchIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description='e.g. "2020年上半年"')
    registration_opens: date
    registration_closes: date
    confirmation_starts: date
    confirmation_ends: date
    closes_on: date


class DeadlineOut(BaseModel):
    name: str
    due: date
    working_days_left: int | None = Field(
        description="working days after `today` up to the date; negative: overdue by that "
        "many; null: the holiday calendar does not cover the span yet"
    )


class BatchOut(BaseModel):
    id: int
    name: str
    body_code: str
    registration_opens: date
    registration_closes: date
    confirmation_starts: date
    confirmation_ends: date
    confirmation_working_days: int | None
    decision_deadline: date
    closes_on: date
    registration_extended_until: date | None
    registration_extended_by: str | None
    plan_filed_on: date | None = Field(description="implementation plan filed (二(一))")
    plan_reference: str | None
    rule_version: int = Field(description="eligibility rule table in force (0: national)")
    created_by: str
    applications: int
    today: date
    deadlines: list[DeadlineOut]


class SlotIn(BaseModel):
    starts_at: datetime = Field(
        description="on a working day of the confirmation period, with a time zone, e.g. "
        "2020-07-06T09:00:00+08:00"
    )
    place: str = Field(min_length=1, max_length=100, description="where applicants confirm")
    capacity: int = Field(ge=1, le=10000)


class SlotOut(BaseModel):
    id: int
    starts_at: datetime
    place: str
    capacity: int
    booked: int


class PlanIn(BaseModel):
    filed_on: date = Field(description="when the plan was filed with the provincial centre")
    reference: str = Field(min_length=1, max_length=64, description="its document number")


class TrainingIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, description="the staff member trained")
    trained_on: date = Field(description="before on-site confirmation starts")


class TrainingOut(BaseModel):
    batch_id: int
    username: str
    trained_on: date
    recorded_by: str


class ExtensionIn(BaseModel):
    until: date = Field(description="the last day applications are accepted")
    reason: str = Field(min_length=1, max_length=500)


class ConclusionsIn(BaseModel):
    preface: str = Field(default="", max_length=1000, description="checked with the list")


class AnnouncementIn(BaseModel):
    batch_id: int | None = None
    text: str = Field(min_length=1, max_length=20000)


class AnnouncementOut(BaseModel):
    id: int
    batch_id: int | None
    text: str
    published_by: str
    published_at: datetime
    objections_until: date | None = Field(
        default=None, description="a 公示 of conclusions: the last day objections are taken"
    )


def _left(calendar: WorkCalendar, today: date, due: date) -> int | None:
    try:
        return calendar.workdays_left(today, due)
    except CertsvcError:
        return None


def batch_out(db: SessionDep, batch: Batch, today: date) -> BatchOut:
    calendar = work_calendar(db)
    try:
        confirmation: int | None = calendar.workdays_between(
            batch.confirmation_starts, batch.confirmation_ends
        )
    except CertsvcError:
        confirmation = None
    count = len(db.scalars(select(Application.id).where(Application.batch_id == batch.id)).all())
    dates = {
        "registration_closes": batch.registration_closes,
        "confirmation_ends": batch.confirmation_ends,
        "decision_deadline": batch.decision_deadline,
        "closes_on": batch.closes_on,
    }
    return BatchOut(
        id=batch.id,
        name=batch.name,
        body_code=batch.body_code,
        registration_opens=batch.registration_opens,
        registration_closes=batch.registration_closes,
        confirmation_starts=batch.confirmation_starts,
        confirmation_ends=batch.confirmation_ends,
        confirmation_working_days=confirmation,
        decision_deadline=batch.decision_deadline,
        closes_on=batch.closes_on,
        registration_extended_until=batch.registration_extended_until,
        registration_extended_by=batch.registration_extended_by,
        plan_filed_on=batch.plan_filed_on,
        plan_reference=batch.plan_reference,
        rule_version=batch.rule_version,
        created_by=batch.created_by,
        applications=count,
        today=today,
        deadlines=[
            DeadlineOut(name=name, due=due, working_days_left=_left(calendar, today, due))
            for name, due in dates.items()
        ],
    )


def _announcement_out(row: Announcement) -> AnnouncementOut:
    return AnnouncementOut(
        id=row.id,
        batch_id=row.batch_id,
        text=row.text,
        published_by=row.published_by,
        published_at=row.published_at,
        objections_until=row.objections_until,
    )


TodayQuery = Annotated[date | None, Query(description="default: today in China")]


@router.post("/batches", status_code=status.HTTP_201_CREATED, responses=answers(409))
def post_batch(
    body: BatchIn, account: OfficerDep, db: SessionDep, settings: SettingsDep
) -> BatchOut:
    """A batch of the body; refused if on-site confirmation is under 5 working days."""
    plan = BatchPlan(
        name=body.name,
        body_code=settings.body_code,
        registration_opens=body.registration_opens,
        registration_closes=body.registration_closes,
        confirmation_starts=body.confirmation_starts,
        confirmation_ends=body.confirmation_ends,
        closes_on=body.closes_on,
    )
    batch = create_batch(db, actor_of(account), plan)
    return batch_out(db, batch, china_today())


@router.get("/batches")
def list_batches(_: CaseReaderDep, db: SessionDep, today: TodayQuery = None) -> list[BatchOut]:
    """Every batch, newest first, with the working days left to each deadline."""
    day = today or china_today()
    return [batch_out(db, b, day) for b in db.scalars(select(Batch).order_by(Batch.id.desc()))]


@router.get("/batches/{batch_id}", responses=answers(404))
def show_batch(
    batch_id: int, _: CaseReaderDep, db: SessionDep, today: TodayQuery = None
) -> BatchOut:
    """One batch with its deadlines in working days from `today`."""
    return batch_out(db, get_batch(db, batch_id), today or china_today())


@router.post(
    "/batches/{batch_id}/slots", status_code=status.HTTP_201_CREATED, responses=answers(404)
)
def post_slot(batch_id: int, body: SlotIn, account: OfficerDep, db: SessionDep) -> SlotOut:
    """A confirmation slot: a time on a working day inside the on-site confirmation period, a
    place and a capacity (times and places are announced, 二(二))."""
    plan = SlotPlan(body.starts_at, body.place, body.capacity)
    slot = db.get_one(ConfirmationSlot, add_slot(db, actor_of(account), batch_id, plan))
    return _slot_out(slot)


def _slot_out(slot: ConfirmationSlot) -> SlotOut:
    return SlotOut(
        id=slot.id,
        starts_at=slot.starts_at,
        place=slot.place,
        capacity=slot.capacity,
        booked=slot.booked,
    )


@router.post("/batches/{batch_id}/implementation-plan", responses=answers(404, 409))
def post_plan(batch_id: int, body: PlanIn, account: OfficerDep, db: SessionDep) -> BatchOut:
    """Record that the batch's implementation plan was filed with the provincial centre; the
    batch's announcements need it (二(一)). Audited."""
    batch = file_plan(db, actor_of(account), batch_id, body.filed_on, body.reference)
    return batch_out(db, batch, china_today())


@router.post(
    "/batches/{batch_id}/trainings",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_training(
    batch_id: int, body: TrainingIn, account: OfficerDep, db: SessionDep
) -> TrainingOut:
    """Record a staff member's training for the batch, before on-site confirmation starts;
    only trained staff confirm its cases (二(三)). Audited."""
    row = record_training(db, actor_of(account), batch_id, body.username, body.trained_on)
    return TrainingOut(
        batch_id=row.batch_id,
        username=row.username,
        trained_on=row.trained_on,
        recorded_by=row.recorded_by,
    )


@router.post("/batches/{batch_id}/registration-extension", responses=answers(404, 409))
def post_extension(
    batch_id: int, body: ExtensionIn, account: OfficerDep, db: SessionDep
) -> BatchOut:
    """Accept applications after registration closed, up to `until`; the reason is audited."""
    batch = extend_registration(db, actor_of(account), batch_id, body.until, body.reason)
    return batch_out(db, batch, china_today())


@router.get("/batches/{batch_id}/slots", responses=answers(404))
def list_slots(batch_id: int, _: ClerkDep, db: SessionDep) -> list[SlotOut]:
    """The batch's slots with how many places are booked."""
    get_batch(db, batch_id)
    slots = db.scalars(
        select(ConfirmationSlot)
        .where(ConfirmationSlot.batch_id == batch_id)
        .order_by(ConfirmationSlot.starts_at)
    )
    return [_slot_out(s) for s in slots]


@router.post(
    "/batches/{batch_id}/announcements",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_conclusions(
    batch_id: int,
    body: ConclusionsIn,
    request: Request,
    account: OfficerDep,
    db: SessionDep,
    vault: VaultDep,
    settings: SettingsDep,
) -> AnnouncementOut:
    """Publish the batch's signed conclusions (公示): masked name, qualification type, subject
    and result only, with its objection period (`CERTSVC_OBJECTION_WORKDAYS` working days); the
    text passes the announcement checker before it is stored."""
    row = publish_conclusions(
        db,
        actor_of(account),
        vault,
        batch_id,
        body.preface,
        staff_hosts(request),
        contacts(request, db, batch_id),
        settings.objection_workdays,
    )
    return _announcement_out(row)


@router.get("/batches/{batch_id}/announcements", responses=answers(404))
def list_announcements(batch_id: int, _: ClerkDep, db: SessionDep) -> list[AnnouncementOut]:
    """What was published for the batch."""
    get_batch(db, batch_id)
    return [_announcement_out(row) for row in announcements(db, batch_id)]


@router.post("/announcements", status_code=status.HTTP_201_CREATED, responses=answers(404))
def post_announcement(
    body: AnnouncementIn, request: Request, account: OfficerDep, db: SessionDep
) -> AnnouncementOut:
    """Publish a hand-written announcement; refused (422, naming the kinds of item found) if
    the checker finds personal data or a link to the staff system or a login page."""
    row = publish_text(
        db,
        actor_of(account),
        body.batch_id,
        body.text,
        staff_hosts(request),
        contacts(request, db, body.batch_id),
    )
    return _announcement_out(row)


class RequestIn(BaseModel):
    batch_id: int
    application_id: int | None = None
    kind: str = Field(description=", ".join(RESPONSE_WORKDAYS))
    summary: str = Field(min_length=1, max_length=500, description="no personal values")
    received_on: date


class AnswerIn(BaseModel):
    answer: str = Field(min_length=1, max_length=500, description="no personal values")
    answered_on: date


class RequestOut(BaseModel):
    id: int
    batch_id: int
    application_id: int | None
    announcement_id: int | None = Field(description="an objection's 公示")
    kind: str
    summary: str
    received_on: date
    due_on: date = Field(description="received_on plus the kind's working days")
    recorded_by: str
    answered_on: date | None
    answer: str | None
    answered_by: str | None
    state: str | None = Field(default=None, description="in the report: open, late, answered …")


def _request_out(row: ApplicantRequest, state: str | None = None) -> RequestOut:
    return RequestOut(
        id=row.id,
        batch_id=row.batch_id,
        application_id=row.application_id,
        announcement_id=row.announcement_id,
        kind=row.kind,
        summary=row.summary,
        received_on=row.received_on,
        due_on=row.due_on,
        recorded_by=row.recorded_by,
        answered_on=row.answered_on,
        answer=row.answer,
        answered_by=row.answered_by,
        state=state,
    )


@router.post("/requests", status_code=status.HTTP_201_CREATED, responses=answers(404))
def post_request(body: RequestIn, account: ClerkDep, db: SessionDep) -> RequestOut:
    """File an applicant's objection, request or complaint (四(二)), due in working days. An
    objection names the case and is taken only in its 公示's objection period (422 after it);
    until answered, the case's documents are not signed."""
    row = record_request(
        db,
        actor_of(account),
        body.batch_id,
        body.application_id,
        body.kind,
        body.summary,
        body.received_on,
    )
    return _request_out(row)


@router.post("/requests/{request_id}/answer", responses=answers(404, 409))
def post_answer(request_id: int, body: AnswerIn, account: OfficerDep, db: SessionDep) -> RequestOut:
    """An officer's answer to a request, once."""
    return _request_out(
        answer_request(db, actor_of(account), request_id, body.answer, body.answered_on)
    )


@router.get("/reports/requests", responses=answers(404))
def get_requests(
    _: ReportDep, db: SessionDep, batch_id: int | None = None, today: TodayQuery = None
) -> list[RequestOut]:
    """Every request with its state on `today` (late: past its due day unanswered)."""
    if batch_id is not None:
        get_batch(db, batch_id)
    return [
        _request_out(r.request, r.state)
        for r in requests_report(db, today or china_today(), batch_id)
    ]


@router.get("/reports/objections", responses=answers(404))
def get_objections(
    _: ReportDep, db: SessionDep, batch_id: int | None = None, today: TodayQuery = None
) -> list[RequestOut]:
    """Objections to a 公示 not answered yet, open or late on `today`: their cases are not
    signed or issued until an officer answers."""
    if batch_id is not None:
        get_batch(db, batch_id)
    return [
        _request_out(r.request, r.state)
        for r in open_objections(db, today or china_today(), batch_id)
    ]
