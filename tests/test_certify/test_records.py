"""Records the notice asks for: the implementation plan filed with the provincial centre before
the batch's announcement (二(一)), and staff trained before they confirm cases (二(三))."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from audit.models import AuditEventRow
from certify.cases import (
    book_slot,
    create_application,
    file_plan,
    record_attendance,
    record_training,
)
from certify.models import ConfirmationSlot
from certify.publication import publish_text
from common.errors import Conflict, InvalidInput
from signer.actor import Actor
from test_certify.conftest import OFFICER, PLAN, REGISTRAR, Body

UNTRAINED = Actor("registrar-new", 0, "registrar")


def test_a_batch_announcement_needs_the_implementation_plan_filed(body: Body) -> None:
    batch_id = body.batch(plan_filed=False)
    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="implementation plan"):
            publish_text(db, OFFICER, batch_id, "现场确认安排另行通知。")
        publish_text(db, OFFICER, None, "一般通知：请关注官方网站。")  # not a batch's
        with pytest.raises(Conflict, match="only an officer"):
            file_plan(db, REGISTRAR, batch_id, date(2020, 5, 25), "豫教资〔2020〕12号")
        with pytest.raises(InvalidInput, match="reference"):
            file_plan(db, OFFICER, batch_id, date(2020, 5, 25), " ")
        file_plan(db, OFFICER, batch_id, date(2020, 5, 25), "豫教资〔2020〕12号")
        publish_text(db, OFFICER, batch_id, "现场确认安排另行通知。")
        event = db.scalar(select(AuditEventRow).where(AuditEventRow.action == "certify.plan.file"))
        assert event is not None


def test_only_staff_trained_for_the_batch_confirm_its_cases(body: Body) -> None:
    batch_id = body.batch()
    applicant_id = body.applicant(1)
    with body.sessions.begin() as db:
        application = create_application(
            db, REGISTRAR, batch_id, applicant_id, "SS", "02", filed_on=PLAN.registration_opens
        )
        slot = db.scalars(select(ConfirmationSlot).where(ConfirmationSlot.batch_id == batch_id))
        first = slot.one()
        book_slot(db, REGISTRAR, application.id, first.id)
        with pytest.raises(Conflict, match="not trained for this batch"):
            record_attendance(db, UNTRAINED, application.id, first.starts_at, "QR1")
        with pytest.raises(InvalidInput, match="trained_on: before on-site confirmation"):
            record_training(db, OFFICER, batch_id, UNTRAINED.username, date(2020, 7, 7))
        record_training(db, OFFICER, batch_id, UNTRAINED.username, date(2020, 7, 1))
        with pytest.raises(Conflict, match="already"):
            record_training(db, OFFICER, batch_id, UNTRAINED.username, date(2020, 7, 1))
        record_attendance(db, UNTRAINED, application.id, first.starts_at, "QR1")
