"""The case from intake to decision, certificate and revocation, on both databases; every gate
refused when its condition is missing."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from certify.checks import CRIMINAL_RECORD, history, record_check
from certify.decisions import (
    decide,
    decision_document_id,
    sign_decisions,
    signed_decisions,
)
from certify.issuance import (
    approve,
    issue,
    record_return,
    request_revocation,
    sign_revocations,
)
from certify.models import Certificate, Revocation
from common.errors import Conflict, InvalidInput
from signer.documents import signed_document
from test_certify.conftest import OFFICER, OFFICER_2, REGISTRAR, Body, late_ok, passed
from verify.models import PublicCertificate
from verify.payload import parse_qr_text

TODAY = date(2020, 7, 20)


def test_whole_flow(body: Body) -> None:
    batch_id = body.batch()
    approved = body.case(batch_id, 1)
    refused = body.case(batch_id, 2)
    with body.sessions.begin() as db:
        for application_id in (approved, refused):
            late_ok(db, application_id)
        decide(db, OFFICER, approved, "approve", "all checks passed")
        decide(db, OFFICER, refused, "refuse", "applicant withdrew")
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert sorted(report.signed) == sorted(decision_document_id(n) for n in (1, 2))
    with body.sessions() as db:
        assert len(signed_decisions(db, batch_id)) == 2
        assert signed_document(db, "decision", "DEC-1").cose

    body.open("certificate-1")
    issued = issue(body.issuer, body.custodian, [approved], TODAY)
    assert len(issued.issued) == 1
    number = issued.issued[0]
    assert len(number) == 17 and number.startswith("2020410000")
    again = issue(body.issuer, body.custodian, [approved], TODAY)
    assert again.issued == []  # idempotent: the certificate is already issued
    with body.sessions() as db:
        certificate = db.scalar(select(Certificate).where(Certificate.number == number))
        assert certificate is not None and certificate.qr_text
        public = db.get_one(PublicCertificate, certificate.verification_id)
        assert public.status == "valid" and "*" in public.masked_name
        assert parse_qr_text(certificate.qr_text)[0] == certificate.verification_id

    with body.sessions.begin() as db:
        revocation = request_revocation(db, OFFICER, number, "error", "conclusion corrected")
        approve(db, OFFICER, revocation.id, "checked the file")
    body.open("revocation-1")
    refused_report = sign_revocations(body.issuer, body.custodian, [revocation.id], TODAY)
    assert [r.rule for r in refused_report.refused] == ["dual-control"]
    with body.sessions.begin() as db:
        with pytest.raises(Conflict, match="not signed yet"):
            record_return(db, REGISTRAR, revocation.id, TODAY, "")
        approve(db, OFFICER_2, revocation.id, "second pair of eyes")
    sign_revocations(body.issuer, body.custodian, [revocation.id], TODAY)
    with body.sessions() as db:
        public = db.get_one(PublicCertificate, certificate.verification_id)
        assert public.status == "revoked" and public.revocation_category == "error"
    with body.sessions.begin() as db:  # the printed certificate comes back (收回证书, R10)
        with pytest.raises(InvalidInput, match="returned_on: before the revocation"):
            record_return(db, REGISTRAR, revocation.id, TODAY - timedelta(days=1), "")
        record_return(db, REGISTRAR, revocation.id, TODAY, "原件收回，存档案室")
        with pytest.raises(Conflict, match="recorded already"):
            record_return(db, REGISTRAR, revocation.id, TODAY, "")
        returned = db.get_one(Revocation, revocation.id)
        assert (returned.returned_on, returned.return_recorded_by) == (TODAY, "registrar")


def test_gates_refuse(body: Body) -> None:
    """R2 and R3 at decision and at signing time."""
    batch_id = body.batch()
    pending = body.case(batch_id, 3, skip=("criminal_record",))
    late = body.case(batch_id, 4)
    with body.sessions.begin() as db:
        with pytest.raises(InvalidInput, match="R2"):
            decide(db, OFFICER, pending, "approve", "ok")
        record_check(
            db,
            OFFICER,
            pending,
            replace(passed(CRIMINAL_RECORD), result="pending", reference="q-1"),
        )
        with pytest.raises(InvalidInput, match="R2"):
            decide(db, OFFICER, pending, "refuse", "no")
        assert len(history(db, pending)) == 6
        decide(db, OFFICER, late, "approve", "all checks passed")
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert [r.rule for r in report.refused] == ["deadline"]  # 2020's deadline has passed
    with body.sessions.begin() as db:
        late_ok(db, late, "late batch, approved by the director")
    assert sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id).signed
    body.open("certificate-1")
    with body.sessions.begin() as db:
        record_check(
            db,
            OFFICER,
            late,
            replace(passed(CRIMINAL_RECORD), result="record", reference="q-2"),
        )
    report_issue = issue(body.issuer, body.custodian, [late], TODAY)
    assert report_issue.issued == []
    assert report_issue.signing is not None
    assert [r.rule for r in report_issue.signing.refused] == ["criminal-record"]
