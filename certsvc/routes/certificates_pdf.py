"""The printable certificate for staff: rendered and PAdES-signed on request, by the custodian,
in their open session on the certificate key's token (whatever other sessions they hold), from
their registered workstation, through the signing gate. Nothing of it is stored: the PDF
carries the holder's full name, revealed from the vault to the custodian under the print limit
(`CERTSVC_PRINT_REVEAL_LIMIT`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from certify.certificate_pdf import certificate_pdf
from certsvc import state
from certsvc.audit_trail import actor_of
from certsvc.auth import JobSessionsDep
from certsvc.routes.certify_common import CustodianDep, WorkstationDep, issuer_of
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.vault_setup import print_reveal_limit
from signer.actor import Actor
from signer.gate import signing_transaction

router = APIRouter(prefix="/api/v1/certificates", tags=["certify"], responses=ROLE_GATED)


@router.get(
    "/{number}/pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "the signed PDF"},
        **answers(404, 409, 429),
    },
)
def get_certificate_pdf(
    number: str,
    request: Request,
    account: CustodianDep,
    workstation: WorkstationDep,
    sessions: JobSessionsDep,
) -> Response:
    """The certificate as a PDF signed with the body's certificate key (PAdES), through the
    signing gate in the caller's session on that key's token: the signature is an audit event,
    a refusal (403) names the rule. The holder's name is a reveal by the custodian: an audit
    event and a reveal record each time, at most `CERTSVC_PRINT_REVEAL_LIMIT` per
    `CERTSVC_PRINT_REVEAL_WINDOW_MINUTES`, then 429 with Retry-After (the refusal audited,
    nothing printed). The reveal and the signature are one unit of their own
    (`signing_transaction`), committed before the PDF is answered."""
    pdf = signed_pdf(request, sessions, actor_of(account, workstation), number)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{number}.pdf"',
        },
    )


def signed_pdf(
    request: Request, sessions: sessionmaker[Session], actor: Actor, number: str
) -> bytes:
    """The certificate's signed PDF: the API's and the console's one path."""
    issuer = issuer_of(request, sessions)
    with signing_transaction(issuer.sessions) as unit:
        return certificate_pdf(
            unit,
            issuer.vault,
            issuer.gate,
            actor,
            issuer.body_code,
            number,
            print_reveal_limit(state.settings(request)),
        )
