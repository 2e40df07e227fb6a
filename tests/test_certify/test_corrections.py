"""Corrections of conclusions (R10, 纠正认定结论) on a real round, SQLite and PostgreSQL: a
corrected conclusion is a new signed decision superseding the old one (both kept, linked);
approval → refusal revokes the certificate under dual control; a corrected reissue names the
certificate it replaces; the officer who filed a correction cannot approve it; a database
administrator who flips the superseded mark or the link is named by reconcile."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, update

from certify.corrections import approve_correction, correct, superseding
from certify.decisions import decide, live_decision, sign_decisions
from certify.issuance import approve, issuable, issue, sign_revocations
from certify.models import Certificate, Decision
from certify.records import certificate_document
from certsvc.reconcile import reconcile
from certsvc.settings import Settings
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput
from signer.actor import Actor
from signer.documents import signed_document
from test_certify.conftest import OFFICER, OFFICER_2, REGISTRAR, Body, late_ok
from verify.models import PublicCertificate

TODAY = date(2020, 7, 20)
LATER = date(2020, 8, 3)
WHY = "the degree certificate was found forged after the conclusion"


def _findings(body: Body, settings: Settings) -> list[str]:
    with body.sessions() as db:
        return [str(f) for f in reconcile(db, settings.pinned_anchors())]


def _signed_case(body: Body, outcome: str = "approve") -> tuple[int, int, int]:
    """A case decided by OFFICER and signed: (batch id, application id, decision id)."""
    batch_id = body.batch()
    application_id = body.case(batch_id, 41)
    with body.sessions.begin() as db:
        late_ok(db, application_id)
        decision_id = decide(db, OFFICER, application_id, outcome, "as the checks found").id
    body.open("decision-1")
    assert sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id).signed
    return batch_id, application_id, decision_id


def test_approval_corrected_into_refusal_revokes_and_back_reissues(
    body: Body, settings: Settings
) -> None:
    batch_id, application_id, first = _signed_case(body)
    body.open("certificate-1")
    (number,) = issue(body.issuer, body.custodian, [application_id], TODAY).issued

    with body.sessions.begin() as db:
        refusal = correct(db, OFFICER, first, "refuse", "degree forged", WHY).id
        assert live_decision(db, application_id).id == refusal  # type: ignore[union-attr]
        old = db.get_one(Decision, first)
        assert old.superseded_at is not None and old.outcome == "approve"  # kept, not edited
    with body.sessions.begin() as db, pytest.raises(Conflict, match="is superseded"):
        correct(db, OFFICER_2, first, "approve", "again", "correcting the old one again")
    with pytest.raises(Conflict, match="no signed approval"):
        issue(body.issuer, body.custodian, [application_id], TODAY)

    # Signed like any decision, once a second officer approved it.
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert [(r.document_id, r.rule) for r in report.refused] == [(f"DEC-{refusal}", "correction")]
    with body.sessions.begin() as db:
        revocation = approve_correction(db, OFFICER_2, refusal)
        assert revocation is not None and revocation.category == "error"
        assert f"decision {first} corrected by decision {refusal}" in revocation.reason
        # Filed, not applied: the certificate stands until two officers approve and it is signed.
        assert db.scalar(select(Certificate.status).where(Certificate.number == number)) == (
            "issued"
        )
        revocation_id = revocation.id
    assert sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id).signed == [
        f"DEC-{refusal}"
    ]
    with body.sessions.begin() as db:
        content = signed_document(db, "decision", f"DEC-{refusal}")
        assert content.payload_sha256
        assert superseding(db, "decision", f"DEC-{first}") == f"DEC-{refusal}"
        assert superseding(db, "decision", f"DEC-{refusal}") is None
        approve(db, OFFICER, revocation_id, "the correction stands")
        approve(db, OFFICER_2, revocation_id, "checked the correction")
    body.open("revocation-1")
    sign_revocations(body.issuer, body.custodian, [revocation_id], TODAY)
    with body.sessions() as db:
        certificate = db.scalar(select(Certificate).where(Certificate.number == number))
        assert certificate is not None and certificate.status == "revoked"
        row = db.get_one(PublicCertificate, certificate.verification_id)
        assert (row.status, row.revocation_category) == ("revoked", "error")
        assert issuable(db, batch_id) == []
    assert _findings(body, settings) == []

    # Refusal → approval again: a corrected reissue that names the certificate it replaces.
    with body.sessions.begin() as db:
        approval = correct(db, OFFICER_2, refusal, "approve", "degree confirmed", WHY[:40]).id
        assert approve_correction(db, OFFICER, approval) is None
    body.open("decision-1")
    sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    with body.sessions() as db:
        assert issuable(db, batch_id) == [application_id]
    body.open("certificate-1")
    (reissued,) = issue(body.issuer, body.custodian, [application_id], LATER).issued
    assert reissued != number
    with body.sessions() as db:
        new = db.scalar(select(Certificate).where(Certificate.number == reissued))
        assert new is not None and new.replaces == number and new.decision_id == approval
        assert certificate_document(db, new).content["replaces"] == number  # signed
        assert issuable(db, batch_id) == []
    assert _findings(body, settings) == []


def test_a_refusal_reached_through_a_withdrawn_correction_still_revokes_once(body: Body) -> None:
    """approve → refuse (not approved, replaced by another refusal) → approved: the issued
    certificate's revocation is filed once, whatever chain led to the refusal."""
    _, application_id, first = _signed_case(body)
    body.open("certificate-1")
    (number,) = issue(body.issuer, body.custodian, [application_id], TODAY).issued
    with body.sessions.begin() as db:
        pending = correct(db, OFFICER, first, "refuse", "degree forged", WHY).id
        refusal = correct(db, OFFICER_2, pending, "refuse", "degree forged", WHY).id
        revocation = approve_correction(db, OFFICER, refusal)
        assert revocation is not None and f"decision {pending} corrected" in revocation.reason
        again = correct(db, OFFICER, refusal, "refuse", "forged, and late", WHY).id
        assert approve_correction(db, OFFICER_2, again) == revocation  # the pending one
        certificate = db.scalar(select(Certificate).where(Certificate.number == number))
        assert certificate is not None and certificate.status == "issued"


def test_a_certificate_revoked_on_its_live_approval_is_not_reissued(body: Body) -> None:
    """Only a corrected conclusion issues again: a certificate revoked (e.g. for fraud) on the
    approval still in force is not silently reissued."""
    _, application_id, _ = _signed_case(body)
    body.open("certificate-1")
    (number,) = issue(body.issuer, body.custodian, [application_id], TODAY).issued
    with body.sessions.begin() as db:
        db.execute(update(Certificate).where(Certificate.number == number).values(status="revoked"))
    with pytest.raises(Conflict, match="only a corrected conclusion issues again"):
        issue(body.issuer, body.custodian, [application_id], TODAY)


def test_the_officer_who_filed_cannot_approve_own_correction(body: Body) -> None:
    batch_id, _, first = _signed_case(body, "refuse")
    filer = Actor("officer", 0, "officer", person="P-0001")
    same_person = Actor("officer-alt", 0, "officer", person="P-0001")
    with body.sessions.begin() as db:
        corrected = correct(db, filer, first, "refuse", "record confirmed", WHY).id
    for who, refusal in (
        (filer, "not the one who filed it"),
        (same_person, "another account of yours"),
        (REGISTRAR, "only an officer"),
    ):
        with body.sessions.begin() as db, pytest.raises(Conflict, match=refusal):
            approve_correction(db, who, corrected)
    with body.sessions.begin() as db, pytest.raises(InvalidInput, match="reason: why"):
        correct(db, OFFICER_2, corrected, "refuse", "x", "short")
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert report.signed == [] and report.refused[0].rule == "correction"
    assert "awaits a second officer's approval" in report.refused[0].message
    # The second officer does not approve it, but files another correction in its place.
    with body.sessions.begin() as db:
        replacement = correct(db, OFFICER_2, corrected, "refuse", "record confirmed", WHY).id
        assert approve_correction(db, filer, replacement) is None
    with body.sessions.begin() as db, pytest.raises(Conflict, match="approved already"):
        approve_correction(db, Actor("officer-c", 0, "officer"), replacement)
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert report.signed == [f"DEC-{replacement}"]
    assert [(r.document_id, r.rule) for r in report.refused] == [(f"DEC-{corrected}", "correction")]
    assert "superseded by a correction; it is never signed" in report.refused[0].message


def test_a_dba_flipping_the_superseded_mark_or_link_is_named(
    body: Body, settings: Settings
) -> None:
    batch_id, application_id, first = _signed_case(body, "refuse")
    other = body.case(batch_id, 42)
    with body.sessions.begin() as db:
        late_ok(db, other)
        stranger = decide(db, OFFICER, other, "refuse", "not eligible").id
        corrected = correct(db, OFFICER, first, "refuse", "other grounds", WHY).id
        approve_correction(db, OFFICER_2, corrected)
    body.open("decision-1")
    sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert _findings(body, settings) == []

    # The mark alone flipped back to live: the chain still says superseded; reconcile names it.
    with body.sessions.begin() as db:
        db.execute(update(Decision).where(Decision.id == first).values(superseded_at=None))
    with body.sessions() as db:
        assert live_decision(db, application_id).id == corrected  # type: ignore[union-attr]
    assert _findings(body, settings) == [
        f"decision {first}: decision {corrected} supersedes it, but it is marked live"
    ]

    # The link moved to another case's decision: the signed correction no longer matches.
    with body.sessions.begin() as db:
        db.execute(update(Decision).where(Decision.id == corrected).values(supersedes_id=stranger))
    findings = _findings(body, settings)
    assert f"decision {corrected}: the records no longer say what was signed" in findings
    assert (
        f"decision {corrected}: differs from what the audit log recorded when it was decided"
        in findings
    )
    assert f"decision {corrected}: supersedes decision {stranger}, not of its case" in findings

    # A live decision marked superseded to block it, or an approval of a correction made up.
    with body.sessions.begin() as db:
        db.execute(update(Decision).where(Decision.id == corrected).values(supersedes_id=first))
        db.execute(update(Decision).where(Decision.id == first).values(superseded_at=utcnow()))
        db.execute(update(Decision).where(Decision.id == stranger).values(superseded_at=utcnow()))
        db.execute(
            update(Decision)
            .where(Decision.id == corrected)
            .values(correction_approved_by="officer-x")
        )
    assert _findings(body, settings) == [
        f"decision {stranger}: marked superseded, but no decision on file supersedes it",
        f"decision {corrected}: correction approved in the records, not in the audit log",
    ]
