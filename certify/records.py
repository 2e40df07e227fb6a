"""What the signer asks `certify` about a document it is told to sign, answered from the records
on file and never from the request: what the document says (a decision as the officer recorded
it, a certificate as the case produced it, a revocation as it was filed) and its case gates —
R2 (criminal-record check) and R3 (deadline, or an officer's audited override).

A document id names its record: `DEC-<decision id>`, `CRT-<certificate number>`,
`REV-<revocation id>`. An id naming no record has no content, which the signer refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.query import ok_leaves
from certify.cases import attendance_missing
from certify.checks import CRIMINAL_RECORD, latest_results, unapproved_replacement
from certify.decisions import (
    APPROVE,
    CERTIFICATE_PREFIX,
    DECISION_MADE,
    DECISION_PREFIX,
    REVOCATION_PREFIX,
    decision_document,
    decision_object,
    end_of_day,
    live_decision,
)
from certify.eligibility import unmet_rules
from certify.models import Application, Batch, Certificate, Decision, Revocation
from certify.requests import open_objection
from common.errors import NotFound
from signer.actor import OFFICER_ROLE
from signer.documents import Document
from signer.models import KeyPurpose
from signer.policy import (
    CONFIRMATION,
    CORRECTION,
    CRIMINAL_RECORD_RULE,
    ELIGIBILITY,
    OBJECTION,
    CaseGates,
    DeadlineOverride,
)

ROW_ID_DIGITS = 9  # every id an INTEGER column holds, with room to spare


class CaseRecords:
    """The signer's `DocumentRecords`: content and gates read from the case on file. No record
    (or, for a certificate's gates, no signed approval) gives None, which the signer refuses."""

    def content_for(self, db: Session, kind: str, document_id: str) -> Mapping[str, Any] | None:
        document = document_on_file(db, kind, document_id)
        return None if document is None else document.content

    def gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates | None:
        if kind == KeyPurpose.DECISION.value and document_id.startswith(DECISION_PREFIX):
            decision = _decision(db, document_id.removeprefix(DECISION_PREFIX))
            if decision is None:
                return None
            application = db.get_one(Application, decision.application_id)
            approval = decision.outcome == APPROVE
            accepted = ("clear",) if approval else ("clear", "record")
            due = db.get_one(Batch, application.batch_id).decision_deadline
            gates = _gates(db, application, accepted, due, approval=approval)
            uncorrected = _correction_unsigned(db, decision)
            unmet = {**gates.unmet, CORRECTION: uncorrected} if uncorrected else gates.unmet
            return replace(gates, as_recorded=decision_as_recorded(db, decision), unmet=unmet)
        if kind == KeyPurpose.CERTIFICATE.value and document_id.startswith(CERTIFICATE_PREFIX):
            number = document_id.removeprefix(CERTIFICATE_PREFIX)
            certificate = db.scalar(select(Certificate).where(Certificate.number == number))
            if certificate is None:
                return None
            application = db.get_one(Application, certificate.application_id)
            decision = live_decision(db, application.id)
            if decision is None or decision.outcome != APPROVE or decision.signed_at is None:
                return None
            if certificate.decision_id not in (None, decision.id):
                return None
            due = db.get_one(Batch, application.batch_id).closes_on
            return _gates(db, application, ("clear",), due, approval=True)
        return None


def document_on_file(db: Session, kind: str, document_id: str) -> Document | None:
    """The document `document_id` names, as its records say it; None when there is none."""
    if kind == KeyPurpose.DECISION.value and document_id.startswith(DECISION_PREFIX):
        decision = _decision(db, document_id.removeprefix(DECISION_PREFIX))
        return None if decision is None else decision_document(db, decision)
    if kind == KeyPurpose.CERTIFICATE.value and document_id.startswith(CERTIFICATE_PREFIX):
        number = document_id.removeprefix(CERTIFICATE_PREFIX)
        certificate = db.scalar(select(Certificate).where(Certificate.number == number))
        return None if certificate is None else certificate_document(db, certificate)
    if kind == KeyPurpose.REVOCATION.value and document_id.startswith(REVOCATION_PREFIX):
        revocation_id = _row_id(document_id.removeprefix(REVOCATION_PREFIX))
        revocation = None if revocation_id is None else db.get(Revocation, revocation_id)
        return None if revocation is None else _revocation_document(db, revocation)
    return None


def _correction_unsigned(db: Session, decision: Decision) -> str | None:
    """Why a decision may not be signed for its place in the case's chain of corrections: it
    was superseded, or it is a correction no second officer approved (None: it may)."""
    if decision.superseded_at is not None or db.scalar(
        select(Decision.id).where(Decision.supersedes_id == decision.id)
    ):
        return f"R10: decision {decision.id} is superseded by a correction; it is never signed"
    if decision.supersedes_id is None or decision.correction_approved_by is not None:
        return None
    return (
        f"R10: the correction filed by {decision.decided_by} (superseding decision "
        f"{decision.supersedes_id}) awaits a second officer's approval"
    )


def decision_as_recorded(db: Session, decision: Decision) -> bool:
    """Whether the decision on file is the one the officer made: its digest is the one its
    audit event recorded when it was decided (an edited outcome or reason is not). An event
    from before digests were recorded holds the decision to the outcome it names."""
    obj = decision_object(decision.id)
    leaves = ok_leaves(db, [DECISION_MADE], [obj]).get((DECISION_MADE, obj))
    if not leaves:
        return False
    made = leaves[-1]
    if made.get("doc") is not None:
        return made["doc"] == decision_document(db, decision).digest()
    details = made.get("details")
    return isinstance(details, dict) and details.get("outcome") == decision.outcome


def certificate_document_id(number: str) -> str:
    return f"{CERTIFICATE_PREFIX}{number}"


def revocation_document_id(revocation_id: int) -> str:
    return f"{REVOCATION_PREFIX}{revocation_id}"


def certificate_document(db: Session, certificate: Certificate) -> Document:
    """The certificate as its case produced it: number, verification id, qualification."""
    application = db.get_one(Application, certificate.application_id)
    batch = db.get_one(Batch, application.batch_id)
    return Document(
        KeyPurpose.CERTIFICATE.value,
        certificate_document_id(certificate.number),
        {
            "body": batch.body_code,
            "batch": batch.name,
            "application": application.id,
            "applicant": application.applicant_id,
            "number": certificate.number,
            "verification_id": certificate.verification_id,
            "qualification": application.qualification,
            "subject": application.subject,
            "masked_name": certificate.masked_name,
            "issue_date": certificate.issue_date.isoformat(),
            # A corrected reissue names the revoked certificate it replaces (R10).
            **({"replaces": certificate.replaces} if certificate.replaces else {}),
        },
    )


def revocation_document(db: Session, revocation_id: int) -> Document:
    """The revocation as it is approved and signed: its certificate and why."""
    revocation = db.get(Revocation, revocation_id)
    if revocation is None:
        raise NotFound(f"revocation_id: no revocation {revocation_id}")
    return _revocation_document(db, revocation)


def _revocation_document(db: Session, revocation: Revocation) -> Document:
    certificate = db.get_one(Certificate, revocation.certificate_id)
    return Document(
        KeyPurpose.REVOCATION.value,
        revocation_document_id(revocation.id),
        {
            "number": certificate.number,
            "verification_id": certificate.verification_id,
            "category": revocation.category,
            "reason": revocation.reason,
            "requested_by": revocation.requested_by,
        },
    )


def _decision(db: Session, text: str) -> Decision | None:
    decision_id = _row_id(text)
    return None if decision_id is None else db.get(Decision, decision_id)


def _row_id(text: str) -> int | None:
    """A row id from a document id's digits; None for anything no row can have."""
    if not text.isdigit() or len(text) > ROW_ID_DIGITS:
        return None
    return int(text)


def _gates(
    db: Session,
    application: Application,
    accepted: tuple[str, ...],
    due: date,
    *,
    approval: bool,
) -> CaseGates:
    """The case's gates; an approval (or the certificate it grants) must also meet the
    eligibility rules of its batch and have the applicant's on-site confirmation on file; no
    document of a case is signed over an unanswered objection (`certify.requests`)."""
    clear = latest_results(db, application.id).get(CRIMINAL_RECORD) in accepted
    unmet: dict[str, str] = {}
    unapproved = unapproved_replacement(db, application.id)
    if unapproved is not None:
        clear, unmet[CRIMINAL_RECORD_RULE] = False, unapproved
    ineligible = unmet_rules(db, application) if approval else []
    if ineligible:
        unmet[ELIGIBILITY] = "R0: " + "; ".join(str(u) for u in ineligible)
    unconfirmed = attendance_missing(db, application.id) if approval else None
    if unconfirmed is not None:
        unmet[CONFIRMATION] = unconfirmed
    objected = open_objection(db, application.id)
    if objected is not None:
        unmet[OBJECTION] = objected
    override = None
    if application.override_by and application.override_reason:
        expires = application.override_expires_on
        override = DeadlineOverride(
            application.override_by,
            OFFICER_ROLE,
            application.override_reason,
            approved_by=application.override_approved_by,
            expires=end_of_day(expires) if expires is not None else None,
        )
    return CaseGates(
        criminal_record_clear=clear, deadline=end_of_day(due), override=override, unmet=unmet
    )
