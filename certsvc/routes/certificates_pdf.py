"""The printable certificate for staff: rendered and PAdES-signed on request, by the custodian,
in their open session on the certificate key's token (whatever other sessions they hold), from
their registered workstation, through the signing gate. Nothing of it is stored: the PDF
carries the holder's full name, opened from the vault under audit."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from certify.certificate_pdf import certificate_pdf
from certsvc.routes.certify_common import CustodianDep, WorkstationDep, issuer_of
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.routes.signer_context import actor_of
from signer.gate import signing_transaction

router = APIRouter(prefix="/api/v1/certificates", tags=["certify"], responses=ROLE_GATED)


@router.get(
    "/{number}/pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "the signed PDF"},
        **answers(404, 409),
    },
)
def get_certificate_pdf(
    number: str, request: Request, account: CustodianDep, workstation: WorkstationDep
) -> Response:
    """The certificate as a PDF signed with the body's certificate key (PAdES), in the
    caller's session on that key's token; the holder-name reveal and the signature are audit
    events, a refusal (403) names the rule."""
    issuer = issuer_of(request)
    actor = actor_of(account, workstation)
    with signing_transaction(issuer.sessions) as unit:
        pdf = certificate_pdf(unit, issuer.vault, issuer.gate, actor, issuer.body_code, number)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{number}.pdf"',
        },
    )
