"""The printable certificate for staff: rendered and PAdES-signed on request, by the custodian,
in their open certificate-key session, from their registered workstation. Nothing of it is
stored: the PDF carries the holder's full name, revealed from the vault to the custodian under
the print limit (`CERTSVC_PRINT_REVEAL_LIMIT`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from certify.certificate_pdf import certificate_pdf
from certsvc.routes.certify_common import CustodianDep, WorkstationDep, issuer_of
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.routes.signer_context import actor_of, signing_sessions
from certsvc.vault_setup import print_reveal_limit
from common.errors import Conflict

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
    number: str, request: Request, account: CustodianDep, workstation: WorkstationDep
) -> Response:
    """The certificate as a PDF signed with the certificate key (PAdES). The holder's name is a
    reveal by the custodian: an audit event and a reveal record each time, at most
    `CERTSVC_PRINT_REVEAL_LIMIT` per `CERTSVC_PRINT_REVEAL_WINDOW_MINUTES`, then 429 with
    Retry-After (the refusal audited, nothing printed)."""
    issuer = issuer_of(request)
    held = signing_sessions(request).held_by(account.username)
    session = next((s for s in held if s.key_label), None)
    if session is None:
        raise Conflict("session: open a signing session for the certificate key first")
    with issuer.sessions.begin() as db:
        pdf = certificate_pdf(
            db,
            issuer.vault,
            actor_of(account, workstation),
            session,
            issuer.body_code,
            number,
            print_reveal_limit(request.app.state.settings),
        )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{number}.pdf"',
        },
    )
