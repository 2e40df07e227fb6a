"""Signing documents over HTTP: officers approve revocations (dual control), custodians sign
batches from their workstation, staff read signed documents back. A request names documents by
kind and id; what they say and their case gates (R2, R3) come from the server's records, never
from the request."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field

from certify.corrections import superseding
from certify.issuance import approve
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.auth import JobSessionsDep, SessionDep, require_roles, require_workstation
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.workstations import Workstation
from signer.custody import get_key
from signer.documents import BatchReport, DocumentRef, signed_document

router = APIRouter(prefix="/api/v1/signing", tags=["signing"], responses=ROLE_GATED)
CustodianDep = Annotated[StaffAccount, Depends(require_roles(Role.CUSTODIAN))]
OfficerDep = Annotated[StaffAccount, Depends(require_roles(Role.OFFICER))]
ReaderDep = Annotated[
    StaffAccount, Depends(require_roles(Role.CUSTODIAN, Role.OFFICER, Role.SECURITY_OFFICER))
]
WorkstationDep = Annotated[Workstation, Depends(require_workstation)]
BATCH_MAX = 1000


class ApprovalIn(BaseModel):
    revocation_id: int = Field(description="the filed revocation to approve")
    reason: str = Field(min_length=1, max_length=500)


class ApprovalOut(BaseModel):
    document_id: str
    content_sha256: str = Field(
        description="SHA-256 of the revocation as the records say it: the approval holds for "
        "exactly this content"
    )
    officer: str
    approved_at: datetime


class DocumentIn(BaseModel):
    kind: str = Field(description="certificate, decision or revocation")
    document_id: str = Field(
        min_length=1,
        max_length=100,
        description="names the record: DEC-<decision id>, CRT-<certificate number>, "
        "REV-<revocation id>",
    )
    content: dict[str, Any] | None = Field(
        default=None,
        description="not needed: the server signs what its records say; content sent that "
        "differs from them refuses the document (rule content-from-records)",
    )


class BatchIn(BaseModel):
    key_id: int
    batch: str | None = Field(
        default=None, max_length=64, pattern=r"^[0-9A-Za-z._-]+$", description="name to resume"
    )
    documents: list[DocumentIn] = Field(min_length=1, max_length=BATCH_MAX)


class RefusedOut(BaseModel):
    document_id: str
    rule: str
    detail: str


class BatchOut(BaseModel):
    batch: str
    total: int
    signed: list[str]
    already_signed: list[str]
    refused: list[RefusedOut]
    stopped_by: str | None
    not_attempted: int


class SignedDocumentOut(BaseModel):
    kind: str
    document_id: str
    payload_sha256: str
    cose_sign1: str = Field(description="base64url without padding")
    key_id: int
    kid: str
    certificate_der: str = Field(description="the signing key's X.509 certificate, base64")
    audit_index: int
    signed_by: str
    workstation: str
    signed_at: datetime
    superseded_by: str | None = Field(
        default=None,
        description="for a decision: the correction that superseded it (R10); its signature "
        "still verifies, but it is no longer the case's conclusion",
    )


@router.post("/approvals", status_code=status.HTTP_201_CREATED, responses=answers(404, 409))
def post_approval(body: ApprovalIn, account: OfficerDep, db: SessionDep) -> ApprovalOut:
    """Approve a revocation, bound to its content as the server builds it from the records;
    two different officers must before it can be signed."""
    approval = approve(db, actor_of(account), body.revocation_id, body.reason)
    return ApprovalOut(
        document_id=approval.document_id,
        content_sha256=approval.content_sha256 or "",
        officer=approval.officer,
        approved_at=approval.approved_at,
    )


@router.post("/batches", responses=answers(404, 409))
def post_batch(
    body: BatchIn,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    _: JobSessionsDep,
) -> BatchOut:
    """Sign a batch with the key of the caller's open session: each document as the records
    say it (one with no record behind it is refused); documents already signed are skipped,
    so re-sending a batch after a fault signs only what is missing. A job: each chunk is
    committed by the batch signer (`signer.documents`)."""
    documents = [DocumentRef(d.kind, d.document_id, d.content) for d in body.documents]
    report = state.document_signer(request).sign_batch(
        actor_of(account, workstation), body.key_id, documents, batch=body.batch
    )
    return report_out(report)


@router.get("/documents/{kind}/{document_id}", responses=answers(404))
def get_document(kind: str, document_id: str, _: ReaderDep, db: SessionDep) -> SignedDocumentOut:
    """A signed document with its signature, certificate and audit reference; a superseded
    decision names the correction that superseded it."""
    row = signed_document(db, kind, document_id)
    key = get_key(db, row.signing_key_id)
    der = key.certificate_der
    return SignedDocumentOut(
        kind=row.kind,
        document_id=row.document_id,
        payload_sha256=row.payload_sha256,
        cose_sign1=base64.urlsafe_b64encode(row.cose).rstrip(b"=").decode(),
        key_id=row.signing_key_id,
        kid=row.kid.hex(),
        certificate_der=base64.b64encode(der).decode(),
        audit_index=row.audit_index,
        signed_by=row.signed_by,
        workstation=row.workstation,
        signed_at=row.signed_at,
        superseded_by=superseding(db, row.kind, row.document_id),
    )


def report_out(report: BatchReport) -> BatchOut:
    """A batch report as the API answers it."""
    return BatchOut(
        batch=report.batch,
        total=report.total,
        signed=report.signed,
        already_signed=report.already_signed,
        refused=[
            RefusedOut(document_id=r.document_id, rule=r.rule, detail=r.message)
            for r in report.refused
        ],
        stopped_by=report.stopped.rule if report.stopped else None,
        not_attempted=report.not_attempted,
    )
