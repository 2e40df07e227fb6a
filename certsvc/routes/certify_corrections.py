"""Corrections of conclusions over HTTP (R10, 纠正认定结论): an officer files a corrected
conclusion superseding a signed one, with the reason; a second officer approves it before the
custodian signs it, and that approval files the revocation of a certificate issued on an
approval the correction turns into a refusal (two officers approve it, as any revocation)."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from certify.corrections import approve_correction, correct
from certify.models import Decision
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep
from certsvc.routes.certify_cases import DecisionOut, decision_out
from certsvc.routes.certify_common import OfficerDep
from certsvc.routes.schemas import ROLE_GATED, answers

router = APIRouter(prefix="/api/v1/certify", tags=["certify"], responses=ROLE_GATED)


class CorrectionIn(BaseModel):
    outcome: str = Field(description="approve or refuse: the corrected conclusion")
    reasons: str = Field(min_length=1, max_length=500, description="its grounds")
    reason: str = Field(
        min_length=1, max_length=500, description="why the earlier conclusion was wrong"
    )


class CorrectionApprovalOut(BaseModel):
    decision: DecisionOut
    revocation_id: int | None = Field(
        description="the revocation this approval filed (an approval corrected into a refusal "
        "whose certificate was issued); two officers approve it before it is signed"
    )


@router.post(
    "/decisions/{decision_id}/correction",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_correction(
    decision_id: int, body: CorrectionIn, account: OfficerDep, db: SessionDep
) -> DecisionOut:
    """File a corrected conclusion superseding the signed, live decision `decision_id`: the
    gates of any conclusion apply; it is signed once a second officer approved it."""
    decision = correct(db, actor_of(account), decision_id, body.outcome, body.reasons, body.reason)
    return decision_out(decision)


@router.post("/decisions/{decision_id}/correction/approval", responses=answers(404, 409))
def post_correction_approval(
    decision_id: int, account: OfficerDep, db: SessionDep
) -> CorrectionApprovalOut:
    """A second officer (not the one who filed it) approves the correction `decision_id`."""
    revocation = approve_correction(db, actor_of(account), decision_id)
    return CorrectionApprovalOut(
        decision=decision_out(db.get_one(Decision, decision_id)),
        revocation_id=revocation.id if revocation is not None else None,
    )
