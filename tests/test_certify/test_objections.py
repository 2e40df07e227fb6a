"""The 公示's objection period (二(二)3, 四(二)): a published conclusion takes objections for a
configured number of working days; an objection goes into the requests register due in working
days, holds the case's certificate until an officer answers it, and shows in the report; one
filed before the 公示 or after its period is refused."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from certify.cases import CHINA
from certify.decisions import decide, sign_decisions
from certify.issuance import issue
from certify.publication import publish_conclusions
from certify.reports import open_objections
from certify.requests import answer_request, record_request
from certify.workdays import work_calendar
from common.errors import Conflict, InvalidInput
from test_certify.conftest import OFFICER, REGISTRAR, Body, late_ok

TODAY = date(2020, 7, 20)


def test_an_objection_in_the_period_holds_the_certificate_until_answered(body: Body) -> None:
    batch_id = body.batch()
    application_id = body.case(batch_id, 1)
    with body.sessions.begin() as db:
        late_ok(db, application_id)
        decide(db, OFFICER, application_id, "approve", "all checks passed")
    body.open("decision-1")
    sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    today = datetime.now(CHINA).date()
    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="is not published yet"):
            record_request(
                db, REGISTRAR, batch_id, application_id, "objection", "对结论有异议", today
            )
        with pytest.raises(InvalidInput, match="objection_workdays"):
            publish_conclusions(db, OFFICER, body.issuer.vault, batch_id, objection_workdays=0)
        publicity = publish_conclusions(
            db, OFFICER, body.issuer.vault, batch_id, objection_workdays=7
        )
        until = work_calendar(db).add_workdays(today, 7)
        assert publicity.objections_until == until
        assert f"公示期：{today.isoformat()} 至 {until.isoformat()}" in publicity.text
        after = work_calendar(db).add_workdays(until, 1)
        with pytest.raises(InvalidInput, match="received_on: outside the objection period"):
            record_request(
                db, REGISTRAR, batch_id, application_id, "objection", "对结论有异议", after
            )
        with pytest.raises(InvalidInput, match="application_id: an objection names the case"):
            record_request(db, REGISTRAR, batch_id, None, "objection", "对结论有异议", today)
        objection = record_request(
            db, REGISTRAR, batch_id, application_id, "objection", "对结论有异议：学科不符", today
        )
        assert objection.announcement_id == publicity.id
        assert objection.due_on == work_calendar(db).add_workdays(today, 5)
        objection_id, due = objection.id, objection.due_on
    with body.sessions() as db:
        assert [(r.request.id, r.state) for r in open_objections(db, today, batch_id)] == [
            (objection_id, "open")
        ]
        late = work_calendar(db).add_workdays(due, 1)
        assert [r.state for r in open_objections(db, late, batch_id)] == ["late"]

    body.open("certificate-1")
    held = issue(body.issuer, body.custodian, [application_id], TODAY)
    assert held.issued == [] and held.signing is not None
    assert [r.rule for r in held.signing.refused] == ["objection"]
    assert f"objection {objection_id}" in held.signing.refused[0].message

    with body.sessions.begin() as db:
        answer_request(db, OFFICER, objection_id, "已复核，学科与报考一致，维持结论", today)
    with body.sessions() as db:
        assert open_objections(db, today, batch_id) == []
    assert len(issue(body.issuer, body.custodian, [application_id], TODAY).issued) == 1
