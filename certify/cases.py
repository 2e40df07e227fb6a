"""Batches, confirmation slots and applications: the frame of every case.

A batch's R3 dates are checked when it is created: on-site confirmation lasts at least five
Chinese working days, and the decision deadline is the 30th working day after it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audit.trail import record
from certify.models import Applicant, Application, Batch, Certificate, ConfirmationSlot
from certify.workdays import work_calendar
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor
from verify.codes import QUALIFICATIONS, SUBJECTS

MIN_CONFIRMATION_WORKDAYS = 5
DECISION_WORKDAYS = 30


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
    """A batch whose dates follow R3, with its decision deadline computed."""
    if not plan.registration_opens <= plan.registration_closes:
        raise InvalidInput("registration: opens after it closes")
    if not plan.confirmation_starts <= plan.confirmation_ends:
        raise InvalidInput("confirmation: starts after it ends")
    if plan.closes_on < plan.confirmation_ends:
        raise InvalidInput("closes_on: before on-site confirmation ends")
    calendar = work_calendar(db)
    days = calendar.workdays_between(plan.confirmation_starts, plan.confirmation_ends)
    if days < MIN_CONFIRMATION_WORKDAYS:
        raise InvalidInput(
            f"confirmation: {days} working day(s); R3 needs at least "
            f"{MIN_CONFIRMATION_WORKDAYS} (public holidays do not count)"
        )
    if db.scalar(select(Batch.id).where(Batch.name == plan.name)) is not None:
        raise Conflict(f"name: batch {plan.name!r} exists")
    batch = Batch(
        name=plan.name,
        body_code=plan.body_code,
        registration_opens=plan.registration_opens,
        registration_closes=plan.registration_closes,
        confirmation_starts=plan.confirmation_starts,
        confirmation_ends=plan.confirmation_ends,
        decision_deadline=calendar.add_workdays(plan.confirmation_ends, DECISION_WORKDAYS),
        closes_on=plan.closes_on,
        created_by=actor.username,
    )
    db.add(batch)
    db.flush()
    record(db, actor, "certify.batch.create", f"batch:{batch.id}")
    return batch


def get_batch(db: Session, batch_id: int) -> Batch:
    batch = db.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"batch_id: no batch {batch_id}")
    return batch


def add_slot(db: Session, actor: Actor, batch_id: int, starts_at: datetime, capacity: int) -> int:
    batch = get_batch(db, batch_id)
    day = starts_at.date()
    if not batch.confirmation_starts <= day <= batch.confirmation_ends:
        raise InvalidInput("starts_at: outside the batch's on-site confirmation period")
    if capacity < 1:
        raise InvalidInput("capacity: at least 1")
    slot = ConfirmationSlot(batch_id=batch_id, starts_at=starts_at, capacity=capacity, booked=0)
    db.add(slot)
    db.flush()
    record(db, actor, "certify.slot.add", f"slot:{slot.id}", details={"capacity": capacity})
    return slot.id


def create_application(
    db: Session, actor: Actor, batch_id: int, applicant_id: int, qualification: str, subject: str
) -> Application:
    """A case for an applicant already on file (by id: the vault holds who they are)."""
    get_batch(db, batch_id)
    if db.get(Applicant, applicant_id) is None:
        raise NotFound(f"applicant_id: no applicant {applicant_id}")
    if qualification not in QUALIFICATIONS:
        raise InvalidInput(f"qualification: one of {', '.join(QUALIFICATIONS)}")
    if subject not in SUBJECTS:
        raise InvalidInput("subject: not a known subject code")
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
