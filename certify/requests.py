"""The register of applicants' objections, requests and complaints (四(二) "及时处理回应申请人
的合理诉求"): each is answered within a number of Chinese working days, and the officer's
report shows what is open and what is late. Summaries are short descriptions, never personal
values: they pass the announcement checker's personal-data kinds.

An objection is about a published conclusion: it is taken only during the objection period of
the 公示 that first listed the case's signed decision (`Announcement.objections_until`), and
until an officer answers it the case's documents are not signed — its certificate is not
issued. The notice asks conclusions to be published (二(二)3 "做好认定结论公布和证书发放工作")
and applicants' reasonable claims answered in time (四(二)); a certificate issued over an
unanswered objection is exactly the "纠正认定结论和收回证书困难" 二(二)1 warns of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.trail import record
from certify.announcements import findings
from certify.cases import CHINA, get_application, get_batch
from certify.models import Announcement, ApplicantRequest, Decision
from certify.workdays import work_calendar
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor

OBJECTION = "objection"
# Working days to answer each kind.
RESPONSE_WORKDAYS: dict[str, int] = {OBJECTION: 5, "request": 5, "complaint": 10}
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


def publicity_of(db: Session, application_id: int) -> Announcement | None:
    """The 公示 of the case's conclusion: the batch's first announcement of conclusions
    published after its decision was signed (None: not published yet)."""
    decision = db.scalar(select(Decision).where(Decision.application_id == application_id))
    if decision is None or decision.signed_at is None:
        return None
    batch_id = get_application(db, application_id).batch_id
    return db.scalars(
        select(Announcement)
        .where(
            Announcement.batch_id == batch_id,
            Announcement.objections_until.is_not(None),
            Announcement.published_at >= decision.signed_at,
        )
        .order_by(Announcement.id)
    ).first()


def _objection_period(
    db: Session, batch_id: int, application_id: int | None, received_on: date
) -> int:
    """The id of the 公示 an objection received on `received_on` is filed against; refused
    outside its objection period, naming the period."""
    if application_id is None:
        raise InvalidInput(
            "application_id: an objection names the case whose conclusion it disputes"
        )
    publicity = publicity_of(db, application_id)
    if publicity is None or publicity.objections_until is None:
        raise Conflict(
            f"application_id: the conclusion of application {application_id} is not published "
            f"yet; file a request instead"
        )
    opened = publicity.published_at.astimezone(CHINA).date()
    if not opened <= received_on <= publicity.objections_until:
        raise InvalidInput(
            f"received_on: outside the objection period of 公示 {publicity.id} "
            f"({opened.isoformat()} to {publicity.objections_until.isoformat()}); an objection "
            f"after it is refused, file a complaint instead"
        )
    if received_on > datetime.now(CHINA).date():
        raise InvalidInput("received_on: in the future")
    return publicity.id


def open_objection(db: Session, application_id: int) -> str | None:
    """Why the case's documents may not be signed for an unanswered objection (None: none)."""
    pending = db.scalars(
        select(ApplicantRequest)
        .where(
            ApplicantRequest.application_id == application_id,
            ApplicantRequest.kind == OBJECTION,
            ApplicantRequest.answered_on.is_(None),
        )
        .order_by(ApplicantRequest.id)
    ).first()
    if pending is None:
        return None
    return (
        f"objection {pending.id} to the 公示 of application {application_id} (received "
        f"{pending.received_on.isoformat()}) is not answered yet (四(二)); an officer answers it "
        f"first"
    )


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
    publicity = (
        _objection_period(db, batch_id, application_id, received_on) if kind == OBJECTION else None
    )
    due = work_calendar(db).add_workdays(received_on, RESPONSE_WORKDAYS[kind])
    row = ApplicantRequest(
        batch_id=batch_id,
        application_id=application_id,
        announcement_id=publicity,
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
