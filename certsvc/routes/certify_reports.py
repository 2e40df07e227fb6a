"""Case reports over HTTP (R3), for officers and security officers: counts per stage, the
cases overdue against each deadline in Chinese working days, and the deadline overrides."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from certify.cases import get_batch
from certify.reports import overdue, overrides, stage_counts
from certsvc.auth import SessionDep
from certsvc.routes.certify_common import ReportDep, china_today
from certsvc.routes.schemas import ROLE_GATED, answers

router = APIRouter(prefix="/api/v1/certify/reports", tags=["certify"], responses=ROLE_GATED)
BatchQuery = Annotated[int | None, Query(description="one batch; default: all")]


class StagesOut(BaseModel):
    batch_id: int | None
    total: int
    stages: dict[str, int]


class OverdueOut(BaseModel):
    application_id: int
    batch_id: int
    deadline: str = Field(description="confirmation, decision or close")
    due: date
    working_days_overdue: int | None = Field(description="null: more than three years late")
    stage: str
    overridden: bool = Field(description="an officer overrode the deadline (audited)")


class OverdueReportOut(BaseModel):
    today: date
    cases: list[OverdueOut]
    by_deadline: dict[str, int]


class OverrideOut(BaseModel):
    application_id: int
    batch_id: int
    asked_by: str
    category: str
    reason: str
    expires_on: date | None
    approved_by: str | None = Field(description="the second officer; null: not approved yet")
    state: str = Field(description="awaiting-approval, in-force or expired on `today`")


@router.get("/stages", responses=answers(404))
def get_stages(_: ReportDep, db: SessionDep, batch_id: BatchQuery = None) -> StagesOut:
    """How many cases are at each stage."""
    if batch_id is not None:
        get_batch(db, batch_id)
    stages = stage_counts(db, batch_id)
    return StagesOut(batch_id=batch_id, total=sum(stages.values()), stages=stages)


@router.get("/overdue", responses=answers(404))
def get_overdue(
    _: ReportDep,
    db: SessionDep,
    batch_id: BatchQuery = None,
    today: Annotated[date | None, Query(description="default: today in China")] = None,
) -> OverdueReportOut:
    """Cases past their confirmation, decision or closing deadline on `today`."""
    if batch_id is not None:
        get_batch(db, batch_id)
    day = today or china_today()
    cases = overdue(db, day, batch_id)
    counts: dict[str, int] = {"confirmation": 0, "decision": 0, "close": 0}
    for case in cases:
        counts[case.deadline] += 1
    return OverdueReportOut(
        today=day,
        cases=[
            OverdueOut(
                application_id=c.application_id,
                batch_id=c.batch_id,
                deadline=c.deadline,
                due=c.due,
                working_days_overdue=c.working_days_overdue,
                stage=c.stage,
                overridden=c.overridden,
            )
            for c in cases
        ],
        by_deadline=counts,
    )


@router.get("/overrides", responses=answers(404))
def get_overrides(
    _: ReportDep,
    db: SessionDep,
    batch_id: BatchQuery = None,
    today: Annotated[date | None, Query(description="default: today in China")] = None,
) -> list[OverrideOut]:
    """Every deadline override: who asked and approved it, its category, reason and expiry."""
    if batch_id is not None:
        get_batch(db, batch_id)
    return [
        OverrideOut(
            application_id=o.application_id,
            batch_id=o.batch_id,
            asked_by=o.asked_by,
            category=o.category,
            reason=o.reason,
            expires_on=o.expires_on,
            approved_by=o.approved_by,
            state=o.state,
        )
        for o in overrides(db, today or china_today(), batch_id)
    ]
