"""Corrections of conclusions (R10, 纠正认定结论): a corrected conclusion is a new decision that
supersedes the old one. Both are kept: the new one names the old in its signed content, the
old one is marked superseded and never edited or deleted, and a case has one live decision.

An officer files a correction with a reason; it passes the gates of any conclusion
(`check_conclusion`) and takes the old decision out of force at once (nothing more is issued on
it). It is signed like any decision, once a second officer approved it. When the correction
is a refusal and a certificate issued on an earlier approval is in force, that approval files
the certificate's revocation (category "error"; once, if none is pending), which two officers
approve and the custodian signs like any revocation: no one recalls a certificate alone.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certify.cases import get_application
from certify.decisions import (
    DECISION_PREFIX,
    REFUSE,
    _officer,
    check_conclusion,
    decision_document_id,
    decision_object,
    live_decision,
    record_decision,
)
from certify.issuance import ISSUED, request_revocation
from certify.models import Certificate, Decision, Revocation
from certify.records import ROW_ID_DIGITS
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor
from signer.models import KeyPurpose
from signer.second_person import Approval, Party, approve_as_second

CORRECTION_REASON_MIN = 10
CORRECTION_APPROVE = "certify.decision.correction.approve"


def correct(
    db: Session, actor: Actor, decision_id: int, outcome: str, reasons: str, reason: str
) -> Decision:
    """An officer files a corrected conclusion superseding the live `decision_id` (signed, or
    a correction not signed yet), with the `reason` for correcting it; the new decision awaits
    a second officer. Audited."""
    _officer(actor)
    if len(reason.strip()) < CORRECTION_REASON_MIN:
        raise InvalidInput(
            f"reason: why the conclusion is corrected, at least {CORRECTION_REASON_MIN} characters"
        )
    old = db.get(Decision, decision_id, with_for_update=True)
    if old is None:
        raise NotFound(f"decision_id: no decision {decision_id}")
    live = live_decision(db, old.application_id)
    if live is None or live.id != old.id:
        raise Conflict(
            f"decision_id: decision {decision_id} is superseded; correct the case's live "
            f"decision{f' ({live.id})' if live is not None else ''}"
        )
    if old.signed_at is None and old.supersedes_id is None:
        # A first decision is corrected once it is a conclusion; an unsigned correction may be
        # superseded at once (the second officer would not approve it).
        raise Conflict(f"decision_id: decision {decision_id} is not signed yet: nothing to correct")
    check_conclusion(db, get_application(db, old.application_id), outcome, reasons)
    old.superseded_at = utcnow()
    decision = Decision(
        application_id=old.application_id,
        outcome=outcome,
        reasons=reasons[:500],
        decided_by=actor.username,
        decided_by_person=actor.person,
        supersedes_id=old.id,
        correction_reason=reason.strip()[:500],
    )
    db.add(decision)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(f"decision_id: decision {decision_id} is being corrected already") from None
    record_decision(db, actor, decision, reason)
    return decision


def approve_correction(db: Session, actor: Actor, decision_id: int) -> Revocation | None:
    """A second officer (not the one who filed it) approves a correction, which lets it be
    signed; a refusal files the revocation of the certificate an earlier approval issued
    (returned, or the one already pending). Audited."""
    decision = db.get(Decision, decision_id, with_for_update=True)
    if decision is None:
        raise NotFound(f"decision_id: no decision {decision_id}")
    if decision.supersedes_id is None:
        raise Conflict(f"decision_id: decision {decision_id} is not a correction")
    approve_as_second(
        db,
        actor,
        Approval(
            f"decision {decision_id}: the correction",
            [Party(decision.decided_by, "filed it", decision.decided_by_person)],
            CORRECTION_APPROVE,
            decision_object(decision_id),
            approved_by=decision.correction_approved_by,
            details={"supersedes": decision.supersedes_id, "outcome": decision.outcome},
        ),
    )
    decision.correction_approved_by, decision.correction_approved_at = actor.username, utcnow()
    if decision.outcome != REFUSE:
        return None
    # Whatever chain of corrections led here, a refusal leaves no certificate in force.
    certificate = db.scalar(
        select(Certificate).where(
            Certificate.application_id == decision.application_id, Certificate.status == ISSUED
        )
    )
    if certificate is None:
        return None
    filed = db.scalar(
        select(Revocation).where(
            Revocation.certificate_id == certificate.id, Revocation.revoked_on.is_(None)
        )
    )
    if filed is not None:
        return filed
    why = f"decision {decision.supersedes_id} corrected by decision {decision.id}: "
    return request_revocation(
        db, actor, certificate.number, "error", f"{why}{decision.correction_reason}"[:500]
    )


def superseding(db: Session, kind: str, document_id: str) -> str | None:
    """The document id of the correction that supersedes the decision `document_id` (None for
    a live decision or any other document): a superseded decision stays verifiable, and
    whoever reads it learns it is no longer the case's conclusion."""
    if kind != KeyPurpose.DECISION.value or not document_id.startswith(DECISION_PREFIX):
        return None
    number = document_id.removeprefix(DECISION_PREFIX)
    if not number.isdigit() or len(number) > ROW_ID_DIGITS:
        return None
    later = db.scalar(select(Decision.id).where(Decision.supersedes_id == int(number)))
    return None if later is None else decision_document_id(later)
