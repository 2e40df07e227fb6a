"""Publishing conclusions (R5, R8): a batch's announcement is built from an allow-list of
fields — masked name, qualification type, subject, result — of its signed decisions, and every
published text (generated or written by hand) passes the checker before it is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.trail import record
from certify.announcements import ensure_publishable
from certify.cases import CHINA, get_batch, plan_missing
from certify.decisions import APPROVE, live_clause
from certify.models import Announcement, Applicant, Application, Decision
from certify.workdays import work_calendar
from common.errors import Conflict, InvalidInput
from signer.actor import Actor
from vault.store import Vault
from verify.codes import QUALIFICATIONS, SUBJECTS

# The only fields a published conclusion shows (R8).
ANNOUNCED_FIELDS = ("masked_name", "qualification", "subject", "result")
RESULTS = {APPROVE: "认定通过", "refuse": "不予认定"}
PREFACE_MAX = 1000
# Working days a 公示 of conclusions takes objections when the service is not told otherwise
# (`CERTSVC_OBJECTION_WORKDAYS`): the notice names no length; five is the usual 公示 period.
OBJECTION_WORKDAYS = 5


@dataclass(frozen=True)
class ConclusionRow:
    masked_name: str
    qualification: str
    subject: str
    result: str


def conclusion_rows(db: Session, vault: Vault, batch_id: int) -> list[ConclusionRow]:
    """The allow-listed fields of each live signed decision of the batch (a corrected
    conclusion in place of the one it superseded), in decision order."""
    get_batch(db, batch_id)
    rows = db.execute(
        select(Decision.outcome, Application.qualification, Application.subject, Applicant)
        .join(Application, Application.id == Decision.application_id)
        .join(Applicant, Applicant.id == Application.applicant_id)
        .where(Application.batch_id == batch_id, Decision.signed_at.is_not(None), live_clause())
        .order_by(Decision.id)
    ).all()
    masked = vault.masked(db, [applicant.name_token for *_, applicant in rows])
    return [
        ConclusionRow(
            masked_name=masked[applicant.name_token][1],
            qualification=QUALIFICATIONS[qualification][0],
            subject=SUBJECTS[subject][0],
            result=RESULTS[outcome],
        )
        for outcome, qualification, subject, applicant in rows
    ]


def conclusions_text(batch_name: str, rows: list[ConclusionRow], preface: str = "") -> str:
    lines = [f"{batch_name} 教师资格认定结论公示"]
    if preface.strip():
        lines.append(preface.strip())
    lines.append("姓名　资格种类　任教学科　认定结论")
    lines += [f"{r.masked_name}　{r.qualification}　{r.subject}　{r.result}" for r in rows]
    return "\n".join(lines)


def publish_conclusions(
    db: Session,
    actor: Actor,
    vault: Vault,
    batch_id: int,
    preface: str = "",
    staff_hosts: tuple[str, ...] = (),
    contacts: tuple[str, ...] = (),
    objection_workdays: int = OBJECTION_WORKDAYS,
) -> Announcement:
    """Build, check and store the batch's list of conclusions, a 公示 open to objections for
    `objection_workdays` working days after the day it is published (see `certify.requests`)."""
    if not 1 <= objection_workdays <= 30:
        raise InvalidInput("objection_workdays: 1 to 30 working days")
    if len(preface) > PREFACE_MAX:
        raise InvalidInput(f"preface: at most {PREFACE_MAX} characters")
    batch = get_batch(db, batch_id)
    rows = conclusion_rows(db, vault, batch_id)
    if not rows:
        raise Conflict(f"batch_id: batch {batch_id} has no signed conclusion to announce")
    text = conclusions_text(batch.name, rows, preface)
    published_on = datetime.now(CHINA).date()
    until = work_calendar(db).add_workdays(published_on, objection_workdays)
    text += f"\n公示期：{published_on.isoformat()} 至 {until.isoformat()}，期间可提出异议。"
    return _store(db, actor, batch_id, text, staff_hosts, contacts, until)


def publish_text(
    db: Session,
    actor: Actor,
    batch_id: int | None,
    text: str,
    staff_hosts: tuple[str, ...] = (),
    contacts: tuple[str, ...] = (),
) -> Announcement:
    """A hand-written announcement, stored only if the checker passes it (the body's own
    `contacts` may appear in it)."""
    if batch_id is not None:
        get_batch(db, batch_id)
    if not text.strip():
        raise InvalidInput("text: empty")
    return _store(db, actor, batch_id, text.strip(), staff_hosts, contacts)


def _store(
    db: Session,
    actor: Actor,
    batch_id: int | None,
    text: str,
    staff_hosts: tuple[str, ...],
    contacts: tuple[str, ...],
    objections_until: date | None = None,
) -> Announcement:
    if batch_id is not None:
        unfiled = plan_missing(get_batch(db, batch_id))
        if unfiled is not None:
            raise Conflict(unfiled)
    ensure_publishable(text, staff_hosts, contacts)
    announcement = Announcement(
        batch_id=batch_id,
        text=text,
        published_by=actor.username,
        objections_until=objections_until,
    )
    db.add(announcement)
    db.flush()
    record(
        db,
        actor,
        "certify.announcement.publish",
        f"announcement:{announcement.id}",
        details={
            "batch": batch_id,
            "objections_until": objections_until.isoformat() if objections_until else None,
        },
    )
    return announcement


def announcements(db: Session, batch_id: int | None = None) -> list[Announcement]:
    query = select(Announcement).order_by(Announcement.id)
    if batch_id is not None:
        query = query.where(Announcement.batch_id == batch_id)
    return list(db.scalars(query))
