"""R3, the closing date: the effective decision deadline is the earlier of the 30th working day
after on-site confirmation and the batch's closing date (a working day, not before
confirmation ends); a deadline override needs a second officer, a category and an expiry,
and has its own report."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from certify.cases import create_batch
from certify.decisions import (
    OverrideRequest,
    approve_override,
    decide,
    override_deadline,
    sign_decisions,
)
from certify.models import Application
from certify.reports import overrides
from common.errors import Conflict, InvalidInput
from test_certify.conftest import OFFICER, OFFICER_2, PLAN, Body

LATER = date.today() + timedelta(days=30)


def test_the_notices_2020_dates_give_08_20(body: Body) -> None:
    """Confirmation ends Friday 07-10; its 30th working day after is 08-21, after the round's
    close ("在2020年8月20日前全部完成"): the case must be decided by 08-20."""
    with body.sessions.begin() as db:
        assert create_batch(db, OFFICER, PLAN).decision_deadline == date(2020, 8, 20)
        later = replace(PLAN, name="closing in the autumn", closes_on=date(2020, 12, 31))
        assert create_batch(db, OFFICER, later).decision_deadline == date(2020, 8, 21)


@pytest.mark.parametrize(
    ("closes_on", "message"),
    [
        (date(2020, 10, 1), "2020-10-01 is not a working day"),  # 国庆
        (date(2020, 8, 22), "2020-08-22 is not a working day"),  # a Saturday
        (date(2020, 7, 9), "before on-site confirmation ends"),
    ],
)
def test_a_closing_date_off_work_or_before_confirmation_ends_is_refused(
    body: Body, closes_on: date, message: str
) -> None:
    with body.sessions.begin() as db, pytest.raises(InvalidInput, match=message):
        create_batch(db, OFFICER, replace(PLAN, closes_on=closes_on))


def test_an_override_needs_a_category_an_expiry_and_a_second_officer(body: Body) -> None:
    batch_id = body.batch()
    application_id = body.case(batch_id, 1)
    request = OverrideRequest("the applicant's appeal was upheld", "appeal", LATER)
    with body.sessions.begin() as db:
        with pytest.raises(InvalidInput, match="category: one of appeal"):
            override_deadline(db, OFFICER, application_id, replace(request, category="whim"))
        with pytest.raises(
            InvalidInput, match=r"expires_on: after the deadline it overrides \(2020-08-20\)"
        ):
            override_deadline(
                db, OFFICER, application_id, replace(request, expires_on=date(2020, 8, 20))
            )
        with pytest.raises(Conflict, match="no deadline override was asked"):
            approve_override(db, OFFICER_2, application_id)
        override_deadline(db, OFFICER, application_id, request)
        decide(db, OFFICER, application_id, "approve", "all checks passed")
    body.open("decision-1")
    alone = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert [r.rule for r in alone.refused] == ["deadline"]
    assert "awaits a second officer" in alone.refused[0].message
    with body.sessions() as db:
        assert [(o.state, o.category) for o in overrides(db, date.today(), batch_id)] == [
            ("awaiting-approval", "appeal")
        ]

    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="not the one who asked"):
            approve_override(db, OFFICER, application_id)
        approve_override(db, OFFICER_2, application_id)
        with pytest.raises(Conflict, match="approved already"):
            approve_override(db, OFFICER_2, application_id)
        # Expired yesterday (written past `override_deadline`'s checks): no longer in force.
        db.get_one(Application, application_id).override_expires_on = date.today() - timedelta(1)
    expired = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert [r.rule for r in expired.refused] == ["deadline"]
    assert "expired" in expired.refused[0].message
    with body.sessions() as db:
        assert [o.state for o in overrides(db, date.today(), batch_id)] == ["expired"]

    with body.sessions.begin() as db:  # a new request replaces the old one and its approval
        override_deadline(db, OFFICER, application_id, request)
        assert db.get_one(Application, application_id).override_approved_by is None
        approve_override(db, OFFICER_2, application_id)
    signed = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert len(signed.signed) == 1 and signed.refused == []
    with body.sessions() as db:
        report = overrides(db, date.today(), batch_id)
        assert [(o.asked_by, o.approved_by, o.state) for o in report] == [
            (OFFICER.username, OFFICER_2.username, "in-force")
        ]
