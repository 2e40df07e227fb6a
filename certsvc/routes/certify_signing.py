"""Signing, issuing and revoking over HTTP. The custodian, from a registered workstation and
through the signing session opened on their USBKey (`/api/v1/signing/sessions`, one key per
session), signs a batch's decisions, issues its certificates (written to the public register)
and signs approved revocations; the case gates (R2, R3) and dual control (R10) come from the
records on file, never the request. Officers file revocations and approve them (two officers)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import get_batch
from certify.decisions import sign_decisions
from certify.issuance import (
    IssueReport,
    approve,
    issuable,
    issue,
    record_return,
    request_revocation,
    sign_revocations,
)
from certify.models import Application, Certificate, Revocation
from certify.records import revocation_document
from certsvc import state
from certsvc.audit_trail import actor_of
from certsvc.auth import JobSessionsDep, SessionDep
from certsvc.revocation_catchup import sign_catch_up_list
from certsvc.routes.certify_common import (
    CaseReaderDep,
    ClerkDep,
    CustodianDep,
    OfficerDep,
    WorkstationDep,
    china_today,
    issuer_of,
)
from certsvc.routes.documents import BatchOut, report_out
from certsvc.routes.schemas import ROLE_GATED, answers
from common.errors import NotFound
from signer.actor import Actor
from signer.custody import approvals_for
from signer.documents import BatchReport
from verify.codes import REVOCATION_CATEGORIES

router = APIRouter(prefix="/api/v1/certify", tags=["certify"], responses=ROLE_GATED)
IDS_MAX = 1000


class IssueIn(BaseModel):
    application_ids: list[int] | None = Field(
        default=None,
        max_length=IDS_MAX,
        description="default: every signed approval of the batch without a certificate",
    )


class IssueOut(BaseModel):
    issued: list[str] = Field(description="certificate numbers issued by this request")
    signing: BatchOut | None


class CertificateOut(BaseModel):
    number: str
    application_id: int
    status: str = Field(description="pending, issued or revoked")
    masked_name: str
    qualification: str
    subject: str
    issue_date: date
    verification_url: str | None
    qr_text: str | None
    issued_by: str | None
    replaces: str | None = Field(
        default=None, description="the revoked certificate this corrected reissue replaces"
    )
    replaced_by: str | None = Field(
        default=None, description="the corrected reissue that replaces this revoked certificate"
    )


class RevocationIn(BaseModel):
    category: str = Field(description=", ".join(REVOCATION_CATEGORIES))
    reason: str = Field(min_length=1, max_length=500)


class ApprovalIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class RevocationOut(BaseModel):
    id: int
    document_id: str
    number: str
    category: str
    reason: str
    requested_by: str
    approved_by: list[str]
    revoked_on: date | None
    returned_on: date | None = Field(description="the printed certificate came back (收回)")
    return_recorded_by: str | None


class ReturnIn(BaseModel):
    returned_on: date
    note: str = Field(default="", max_length=200, description="e.g. where it is kept")


class RevocationsIn(BaseModel):
    revocation_ids: list[int] = Field(min_length=1, max_length=IDS_MAX)


def certificate_out(db: Session, request: Request, certificate: Certificate) -> CertificateOut:
    application = db.get_one(Application, certificate.application_id)
    base = state.settings(request).public_base_url.rstrip("/")
    shown = certificate.status != "pending"
    return CertificateOut(
        number=certificate.number,
        application_id=certificate.application_id,
        status=certificate.status,
        masked_name=certificate.masked_name,
        qualification=application.qualification,
        subject=application.subject,
        issue_date=certificate.issue_date,
        verification_url=f"{base}/v/{certificate.verification_id}" if shown else None,
        qr_text=certificate.qr_text,
        issued_by=certificate.issued_by,
        replaces=certificate.replaces,
        replaced_by=db.scalar(
            select(Certificate.number).where(Certificate.replaces == certificate.number)
        ),
    )


def _certificate(db: Session, number: str) -> Certificate:
    certificate = db.scalar(select(Certificate).where(Certificate.number == number))
    if certificate is None:
        raise NotFound(f"number: no certificate {number}")
    return certificate


def revocation_out(db: Session, revocation: Revocation) -> RevocationOut:
    document = revocation_document(db, revocation.id)
    approvals = approvals_for(db, [document.document_id]).get(document.document_id, [])
    return RevocationOut(
        id=revocation.id,
        document_id=document.document_id,
        number=db.get_one(Certificate, revocation.certificate_id).number,
        category=revocation.category,
        reason=revocation.reason,
        requested_by=revocation.requested_by,
        approved_by=sorted(o for o, _, digest in approvals if digest == document.digest()),
        revoked_on=revocation.revoked_on,
        returned_on=revocation.returned_on,
        return_recorded_by=revocation.return_recorded_by,
    )


@router.post("/batches/{batch_id}/decisions/sign", responses=answers(404, 409))
def post_sign_decisions(
    batch_id: int,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    sessions: JobSessionsDep,
) -> BatchOut:
    """Sign every unsigned decision of the batch with the body's decision key, through the
    caller's open session for it; refusals (R2, R3) are listed by rule. Safe to repeat."""
    return report_out(sign_batch(request, sessions, actor_of(account, workstation), batch_id))


def sign_batch(
    request: Request, sessions: sessionmaker[Session], actor: Actor, batch_id: int
) -> BatchReport:
    """The batch's unsigned decisions signed: the API's and the console's one path."""
    with sessions() as db:
        get_batch(db, batch_id)
    return sign_decisions(sessions, state.document_signer(request), actor, batch_id)


@router.post("/batches/{batch_id}/certificates", responses=answers(404, 409))
def post_issue(
    batch_id: int,
    body: IssueIn,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    sessions: JobSessionsDep,
) -> IssueOut:
    """Issue certificates from the batch's signed approvals with the certificate key: number,
    verification id, signed document, signed QR payload, public register entry. Safe to
    repeat: a certificate left pending by a fault is finished with the same number."""
    report = issue_batch(
        request, sessions, actor_of(account, workstation), batch_id, body.application_ids
    )
    if report is None:
        return IssueOut(issued=[], signing=None)
    return IssueOut(
        issued=report.issued,
        signing=report_out(report.signing) if report.signing is not None else None,
    )


def issue_batch(
    request: Request,
    sessions: sessionmaker[Session],
    actor: Actor,
    batch_id: int,
    application_ids: list[int] | None,
) -> IssueReport | None:
    """Certificates issued for the named applications of the batch (all issuable ones when
    None): the API's and the console's one path; None when there is nothing to issue."""
    issuer = issuer_of(request, sessions)
    with issuer.sessions() as db:
        get_batch(db, batch_id)
        ids = application_ids
        if ids is None:
            ids = issuable(db, batch_id)
        else:
            for application_id in ids:
                application = db.get(Application, application_id)
                if application is None or application.batch_id != batch_id:
                    raise NotFound(f"application_ids: no application {application_id} here")
    if not ids:
        return None
    return issue(issuer, actor, ids, china_today())


@router.get("/batches/{batch_id}/certificates", responses=answers(404))
def list_certificates(
    batch_id: int, request: Request, _: CaseReaderDep, db: SessionDep
) -> list[CertificateOut]:
    """The batch's certificates, pending, issued and revoked."""
    get_batch(db, batch_id)
    rows = db.scalars(
        select(Certificate)
        .join(Application, Application.id == Certificate.application_id)
        .where(Application.batch_id == batch_id)
        .order_by(Certificate.id)
    )
    return [certificate_out(db, request, c) for c in rows]


@router.get("/certificates/{number}", responses=answers(404))
def get_certificate(
    number: str, request: Request, _: CaseReaderDep, db: SessionDep
) -> CertificateOut:
    """One certificate with its verification URL and QR text."""
    return certificate_out(db, request, _certificate(db, number))


@router.post(
    "/certificates/{number}/revocations",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404),
)
def post_revocation(
    number: str, body: RevocationIn, account: OfficerDep, db: SessionDep
) -> RevocationOut:
    """File a revocation (R10); two officers must approve it before the custodian signs."""
    revocation = request_revocation(db, actor_of(account), number, body.category, body.reason)
    return revocation_out(db, revocation)


@router.get("/revocations/{revocation_id}", responses=answers(404))
def get_revocation(revocation_id: int, _: CaseReaderDep, db: SessionDep) -> RevocationOut:
    """A revocation with the officers who approved it and, once signed, its date."""
    revocation = db.get(Revocation, revocation_id)
    if revocation is None:
        raise NotFound(f"revocation_id: no revocation {revocation_id}")
    return revocation_out(db, revocation)


@router.post(
    "/revocations/{revocation_id}/approvals",
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409),
)
def post_revocation_approval(
    revocation_id: int, body: ApprovalIn, account: OfficerDep, db: SessionDep
) -> RevocationOut:
    """One officer's approval; a second, different officer must approve too."""
    approve(db, actor_of(account), revocation_id, body.reason)
    return revocation_out(db, db.get_one(Revocation, revocation_id))


@router.post("/revocations/{revocation_id}/return", responses=answers(404, 409))
def post_return(
    revocation_id: int, body: ReturnIn, account: ClerkDep, db: SessionDep
) -> RevocationOut:
    """R10: the recalled certificate was handed back (once the revocation is signed)."""
    revocation = record_return(db, actor_of(account), revocation_id, body.returned_on, body.note)
    return revocation_out(db, revocation)


class RevocationListOut(BaseModel):
    version: int | None = Field(
        description="the revocation list version signed; null when the newest already names "
        "every recorded revocation (nothing signed)"
    )
    added: int = Field(description="recorded revocations the new version added")


@router.post("/revocations/list", responses=answers(404, 409))
def post_revocation_list(
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    sessions: JobSessionsDep,
) -> RevocationListOut:
    """Sign, with the revocation key in your open session, the next revocation list version
    naming every revocation on record: for revocations signed before signed lists existed
    (their certificates answer 404 until a list names them). Nothing when none is missing."""
    issuer = issuer_of(request, sessions)
    caught = sign_catch_up_list(
        issuer.sessions,
        issuer.gate,
        actor_of(account, workstation),
        issuer.body_code,
        issuer.trust_anchors,
    )
    if caught is None:
        return RevocationListOut(version=None, added=0)
    return RevocationListOut(version=caught.version, added=caught.added)


@router.post("/revocations/sign", responses=answers(404, 409))
def post_sign_revocations(
    body: RevocationsIn,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    sessions: JobSessionsDep,
) -> BatchOut:
    """Sign approved revocations with the revocation key; each one signed revokes its
    certificate and its public register entry in one transaction. Without two officers'
    approvals a revocation is refused (rule `dual-control`)."""
    report = sign_revocations(
        issuer_of(request, sessions),
        actor_of(account, workstation),
        body.revocation_ids,
        china_today(),
    )
    return report_out(report)
