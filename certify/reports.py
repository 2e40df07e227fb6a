"""Reports (R3): counts of cases per stage, and the cases overdue against each of their
batch's deadlines, counted in Chinese working days.

Deadlines, each a date that holds the whole day:

- `confirmation` (the batch's on-site confirmation end): a case without a decision that still
  lacks an attempt at one of the on-site checks;
- `decision` (the 30th working day after confirmation ends): a case without a signed decision;
- `close` (the batch's closing date): a case without a signed decision, or a signed approval
  whose certificate is not issued.

An officer's deadline override does not take a case off the list; it is shown beside it.
Objections to a 公示 still unanswered (`open_objections`) hold the case's signatures: they are
listed open or late against their own due day.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from certify.decisions import APPROVE, live_clause
from certify.models import (
    Application,
    Batch,
    CaseCheck,
    Certificate,
    Decision,
    Delivery,
)
from certify.requests import OBJECTION, RequestRow, requests_report
from certify.workdays import MAX_SPAN_DAYS, work_calendar

STAGES = (
    "applied",  # no appointment yet
    "booked",  # appointment, no check recorded
    "checking",  # checks recorded, no decision
    "decided",  # decision not signed yet
    "refused",  # signed refusal
    "approved",  # signed approval, certificate not issued yet
    "issued",  # certificate issued, delivery not arranged
    "delivered",  # delivery arranged
    "revoked",  # certificate revoked
)
ON_SITE_CHECKS = ("identity", "degree", "mandarin", "exam", "physical")
DEADLINES = ("confirmation", "decision", "close")


@dataclass(frozen=True)
class _Case:
    application: Application
    batch: Batch
    kinds: frozenset[str]
    decision: Decision | None
    certificates: tuple[str, ...]
    delivered: bool

    @property
    def signed(self) -> bool:
        return self.decision is not None and self.decision.signed_at is not None

    @property
    def stage(self) -> str:
        if "revoked" in self.certificates and "issued" not in self.certificates:
            return "revoked"
        if "issued" in self.certificates:
            return "delivered" if self.delivered else "issued"
        if self.decision is not None and self.signed:
            return "approved" if self.decision.outcome == APPROVE else "refused"
        if self.decision is not None:
            return "decided"
        if self.kinds:
            return "checking"
        return "booked" if self.application.slot_id is not None else "applied"

    def late_against(self) -> list[tuple[str, date]]:
        late: list[tuple[str, date]] = []
        if self.decision is None and any(k not in self.kinds for k in ON_SITE_CHECKS):
            late.append(("confirmation", self.batch.confirmation_ends))
        if not self.signed:
            late.append(("decision", self.batch.decision_deadline))
        approved = self.signed and self.decision is not None and self.decision.outcome == APPROVE
        issued = {"issued", "revoked"} & set(self.certificates)
        if not self.signed or (approved and not issued):
            late.append(("close", self.batch.closes_on))
        return late


@dataclass(frozen=True)
class OverdueCase:
    application_id: int
    batch_id: int
    deadline: str
    due: date
    working_days_overdue: int | None  # None: more than three years late
    stage: str
    overridden: bool


def _cases(db: Session, batch_id: int | None) -> list[_Case]:
    query = select(Application, Batch).join(Batch, Batch.id == Application.batch_id)
    if batch_id is not None:
        query = query.where(Application.batch_id == batch_id)
    pairs = db.execute(query.order_by(Application.id)).all()
    ids = [application.id for application, _ in pairs]
    kinds: dict[int, set[str]] = {}
    decisions: dict[int, Decision] = {}
    certificates: dict[int, list[str]] = {}
    delivered: set[int] = set()
    for chunk in (ids[n : n + 500] for n in range(0, len(ids), 500)):
        for application_id, kind in db.execute(
            select(CaseCheck.application_id, CaseCheck.kind)
            .where(CaseCheck.application_id.in_(chunk))
            .distinct()
        ):
            kinds.setdefault(application_id, set()).add(kind)
        for decision in db.scalars(
            select(Decision).where(Decision.application_id.in_(chunk), live_clause())
        ):
            decisions[decision.application_id] = decision
        for application_id, status, has_delivery in db.execute(
            select(Certificate.application_id, Certificate.status, Delivery.certificate_id)
            .outerjoin(Delivery, Delivery.certificate_id == Certificate.id)
            .where(Certificate.application_id.in_(chunk))
        ):
            certificates.setdefault(application_id, []).append(status)
            if has_delivery is not None and status == "issued":
                delivered.add(application_id)
    return [
        _Case(
            application=application,
            batch=batch,
            kinds=frozenset(kinds.get(application.id, ())),
            decision=decisions.get(application.id),
            certificates=tuple(certificates.get(application.id, ())),
            delivered=application.id in delivered,
        )
        for application, batch in pairs
    ]


def stage_counts(db: Session, batch_id: int | None = None) -> dict[str, int]:
    """Cases per stage (every stage named, zero included)."""
    counted = Counter(case.stage for case in _cases(db, batch_id))
    return {stage: counted.get(stage, 0) for stage in STAGES}


def overdue(db: Session, today: date, batch_id: int | None = None) -> list[OverdueCase]:
    """Cases past a deadline on `today`, by deadline then case."""
    late_days: dict[date, int | None] = {}
    found: list[OverdueCase] = []
    calendar = work_calendar(db)
    for case in _cases(db, batch_id):
        for deadline, due in case.late_against():
            if today <= due:
                continue
            if due not in late_days:
                late_days[due] = None
                if (today - due).days <= MAX_SPAN_DAYS:
                    late_days[due] = calendar.workdays_between(due + timedelta(days=1), today)
            found.append(
                OverdueCase(
                    application_id=case.application.id,
                    batch_id=case.batch.id,
                    deadline=deadline,
                    due=due,
                    working_days_overdue=late_days[due],
                    stage=case.stage,
                    overridden=case.application.override_by is not None,
                )
            )
    found.sort(key=lambda c: (DEADLINES.index(c.deadline), c.application_id))
    return found


@dataclass(frozen=True)
class OverrideRow:
    application_id: int
    batch_id: int
    asked_by: str
    category: str
    reason: str
    expires_on: date | None
    approved_by: str | None
    state: str  # awaiting-approval, in-force or expired


def overrides(db: Session, today: date, batch_id: int | None = None) -> list[OverrideRow]:
    """Every deadline override asked (R3), with who asked and approved it, why, and whether it
    is in force on `today`."""
    query = select(Application).where(Application.override_by.is_not(None))
    if batch_id is not None:
        query = query.where(Application.batch_id == batch_id)
    rows: list[OverrideRow] = []
    for application in db.scalars(query.order_by(Application.id)):
        expires = application.override_expires_on
        if application.override_approved_by is None:
            state = "awaiting-approval"
        elif expires is None or today > expires:
            state = "expired"
        else:
            state = "in-force"
        rows.append(
            OverrideRow(
                application_id=application.id,
                batch_id=application.batch_id,
                asked_by=application.override_by or "",
                category=application.override_category or "other",
                reason=application.override_reason or "",
                expires_on=expires,
                approved_by=application.override_approved_by,
                state=state,
            )
        )
    return rows


def open_objections(db: Session, today: date, batch_id: int | None = None) -> list[RequestRow]:
    """Objections not answered on `today`: open, or late (past their due day)."""
    return [
        row
        for row in requests_report(db, today, batch_id)
        if row.request.kind == OBJECTION and row.state in ("open", "late")
    ]
