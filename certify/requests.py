"""The register of applicants' objections, requests and complaints (四(二) "及时处理回应申请人
的合理诉求"): each is answered within a number of Chinese working days, and the officer's
report shows what is open and what is late. Summaries are short descriptions, never personal
values: they pass the announcement checker's personal-data kinds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.trail import record
from certify.announcements import findings
from certify.cases import get_application, get_batch
from certify.models import ApplicantRequest
from certify.workdays import work_calendar
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor

# Working days to answer each kind.
RESPONSE_WORKDAYS: dict[str, int] = {"objection": 5, "request": 5, "complaint": 10}
TEXT_MAX = 500
PERSONAL = frozenset({"id_number", "phone", "email", "address", "birth_date", "im_handle"})


@dataclass(frozen=True)
class RequestRow:
    request: ApplicantRequest
    state: str  # open, late, answered, answered-late


def _checked(field: str, text: str) -> str:
    text = text.strip()
    if not text or len(text) > TEXT_MAX:
        raise InvalidInput(f"{field}: a short description, at most {TEXT_MAX} characters")
    personal = [kind for kind in findings(text) if kind in PERSONAL]
    if personal:
        raise InvalidInput(f"{field}: no personal values here, found: {', '.join(personal)}")
    return text


def record_request(
    db: Session,
    actor: Actor,
    batch_id: int,
    application_id: int | None,
    kind: str,
    summary: str,
    received_on: date,
) -> ApplicantRequest:
    """File an objection, request or complaint with its due date in working days. Audited."""
    if kind not in RESPONSE_WORKDAYS:
        raise InvalidInput(f"kind: one of {', '.join(RESPONSE_WORKDAYS)}")
    get_batch(db, batch_id)
    if application_id is not None and get_application(db, application_id).batch_id != batch_id:
        raise InvalidInput(f"application_id: application {application_id} is not in the batch")
    text = _checked("summary", summary)
    due = work_calendar(db).add_workdays(received_on, RESPONSE_WORKDAYS[kind])
    row = ApplicantRequest(
        batch_id=batch_id,
        application_id=application_id,
        kind=kind,
        summary=text,
        received_on=received_on,
        due_on=due,
        recorded_by=actor.username,
    )
    db.add(row)
    db.flush()
    record(db, actor, "certify.request.record", f"request:{row.id}", details={"kind": kind})
    return row


def answer_request(
    db: Session, actor: Actor, request_id: int, answer: str, answered_on: date
) -> ApplicantRequest:
    """An officer's answer, once. Audited."""
    if actor.role != "officer":
        raise Conflict("only an officer answers an applicant's request")
    row = db.get(ApplicantRequest, request_id, with_for_update=True)
    if row is None:
        raise NotFound(f"request_id: no request {request_id}")
    if row.answered_on is not None:
        raise Conflict(f"request {request_id} is answered already")
    if answered_on < row.received_on:
        raise InvalidInput("answered_on: before the request was received")
    row.answer, row.answered_on, row.answered_by = (
        _checked("answer", answer),
        answered_on,
        actor.username,
    )
    record(db, actor, "certify.request.answer", f"request:{request_id}")
    return row


def requests_report(db: Session, today: date, batch_id: int | None = None) -> list[RequestRow]:
    """Every request with its state on `today`: open, late, answered or answered late."""
    query = select(ApplicantRequest).order_by(ApplicantRequest.id)
    if batch_id is not None:
        query = query.where(ApplicantRequest.batch_id == batch_id)
    rows = []
    for row in db.scalars(query):
        if row.answered_on is None:
            state = "late" if today > row.due_on else "open"
        else:
            state = "answered-late" if row.answered_on > row.due_on else "answered"
        rows.append(RequestRow(row, state))
    return rows
