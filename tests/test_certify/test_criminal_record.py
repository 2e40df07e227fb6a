"""R2: the criminal-record check is recorded by an officer with the police's structured
reference; a result that is not clear is replaced only with a second officer's approval, and
neither a conclusion nor its signature goes through before it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from audit.models import AuditEventRow
from certify.checks import (
    CRIMINAL_RECORD,
    PoliceReference,
    approve_replacement,
    history,
    record_check,
)
from certify.decisions import decide, sign_decisions
from certify.models import Decision
from common.errors import Conflict, InvalidInput
from test_certify.conftest import OFFICER, OFFICER_2, REGISTRAR, Body, late_ok, passed

REASON = "police corrected their answer in writing"


def test_only_an_officer_records_it_from_the_police_with_a_reference(body: Body) -> None:
    application_id = body.case(body.batch(), 1, skip=(CRIMINAL_RECORD,))
    clear = passed(CRIMINAL_RECORD)
    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="registrar may not"):
            record_check(db, REGISTRAR, application_id, clear)
        with pytest.raises(InvalidInput, match="source_system: for criminal_record, one of gongan"):
            record_check(db, OFFICER, application_id, replace(clear, source_system="x"))
        with pytest.raises(InvalidInput, match="police_unit"):
            record_check(db, OFFICER, application_id, replace(clear, police=None))
        with pytest.raises(InvalidInput, match="police_issued_on: the date"):
            record_check(
                db, OFFICER, application_id, replace(clear, police=PoliceReference("某分局", None))
            )
        record_check(
            db,
            OFFICER,
            application_id,
            replace(clear, result="pending", police=PoliceReference("某分局", None)),
        )
        record_check(db, OFFICER, application_id, clear)
        rows = [c for c in history(db, application_id) if c.kind == CRIMINAL_RECORD]
        assert [c.result for c in rows] == ["pending", "clear"]
        assert (
            rows[1].police_unit == "郑州市公安局金水分局" and rows[1].police_issued_on is not None
        )
        assert rows[1].replaces_result is None  # pending → clear is the ordinary course


def test_replacing_a_record_needs_a_second_officer_before_any_conclusion_or_signature(
    body: Body,
) -> None:
    batch_id = body.batch()
    application_id = body.case(batch_id, 2, skip=(CRIMINAL_RECORD,))
    with body.sessions.begin() as db:
        record_check(db, OFFICER, application_id, replace(passed(CRIMINAL_RECORD), result="record"))
        record_check(db, OFFICER, application_id, passed(CRIMINAL_RECORD))
        # Another attempt does not wash the replaced result out: it awaits approval too.
        attempt = record_check(db, OFFICER_2, application_id, passed(CRIMINAL_RECORD))
        rows = [c for c in history(db, application_id) if c.kind == CRIMINAL_RECORD]
        assert [(c.result, c.replaces_result) for c in rows] == [
            ("record", None),
            ("clear", "record"),
            ("clear", "record"),
        ]
    with body.sessions.begin() as db, pytest.raises(Conflict, match="second officer"):
        decide(db, OFFICER, application_id, "approve", "all checks passed")

    with body.sessions.begin() as db:  # an approval written past `decide`
        db.add(
            Decision(application_id=application_id, outcome="approve", reasons="x", decided_by="o")
        )
        late_ok(db, application_id)
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert [r.rule for r in report.refused] == ["criminal-record"]
    assert "without a second officer's approval" in report.refused[0].message

    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="second officer approves, not the one"):
            approve_replacement(db, OFFICER_2, application_id, attempt, REASON)
        with pytest.raises(InvalidInput, match="reason"):
            approve_replacement(db, OFFICER, application_id, attempt, "ok")
        with pytest.raises(Conflict, match="replaced no result"):
            approve_replacement(db, OFFICER, application_id, attempt - 2, REASON)
        approve_replacement(db, OFFICER, application_id, attempt, REASON)
        with pytest.raises(Conflict, match="approved already"):
            approve_replacement(db, OFFICER, application_id, attempt, REASON)
        event = db.scalar(
            select(AuditEventRow).where(AuditEventRow.action == "certify.check.approve_replacement")
        )
        assert event is not None and event.actor == OFFICER.username
    # The case is whole now, but that approval was written past `decide`: it stays unsigned.
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert report.signed == [] and [r.rule for r in report.refused] == ["as-recorded"]
