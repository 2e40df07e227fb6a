"""Delivery notices, the batch announcement's allow-list, reports and working days left —
in process, on both databases where a database is involved."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from audit.models import AuditEventRow
from certify.announcements import findings
from certify.checks import CheckOutcome, record_check
from certify.decisions import decide, sign_decisions
from certify.delivery import DeliveryPlan, arrange_delivery, notice_text
from certify.issuance import issuable, issue
from certify.models import Announcement, Delivery
from certify.publication import ANNOUNCED_FIELDS, ConclusionRow, publish_conclusions
from certify.reports import overdue, stage_counts
from certify.workdays import WorkCalendar
from certsvc.db import make_writer_sessionmaker
from common.errors import Conflict, InvalidInput, NotFound
from test_certify.conftest import OFFICER, Body, late_ok

PICKUP = DeliveryPlan(
    "pickup",
    pickup_at=datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
    pickup_place="市政务服务中心教师资格窗口",
)
MAIL = DeliveryPlan("mail", tracking_number="EA123456789CN")


def test_notices_pass_the_checker() -> None:
    number = "20264100000000001"
    for plan in (PICKUP, MAIL):
        text = notice_text(number, plan)
        assert number in text and findings(text) == []
    assert "2026年12月1日 09:00" in notice_text(number, PICKUP)  # China time


def test_announcement_rows_carry_the_allow_list_only() -> None:
    assert tuple(f.name for f in dataclasses.fields(ConclusionRow)) == ANNOUNCED_FIELDS


def test_workdays_left_across_labour_day_and_an_adjusted_sunday() -> None:
    # 2020: 05-01..05-05 off; Sunday 04-26 and Saturday 05-09 are workdays.
    assert WorkCalendar().workdays_left(date(2020, 4, 30), date(2020, 5, 6)) == 1
    assert WorkCalendar().workdays_left(date(2020, 4, 25), date(2020, 4, 27)) == 2
    assert (
        WorkCalendar().workdays_left(date(2020, 5, 6), date(2020, 4, 30)) == -1
    )  # 05-01..05-05 off
    assert WorkCalendar().workdays_left(date(2020, 5, 6), date(2020, 5, 6)) == 0


def test_officer_records_only_the_criminal_record_check(body: Body) -> None:
    batch_id = body.batch()
    application = body.case(batch_id, 31, skip=("identity",))
    now = datetime.now(UTC)
    with body.sessions.begin() as db, pytest.raises(Conflict, match="identity"):
        record_check(db, OFFICER, application, CheckOutcome("identity", "match", "a", "b", now))


def test_delivery_announcement_and_reports(body: Body) -> None:
    batch_id = body.batch()
    approved, pending = body.case(batch_id, 21), body.case(batch_id, 22)
    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="no signed conclusion"):
            publish_conclusions(db, OFFICER, body.issuer.vault, batch_id)
        late_ok(db, approved)
        decide(db, OFFICER, approved, "approve", "all checks passed")
    with body.sessions() as db:
        assert stage_counts(db, batch_id)["decided"] == 1
        assert stage_counts(db, batch_id)["checking"] == 1
    body.open("decision-1")
    sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    with body.sessions() as db:
        assert issuable(db, batch_id) == [approved]
    body.open("certificate-1")
    number = issue(body.issuer, body.custodian, [approved], date(2020, 7, 20)).issued[0]

    with body.sessions.begin() as db:
        street = dataclasses.replace(PICKUP, pickup_place="花园路88号")
        with pytest.raises(InvalidInput, match="address"):
            arrange_delivery(db, OFFICER, number, street)
        with pytest.raises(InvalidInput, match="tracking_number"):
            arrange_delivery(db, OFFICER, number, DeliveryPlan("mail", tracking_number="a b"))
        with pytest.raises(InvalidInput, match="login_link"):
            arrange_delivery(
                db,
                OFFICER,
                number,
                dataclasses.replace(MAIL, note="见 https://cases.body.cn/x"),
                staff_hosts=("cases.body.cn",),
            )
        with pytest.raises(NotFound, match="number"):
            arrange_delivery(db, OFFICER, "20204100009999999", MAIL)
        assert db.scalar(select(func.count()).select_from(Delivery)) == 0
        arrange_delivery(db, OFFICER, number, MAIL)

        announcement = publish_conclusions(db, OFFICER, body.issuer.vault, batch_id)
        lines = announcement.text.splitlines()
        assert len(lines) == 4  # title, header, the one signed conclusion, the 公示 period
        assert lines[3].startswith("公示期：") and announcement.objections_until is not None
        masked, qualification, subject, result = lines[2].split("　")
        assert "*" in masked and qualification == "高级中学教师资格"
        assert (subject, result) == ("数学", "认定通过")
        assert db.scalar(select(func.count()).select_from(Announcement)) == 1

    with body.sessions() as db:
        stages = stage_counts(db, batch_id)
        assert (stages["delivered"], stages["checking"]) == (1, 1)
        late = overdue(db, date(2020, 8, 24), batch_id)
        # Only the undecided case (its on-site checks are complete), past the decision
        # deadline and the batch's closing date (both 08-20: the round closes before the 30th
        # working day after confirmation, 08-21).
        assert [(c.application_id, c.deadline, c.working_days_overdue) for c in late] == [
            (pending, "decision", 2),
            (pending, "close", 2),
        ]
        assert not any(c.overridden for c in late)


def test_two_clerks_recording_the_first_delivery_at_once_both_succeed(body: Body) -> None:
    batch_id = body.batch()
    approved = body.case(batch_id, 31)
    with body.sessions.begin() as db:
        late_ok(db, approved)
        decide(db, OFFICER, approved, "approve", "all checks passed")
    body.open("decision-1")
    sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    body.open("certificate-1")
    number = issue(body.issuer, body.custodian, [approved], date(2020, 7, 20)).issued[0]
    # As the HTTP route does it: each request in a writer session of its own.
    writers = make_writer_sessionmaker(body.sessions.kw["bind"])
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def clerk(plan: DeliveryPlan) -> None:
        try:
            with writers.begin() as db:
                start.wait(timeout=30)
                arrange_delivery(db, OFFICER, number, plan)
        except BaseException as exc:
            failures.append(exc)

    clerks = [threading.Thread(target=clerk, args=(plan,)) for plan in (PICKUP, MAIL)]
    for thread in clerks:
        thread.start()
    for thread in clerks:
        thread.join(timeout=60)
    assert failures == []
    with body.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Delivery)) == 1
        actions = db.scalars(
            select(AuditEventRow.action).where(AuditEventRow.action == "certify.delivery.arrange")
        )
        assert len(list(actions)) == 2
