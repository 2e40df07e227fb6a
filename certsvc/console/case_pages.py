"""Batches and cases at the desk: registrars and officers read batches with their deadlines in
working days and the cases with overdue ones highlighted (the R3 report's own list); officers
create batches and slots; registrars book slots, record attendance and checks; officers record
the criminal-record check and decide. Every action calls the domain function its API route
calls, through `actions.act` (same checks, same audit events)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from certify.cases import (
    BatchPlan,
    SlotPlan,
    add_slot,
    book_slot,
    create_batch,
    get_batch,
    record_attendance,
)
from certify.checks import (
    CRIMINAL_RECORD,
    RECORDER_ROLES,
    RESULTS,
    SOURCE_SYSTEMS,
    CheckOutcome,
    PoliceReference,
    history,
)
from certify.decisions import decide
from certify.models import Application, Batch, ConfirmationSlot
from certify.reports import overdue
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.console import web
from certsvc.console.actions import Action, day, draw, moment, number, post_form
from certsvc.console.models import ConsoleSession
from certsvc.routes.certify_batches import batch_out
from certsvc.routes.certify_cases import application_out, record_staff_check
from certsvc.routes.certify_common import china_today
from common.errors import InvalidInput

router = APIRouter(prefix="/console", include_in_schema=False)
DESK = (Role.REGISTRAR, Role.OFFICER)
OFFICER = (Role.OFFICER,)
REGISTRAR = (Role.REGISTRAR,)
BATCH_FIELDS = {
    "name": 64,
    "registration_opens": 10,
    "registration_closes": 10,
    "confirmation_starts": 10,
    "confirmation_ends": 10,
    "closes_on": 10,
}
SLOT_FIELDS = {"starts_at": 16, "place": 100, "capacity": 6}
BOOKING_FIELDS = {"slot_id": 12}
ATTENDANCE_FIELDS = {"confirmed_at": 16, "national_reference": 64}
CHECK_FIELDS = {
    "kind": 16,
    "result": 16,
    "source_system": 64,
    "reference": 64,
    "checked_at": 16,
    "value": 32,
    "police_unit": 100,
    "police_issued_on": 10,
}
DECISION_FIELDS = {"outcome": 8, "reasons": 500}


@router.get("/batches")
def batches_page(request: Request) -> Response:
    return draw(request, DESK, _batches)


def _batches(
    db: Session, row: ConsoleSession, account: StaffAccount, error: str | None = None
) -> Response:
    today = china_today()
    shown = [batch_out(db, b, today) for b in db.scalars(select(Batch).order_by(Batch.id.desc()))]
    return web.page(
        "desk_batches.html",
        422 if error else 200,
        account=account,
        csrf=row.csrf,
        batches=shown,
        error=error,
        officer=account.role is Role.OFFICER,
    )


@router.post("/batches")
async def post_batch(request: Request) -> Response:
    def create(db: Session, account: StaffAccount, form: Mapping[str, str]) -> object:
        plan = BatchPlan(
            name=form.get("name", "").strip(),
            body_code=state.settings(request).body_code,
            registration_opens=day(form, "registration_opens"),
            registration_closes=day(form, "registration_closes"),
            confirmation_starts=day(form, "confirmation_starts"),
            confirmation_ends=day(form, "confirmation_ends"),
            closes_on=day(form, "closes_on"),
        )
        if not plan.name:
            raise InvalidInput("name: give the batch a name")
        return create_batch(db, actor_of(account), plan)

    return await post_form(
        request,
        BATCH_FIELDS,
        OFFICER,
        create,
        "/console/batches",
        lambda error: draw(request, DESK, partial(_batches, error=error)),
    )


@router.get("/batches/{batch_id}")
def batch_page(request: Request, batch_id: int) -> Response:
    return draw(request, DESK, partial(_batch, request, batch_id, None))


def _batch(
    request: Request,
    batch_id: int,
    error: str | None,
    db: Session,
    row: ConsoleSession,
    account: StaffAccount,
) -> Response:
    today = china_today()
    batch = db.get(Batch, batch_id)
    if batch is None:
        return web.page("desk_missing.html", 404, account=account, csrf=row.csrf)
    slots = db.scalars(
        select(ConfirmationSlot)
        .where(ConfirmationSlot.batch_id == batch_id)
        .order_by(ConfirmationSlot.starts_at)
    ).all()
    late: dict[int, list[str]] = {}
    for case in overdue(db, today, batch_id):
        days = case.working_days_overdue
        late.setdefault(case.application_id, []).append(
            f"{case.deadline} {case.due.isoformat()}" + (f" +{days}" if days else "")
        )
    vault = state.vault(request)
    applications = db.scalars(
        select(Application).where(Application.batch_id == batch_id).order_by(Application.id)
    )
    return web.page(
        "desk_batch.html",
        422 if error else 200,
        account=account,
        csrf=row.csrf,
        batch=batch_out(db, batch, today),
        slots=slots,
        cases=[application_out(db, vault, a) for a in applications],
        late=late,
        error=error,
        officer=account.role is Role.OFFICER,
    )


@router.post("/batches/{batch_id}/slots")
async def post_slot(request: Request, batch_id: int) -> Response:
    def create(db: Session, account: StaffAccount, form: Mapping[str, str]) -> object:
        plan = SlotPlan(moment(form, "starts_at"), form.get("place", ""), number(form, "capacity"))
        return add_slot(db, actor_of(account), batch_id, plan)

    return await post_form(
        request,
        SLOT_FIELDS,
        OFFICER,
        create,
        f"/console/batches/{batch_id}",
        lambda error: draw(request, DESK, partial(_batch, request, batch_id, error)),
    )


@router.get("/cases/{application_id}")
def case_page(request: Request, application_id: int) -> Response:
    return draw(request, DESK, partial(_case, request, application_id, None))


def _case(
    request: Request,
    application_id: int,
    error: str | None,
    db: Session,
    row: ConsoleSession,
    account: StaffAccount,
) -> Response:
    application = db.get(Application, application_id)
    if application is None:
        return web.page("desk_missing.html", 404, account=account, csrf=row.csrf)
    slots = db.scalars(
        select(ConfirmationSlot)
        .where(ConfirmationSlot.batch_id == application.batch_id)
        .order_by(ConfirmationSlot.starts_at)
    ).all()
    kinds = [k for k in RESULTS if account.role.value in RECORDER_ROLES[k]]
    return web.page(
        "desk_case.html",
        422 if error else 200,
        account=account,
        csrf=row.csrf,
        case=application_out(db, state.vault(request), application),
        batch=get_batch(db, application.batch_id),
        slots=slots,
        history=history(db, application_id),
        kinds=kinds,
        results=RESULTS,
        systems=SOURCE_SYSTEMS,
        criminal=CRIMINAL_RECORD,
        error=error,
        role=account.role.value,
    )


async def _case_form(
    request: Request,
    application_id: int,
    limits: Mapping[str, int],
    roles: tuple[Role, ...],
    action: Action,
) -> Response:
    path = f"/console/cases/{application_id}"
    return await post_form(
        request,
        limits,
        roles,
        action,
        path,
        lambda error: draw(request, DESK, partial(_case, request, application_id, error)),
    )


@router.post("/cases/{application_id}/booking")
async def post_booking(request: Request, application_id: int) -> Response:
    def book(db: Session, account: StaffAccount, form: Mapping[str, str]) -> object:
        return book_slot(db, actor_of(account), application_id, number(form, "slot_id"))

    return await _case_form(request, application_id, BOOKING_FIELDS, REGISTRAR, book)


@router.post("/cases/{application_id}/attendance")
async def post_attendance(request: Request, application_id: int) -> Response:
    def attend(db: Session, account: StaffAccount, form: Mapping[str, str]) -> object:
        at = moment(form, "confirmed_at")
        reference = form.get("national_reference", "")
        return record_attendance(db, actor_of(account), application_id, at, reference)

    return await _case_form(request, application_id, ATTENDANCE_FIELDS, REGISTRAR, attend)


@router.post("/cases/{application_id}/checks")
async def post_check(request: Request, application_id: int) -> Response:
    def check(db: Session, account: StaffAccount, form: Mapping[str, str]) -> object:
        police = None
        if form.get("police_unit") or form.get("police_issued_on"):
            issued = day(form, "police_issued_on") if form.get("police_issued_on") else None
            police = PoliceReference(form.get("police_unit", ""), issued)
        outcome = CheckOutcome(
            form.get("kind", ""),
            form.get("result", ""),
            form.get("source_system", ""),
            form.get("reference", ""),
            moment(form, "checked_at"),
            form.get("value") or None,
            police,
        )
        return record_staff_check(db, account, application_id, outcome)

    return await _case_form(request, application_id, CHECK_FIELDS, DESK, check)


@router.post("/cases/{application_id}/decision")
async def post_decision(request: Request, application_id: int) -> Response:
    def decided(db: Session, account: StaffAccount, form: Mapping[str, str]) -> object:
        outcome, reasons = form.get("outcome", ""), form.get("reasons", "")
        return decide(db, actor_of(account), application_id, outcome, reasons)

    return await _case_form(request, application_id, DECISION_FIELDS, OFFICER, decided)
