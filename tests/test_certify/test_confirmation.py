"""On-site confirmation as a real step (二(二)): slots have a time on a working day of the
confirmation period and a place; attendance (who, when, where, national reference) is needed
before an approval and its signature; applications come in the registration window unless an
officer extends it with a reason (issue 16)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from audit.models import AuditEventRow
from certify.calendar_import import import_schedule
from certify.cases import (
    CHINA,
    SlotPlan,
    add_slot,
    create_application,
    extend_registration,
    record_attendance,
)
from certify.decisions import decide, sign_decisions
from certify.models import Attendance, Decision
from certify.workdays import package_covers, work_calendar
from common.errors import Conflict, InvalidInput
from test_certify.conftest import OFFICER, PLACE, PLAN, REGISTRAR, Body, confirm, late_ok

# 2020: 端午 holidays 06-25 to 06-27, Sunday 06-28 a working day.
DRAGON_BOAT = replace(
    PLAN,
    name="端午 batch",
    confirmation_starts=date(2020, 6, 22),
    confirmation_ends=date(2020, 7, 3),
)


def _at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), CHINA)


def test_slots_fall_on_working_days_of_the_period_and_name_a_place(body: Body) -> None:
    batch_id = body.batch(DRAGON_BOAT)
    with body.sessions.begin() as db:
        for day, message in (
            (date(2020, 6, 25), "2020-06-25 is not a working day"),
            (date(2020, 6, 27), "2020-06-27 is not a working day"),
            (date(2020, 7, 4), "outside the batch's on-site confirmation period"),
        ):
            with pytest.raises(InvalidInput, match=message):
                add_slot(db, OFFICER, batch_id, SlotPlan(_at(day), PLACE, 10))
        with pytest.raises(InvalidInput, match="place"):
            add_slot(db, OFFICER, batch_id, SlotPlan(_at(date(2020, 6, 24)), " ", 10))
        with pytest.raises(InvalidInput, match="time zone"):
            add_slot(db, OFFICER, batch_id, SlotPlan(datetime(2020, 6, 24, 9), PLACE, 10))
        assert add_slot(db, OFFICER, batch_id, SlotPlan(_at(date(2020, 6, 28)), PLACE, 10))


def test_approval_and_its_signature_need_attendance(body: Body) -> None:
    batch_id = body.batch()
    application_id = body.case(batch_id, 1, skip=("attendance",))
    with body.sessions.begin() as db, pytest.raises(Conflict, match="no recorded attendance"):
        decide(db, OFFICER, application_id, "approve", "all checks passed")

    with body.sessions.begin() as db:  # an approval written past `decide`
        db.add(
            Decision(application_id=application_id, outcome="approve", reasons="x", decided_by="o")
        )
        late_ok(db, application_id)
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert [r.rule for r in report.refused] == ["confirmation"]

    slot_time = _at(PLAN.confirmation_starts)
    with body.sessions.begin() as db:
        with pytest.raises(InvalidInput, match="outside the batch's on-site confirmation"):
            record_attendance(db, REGISTRAR, application_id, _at(date(2020, 7, 13)), "QR1")
        with pytest.raises(InvalidInput, match="national_reference"):
            record_attendance(db, REGISTRAR, application_id, slot_time, " ")
        record_attendance(db, REGISTRAR, application_id, slot_time, "QR1")
        with pytest.raises(Conflict, match="recorded already"):
            record_attendance(db, REGISTRAR, application_id, slot_time, "QR1")
        attendance = db.get_one(Attendance, application_id)
        assert (attendance.confirmed_by, attendance.place) == (REGISTRAR.username, PLACE)
    # The case is whole now, but that approval was written past `decide`: it stays unsigned.
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert report.signed == [] and [r.rule for r in report.refused] == ["as-recorded"]


def test_a_refusal_needs_no_attendance(body: Body) -> None:
    application_id = body.case(body.batch(), 2, skip=("attendance",))
    with body.sessions.begin() as db:
        decide(db, OFFICER, application_id, "refuse", "did not come to on-site confirmation")


def test_attendance_needs_a_booked_slot(body: Body) -> None:
    batch_id = body.batch()
    with body.sessions.begin() as db:
        application = create_application(
            db, REGISTRAR, batch_id, body.applicant(3), "SS", "02", filed_on=PLAN.registration_opens
        )
        with pytest.raises(Conflict, match="no confirmation slot booked"):
            record_attendance(db, REGISTRAR, application.id, _at(PLAN.confirmation_starts), "Q")
        confirm(db, application.id)


def test_registration_outside_its_window_is_refused_unless_an_officer_extends_it(
    body: Body,
) -> None:
    batch_id = body.batch()
    late = date(2026, 12, 2)
    first, second = body.applicant(4), body.applicant(5)
    with body.sessions.begin() as db:
        for day in (date(2020, 6, 7), date(2020, 7, 1), late):
            with pytest.raises(Conflict, match=r"registration window \(2020-06-08 to 2020-06-30\)"):
                create_application(db, REGISTRAR, batch_id, first, "SS", "02", filed_on=day)
    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="only an officer"):
            extend_registration(db, REGISTRAR, batch_id, late, "the centre asked for more days")
        with pytest.raises(InvalidInput, match="reason"):
            extend_registration(db, OFFICER, batch_id, late, "why not")
        with pytest.raises(InvalidInput, match="until: after registration closes"):
            extend_registration(db, OFFICER, batch_id, date(2020, 6, 30), "the centre asked")
        extend_registration(db, OFFICER, batch_id, late, "the provincial centre extended it")
        event = db.scalar(
            select(AuditEventRow).where(AuditEventRow.action == "certify.registration.extend")
        )
        assert event is not None and event.actor == OFFICER.username
    with body.sessions.begin() as db:
        create_application(db, REGISTRAR, batch_id, first, "SS", "02", filed_on=late)
        with pytest.raises(Conflict, match="registration window"):  # never before it opens
            create_application(
                db, REGISTRAR, batch_id, second, "SS", "02", filed_on=date(2020, 6, 1)
            )


HOLIDAYS = ("元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节")


def _cover(body: Body, years: set[int]) -> None:
    """A made-up schedule for years the calendar package does not cover yet (as a body would
    import the State Council's)."""
    with body.sessions.begin() as db:
        for year in sorted(y for y in years if not package_covers(y)):
            rows = [
                f"{year}-{n + 1:02d}-1{n},holiday,{name},test" for n, name in enumerate(HOLIDAYS)
            ]
            data = "\n".join(["date,kind,name,source", *rows]).encode()
            import_schedule(db, OFFICER, data)


def test_attendance_with_a_time_still_ahead_is_refused(body: Body) -> None:
    """A registrar cannot confirm an applicant before they came (SECURITY.md, formerly open)."""
    today = datetime.now(CHINA).date()
    _cover(body, {today.year - 1, today.year, today.year + 1})
    with body.sessions.begin() as db:
        calendar = work_calendar(db)
        past = next(
            today - timedelta(days=n)
            for n in range(1, 15)
            if calendar.is_workday(today - timedelta(days=n))
        )
        ahead = next(
            today + timedelta(days=n)
            for n in range(1, 15)
            if calendar.is_workday(today + timedelta(days=n))
        )
        closes = next(
            today + timedelta(days=n)
            for n in range(60, 75)
            if calendar.is_workday(today + timedelta(days=n))
        )
    plan = replace(
        PLAN,
        name="this month",
        registration_opens=past - timedelta(days=20),
        registration_closes=past,
        confirmation_starts=past - timedelta(days=14),
        confirmation_ends=ahead + timedelta(days=14),
        closes_on=closes,
    )
    batch_id = body.batch(plan)
    applicant_id = body.applicant(5)
    with body.sessions.begin() as db:
        for day in (past, ahead):
            add_slot(db, OFFICER, batch_id, SlotPlan(_at(day, 8), PLACE, 10))
        application = create_application(
            db, REGISTRAR, batch_id, applicant_id, "SS", "02", filed_on=past
        )
        confirm(db, application.id, attend=False)
        with pytest.raises(InvalidInput, match="confirmed_at: in the future"):
            record_attendance(db, REGISTRAR, application.id, _at(ahead), "QR-ahead")
        soon = datetime.now(UTC) + timedelta(minutes=10)
        with pytest.raises(InvalidInput, match="confirmed_at: in the future"):
            record_attendance(db, REGISTRAR, application.id, soon, "QR-ahead")
        assert db.get(Attendance, application.id) is None
        record_attendance(db, REGISTRAR, application.id, _at(past), "QR-past")
        assert db.get_one(Attendance, application.id).national_reference == "QR-past"
