"""Batches, confirmation slots and applications: the frame of every case.

A batch's R3 dates are checked when it is created: on-site confirmation lasts at least five
Chinese working days, and the decision deadline is the 30th working day after it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audit.trail import record
from certify.eligibility import Ineligible, batch_table, table_version, version_in_force
from certify.models import (
    Applicant,
    Application,
    Attendance,
    Batch,
    Certificate,
    ConfirmationSlot,
    Training,
)
from certify.workdays import work_calendar
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import OFFICER_ROLE, Actor
from verify.codes import QUALIFICATIONS, SUBJECTS

MIN_CONFIRMATION_WORKDAYS = 5
DECISION_WORKDAYS = 30
CHINA = ZoneInfo("Asia/Shanghai")
PLACE_MAX = 100
REFERENCE_MAX = 64
REASON_MIN = 10
# Leeway for a confirmation time typed on a workstation whose clock runs a little ahead.
CLOCK_LEEWAY = timedelta(minutes=5)


@dataclass(frozen=True)
class SlotPlan:
    starts_at: datetime
    place: str
    capacity: int


@dataclass(frozen=True)
class BatchPlan:
    name: str
    body_code: str
    registration_opens: date
    registration_closes: date
    confirmation_starts: date
    confirmation_ends: date
    closes_on: date


def create_batch(db: Session, actor: Actor, plan: BatchPlan) -> Batch:
    """A batch whose dates follow R3, with its effective decision deadline: the earlier of the
    30th working day after on-site confirmation ends and the batch's closing date (the
    province's round closes on a fixed day, 2020: 08-20)."""
    if not plan.registration_opens <= plan.registration_closes:
        raise InvalidInput("registration: opens after it closes")
    if not plan.confirmation_starts <= plan.confirmation_ends:
        raise InvalidInput("confirmation: starts after it ends")
    if plan.closes_on < plan.confirmation_ends:
        raise InvalidInput("closes_on: before on-site confirmation ends")
    calendar = work_calendar(db)
    if not calendar.is_workday(plan.closes_on):
        raise InvalidInput(f"closes_on: {plan.closes_on.isoformat()} is not a working day")
    days = calendar.workdays_between(plan.confirmation_starts, plan.confirmation_ends)
    if days < MIN_CONFIRMATION_WORKDAYS:
        raise InvalidInput(
            f"confirmation: {days} working day(s); R3 needs at least "
            f"{MIN_CONFIRMATION_WORKDAYS} (public holidays do not count)"
        )
    in_force = version_in_force(db)
    province_round = table_version(db, in_force).round
    if province_round is not None:
        misfit = province_round.misfits(
            plan.registration_opens, plan.registration_closes, plan.closes_on
        )
        if misfit is not None:
            raise InvalidInput(misfit)
    if db.scalar(select(Batch.id).where(Batch.name == plan.name)) is not None:
        raise Conflict(f"name: batch {plan.name!r} exists")
    batch = Batch(
        name=plan.name,
        body_code=plan.body_code,
        registration_opens=plan.registration_opens,
        registration_closes=plan.registration_closes,
        confirmation_starts=plan.confirmation_starts,
        confirmation_ends=plan.confirmation_ends,
        decision_deadline=min(
            calendar.add_workdays(plan.confirmation_ends, DECISION_WORKDAYS), plan.closes_on
        ),
        closes_on=plan.closes_on,
        rule_version=in_force,
        created_by=actor.username,
    )
    db.add(batch)
    db.flush()
    record(
        db,
        actor,
        "certify.batch.create",
        f"batch:{batch.id}",
        details={"rule_version": batch.rule_version},
    )
    return batch


def get_batch(db: Session, batch_id: int) -> Batch:
    batch = db.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"batch_id: no batch {batch_id}")
    return batch


def add_slot(db: Session, actor: Actor, batch_id: int, slot: SlotPlan) -> int:
    """A confirmation slot: a time on a working day inside the batch's on-site confirmation
    period, and the place, both announced (二(二))."""
    batch = get_batch(db, batch_id)
    if slot.starts_at.tzinfo is None:
        raise InvalidInput("starts_at: give a time zone (e.g. +08:00)")
    day = slot.starts_at.astimezone(CHINA).date()
    if not batch.confirmation_starts <= day <= batch.confirmation_ends:
        raise InvalidInput("starts_at: outside the batch's on-site confirmation period")
    if not work_calendar(db).is_workday(day):
        raise InvalidInput(f"starts_at: {day.isoformat()} is not a working day in China")
    place = slot.place.strip()
    if not place or len(place) > PLACE_MAX:
        raise InvalidInput(f"place: where applicants confirm, at most {PLACE_MAX} characters")
    if slot.capacity < 1:
        raise InvalidInput("capacity: at least 1")
    row = ConfirmationSlot(
        batch_id=batch_id, starts_at=slot.starts_at, place=place, capacity=slot.capacity, booked=0
    )
    db.add(row)
    db.flush()
    record(db, actor, "certify.slot.add", f"slot:{row.id}", details={"capacity": slot.capacity})
    return row.id


def site_places(db: Session, batch_id: int | None) -> tuple[str, ...]:
    """The places of the confirmation slots (of one batch, or all): announced, so published
    texts may name them."""
    query = select(ConfirmationSlot.place).distinct()
    if batch_id is not None:
        query = query.where(ConfirmationSlot.batch_id == batch_id)
    return tuple(place for place in db.scalars(query) if place)


def extend_registration(
    db: Session, actor: Actor, batch_id: int, until: date, reason: str
) -> Batch:
    """An officer lets applications in after registration closed, up to `until`; audited."""
    if actor.role != OFFICER_ROLE:
        raise Conflict("only an officer extends registration")
    if len(reason.strip()) < REASON_MIN:
        raise InvalidInput(f"reason: at least {REASON_MIN} characters")
    batch = get_batch(db, batch_id)
    if until <= batch.registration_closes:
        raise InvalidInput(
            f"until: after registration closes ({batch.registration_closes.isoformat()})"
        )
    batch.registration_extended_until = until
    batch.registration_extended_by = actor.username
    batch.registration_extension_reason = reason[:500]
    record(
        db,
        actor,
        "certify.registration.extend",
        f"batch:{batch_id}",
        reason=reason,
        details={"until": until.isoformat()},
    )
    return batch


def file_plan(db: Session, actor: Actor, batch_id: int, filed_on: date, reference: str) -> Batch:
    """An officer records that the batch's implementation plan was filed with the provincial
    centre (二(一)): the batch's announcements need it. Audited."""
    if actor.role != OFFICER_ROLE:
        raise Conflict("only an officer records the implementation plan")
    if not reference.strip() or len(reference) > REFERENCE_MAX:
        raise InvalidInput(
            f"reference: the plan's document number, at most {REFERENCE_MAX} characters"
        )
    batch = get_batch(db, batch_id)
    batch.plan_filed_on, batch.plan_reference = filed_on, reference.strip()
    batch.plan_recorded_by = actor.username
    record(
        db,
        actor,
        "certify.plan.file",
        f"batch:{batch_id}",
        details={"filed_on": filed_on.isoformat(), "reference": batch.plan_reference},
    )
    return batch


def plan_missing(batch: Batch) -> str | None:
    """Why the batch may not announce yet (None: its implementation plan is filed)."""
    if batch.plan_filed_on is not None:
        return None
    return (
        f"batch_id: the implementation plan of batch {batch.id} is not recorded as filed with "
        f"the provincial centre (二(一)); record it before announcing"
    )


def record_training(
    db: Session, actor: Actor, batch_id: int, username: str, trained_on: date
) -> Training:
    """An officer records that `username` was trained for the batch before on-site
    confirmation starts (二(三)). Audited."""
    if actor.role != OFFICER_ROLE:
        raise Conflict("only an officer records staff training")
    batch = get_batch(db, batch_id)
    if trained_on >= batch.confirmation_starts:
        raise InvalidInput(
            f"trained_on: before on-site confirmation starts "
            f"({batch.confirmation_starts.isoformat()})"
        )
    if db.get(Training, (batch_id, username)) is not None:
        raise Conflict(f"username: {username} is already recorded as trained for this batch")
    training = Training(
        batch_id=batch_id, username=username, trained_on=trained_on, recorded_by=actor.username
    )
    db.add(training)
    db.flush()
    record(
        db,
        actor,
        "certify.training.record",
        f"batch:{batch_id}",
        details={"username": username, "trained_on": trained_on.isoformat()},
    )
    return training


def _registration_open(batch: Batch, day: date) -> None:
    last = max(batch.registration_closes, batch.registration_extended_until or date.min)
    if not batch.registration_opens <= day <= last:
        raise Conflict(
            f"filed_on: {day.isoformat()} is outside the batch's registration window "
            f"({batch.registration_opens.isoformat()} to {last.isoformat()}); an officer may "
            f"extend it, with a reason"
        )


def create_application(
    db: Session,
    actor: Actor,
    batch_id: int,
    applicant_id: int,
    qualification: str,
    subject: str,
    *,
    filed_on: date,
) -> Application:
    """A case for an applicant already on file (by id: the vault holds who they are), filed
    inside the batch's registration window, in a subject its qualification type has under the
    batch's rule table."""
    batch = get_batch(db, batch_id)
    _registration_open(batch, filed_on)
    if db.get(Applicant, applicant_id) is None:
        raise NotFound(f"applicant_id: no applicant {applicant_id}")
    if qualification not in QUALIFICATIONS:
        raise InvalidInput(f"qualification: one of {', '.join(QUALIFICATIONS)}")
    if subject not in SUBJECTS:
        raise InvalidInput("subject: not a known subject code")
    wrong_subject = batch_table(db, batch).subject_unmet(qualification, subject)
    if wrong_subject is not None:
        raise Ineligible([wrong_subject])
    taken = select(Application.id).where(
        Application.batch_id == batch_id,
        Application.applicant_id == applicant_id,
        Application.qualification == qualification,
    )
    if db.scalar(taken) is not None:
        raise Conflict("applicant: already applied for this qualification in this batch")
    application = Application(
        batch_id=batch_id,
        applicant_id=applicant_id,
        qualification=qualification,
        subject=subject,
        created_by=actor.username,
    )
    db.add(application)
    db.flush()
    record(db, actor, "certify.application.create", f"application:{application.id}")
    return application


def get_application(db: Session, application_id: int) -> Application:
    application = db.get(Application, application_id)
    if application is None:
        raise NotFound(f"application_id: no application {application_id}")
    return application


def book_slot(db: Session, actor: Actor, application_id: int, slot_id: int) -> int:
    """Book the slot (a conditional update, so capacity holds under concurrency); returns the
    queue number within the slot."""
    application = get_application(db, application_id)
    # Held until the booking commits: two bookings of one application never both count.
    db.refresh(application, with_for_update=True)
    if application.slot_id is not None:
        raise Conflict(f"application {application_id} already has an appointment")
    booked = db.execute(
        update(ConfirmationSlot)
        .where(
            ConfirmationSlot.id == slot_id,
            ConfirmationSlot.batch_id == application.batch_id,
            ConfirmationSlot.booked < ConfirmationSlot.capacity,
        )
        .values(booked=ConfirmationSlot.booked + 1)
        .returning(ConfirmationSlot.booked)
    ).scalar_one_or_none()
    if booked is None:
        raise Conflict(f"slot {slot_id}: full or not in the application's batch")
    application.slot_id, application.queue_number = slot_id, booked
    record(
        db,
        actor,
        "certify.application.book",
        f"application:{application_id}",
        details={"slot": slot_id},
    )
    return booked


def record_attendance(
    db: Session, actor: Actor, application_id: int, confirmed_at: datetime, reference: str
) -> Attendance:
    """The applicant came to their booked slot's place and was confirmed by `actor` (a
    registrar), on a working day of the confirmation period; `reference` is the national
    system's confirmation reference. Once per application. A time still ahead is refused:
    attendance is a fact, recorded after the applicant came, never planned."""
    application = get_application(db, application_id)
    if application.slot_id is None:
        raise Conflict(f"application {application_id}: no confirmation slot booked")
    if confirmed_at.tzinfo is None:
        raise InvalidInput("confirmed_at: give a time zone (e.g. +08:00)")
    if not reference.strip() or len(reference) > REFERENCE_MAX:
        raise InvalidInput(
            f"national_reference: the national system's confirmation reference, at most "
            f"{REFERENCE_MAX} characters"
        )
    if confirmed_at > utcnow() + CLOCK_LEEWAY:
        raise InvalidInput("confirmed_at: in the future; record attendance once the applicant came")
    batch = get_batch(db, application.batch_id)
    day = confirmed_at.astimezone(CHINA).date()
    if not batch.confirmation_starts <= day <= batch.confirmation_ends:
        raise InvalidInput("confirmed_at: outside the batch's on-site confirmation period")
    if not work_calendar(db).is_workday(day):
        raise InvalidInput(f"confirmed_at: {day.isoformat()} is not a working day in China")
    if db.get(Attendance, application_id) is not None:
        raise Conflict(f"application {application_id}: attendance is recorded already")
    if db.get(Training, (batch.id, actor.username)) is None:
        raise Conflict(
            f"{actor.username} is not trained for this batch (二(三)); an officer records the "
            f"training first"
        )
    slot = db.get_one(ConfirmationSlot, application.slot_id)
    attendance = Attendance(
        application_id=application_id,
        confirmed_by=actor.username,
        confirmed_at=confirmed_at,
        place=slot.place,
        national_reference=reference.strip(),
    )
    db.add(attendance)
    db.flush()
    record(
        db,
        actor,
        "certify.application.attend",
        f"application:{application_id}",
        details={"slot": slot.id},
    )
    return attendance


def attendance_missing(db: Session, application_id: int) -> str | None:
    """Why the case may not be approved yet for want of on-site confirmation (None: it was
    confirmed)."""
    if db.get(Attendance, application_id) is not None:
        return None
    return (
        f"confirmation: application {application_id} has no recorded attendance at on-site "
        f"confirmation (二(二)); record it before approving"
    )


CASE_REFERENCE = r"^(application:[0-9]{1,12}|certificate:[0-9]{17})$"


def case_tokens(db: Session, case: str) -> frozenset[str]:
    """The vault tokens of the applicant behind `case` (`application:<id>` or
    `certificate:<number>`): what a reveal stated for that case may open."""
    kind, _, key = case.partition(":")
    query = select(Applicant).join(Application, Application.applicant_id == Applicant.id)
    if kind == "application" and key.isdigit():
        query = query.where(Application.id == int(key))
    elif kind == "certificate" and key.isdigit():
        query = query.join(Certificate, Certificate.application_id == Application.id).where(
            Certificate.number == key
        )
    else:
        raise InvalidInput("case: application:<id> or certificate:<number>")
    applicant = db.scalar(query)
    if applicant is None:
        raise NotFound(f"case: no {kind} {key}")
    tokens = (
        applicant.id_number_token,
        applicant.name_token,
        applicant.phone_token,
        applicant.email_token,
        applicant.address_token,
    )
    return frozenset(token for token in tokens if token)
