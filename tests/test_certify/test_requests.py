"""The register of applicants' objections, requests and complaints (四(二)): due in Chinese
working days, answered once by an officer, late ones shown in the report; no personal value
in what is written down."""

from __future__ import annotations

from datetime import date

import pytest

from certify.requests import answer_request, record_request, requests_report
from common.errors import Conflict, InvalidInput
from test_certify.conftest import OFFICER, REGISTRAR, Body


def test_requests_are_due_in_working_days_and_reported_when_late(body: Body) -> None:
    batch_id = body.batch()
    application_id = body.case(batch_id, 1)
    with body.sessions.begin() as db:
        with pytest.raises(InvalidInput, match="summary: no personal values here, found: phone"):
            record_request(
                db, REGISTRAR, batch_id, None, "request", "请回电 13812345678", date(2020, 9, 30)
            )
        with pytest.raises(InvalidInput, match="kind: one of"):
            record_request(db, REGISTRAR, batch_id, None, "wish", "结论何时公布", date(2020, 9, 30))
        # National Day: 10-01 to 10-08 off, Saturday 10-10 a working day.
        objection = record_request(
            db,
            REGISTRAR,
            batch_id,
            application_id,
            "request",
            "询问认定结论的复核方式",
            date(2020, 9, 30),
        )
        assert objection.due_on == date(2020, 10, 14)
        question = record_request(
            db, REGISTRAR, batch_id, None, "request", "询问证书领取方式", date(2020, 9, 30)
        )
        objection_id, question_id = objection.id, question.id
    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="only an officer"):
            answer_request(db, REGISTRAR, objection_id, "已复核，结论无误", date(2020, 10, 9))
        with pytest.raises(InvalidInput, match="answer: no personal values"):
            answer_request(db, OFFICER, objection_id, "已电话 13812345678 告知", date(2020, 10, 9))
        answer_request(db, OFFICER, objection_id, "已复核，结论无误", date(2020, 10, 9))
        with pytest.raises(Conflict, match="answered already"):
            answer_request(db, OFFICER, objection_id, "再次答复", date(2020, 10, 9))
    with body.sessions() as db:
        states = {r.request.id: r.state for r in requests_report(db, date(2020, 10, 15), batch_id)}
        assert states == {objection_id: "answered", question_id: "late"}
        states = {r.request.id: r.state for r in requests_report(db, date(2020, 10, 14))}
        assert states[question_id] == "open"
