"""The vault revealer's console: one value of a case's applicant revealed for a stated
purpose, from this browser's registered workstation. The form is signed by the browser's
workstation key (`certsvc.console.proof`), as the API's reveal needs a `Certsvc-Signature`,
and calls the API's own `reveal_for_case`: the same role check (a wrong role's attempt kept on
record), case check, purpose rule, per-person limit (429 with its message) and one audit event
per value. The value comes back once, in the answer to that POST (no-store), drawn into the
page by the script: never in a URL, a log line, the audit details or a later page."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from certify.cases import CASE_REFERENCE
from certsvc import state
from certsvc.accounts import Role
from certsvc.audit_trail import actor_of
from certsvc.console import web
from certsvc.console.proof import proven_workstation
from certsvc.routes.vault import PURPOSE_LIMIT, VAULT_TOKEN_SHAPE, reveal_for_case, revealer
from certsvc.vault_setup import reveal_limit
from common.errors import InvalidInput
from vault.reveal import check_purpose

router = APIRouter(prefix="/console", include_in_schema=False)
HOME = "/console/reveal"
FIELDS = {"token": 48, "case": 32, "purpose": PURPOSE_LIMIT}
web.NAV[Role.VAULT_REVEALER] = ((HOME, "查看原值", "Reveal"),)


@router.get("/reveal")
def reveal_page(request: Request, db: web.DbDep) -> Response:
    found = web.staff_page(request, db, Role.VAULT_REVEALER)
    if isinstance(found, Response):
        return found
    row, account = found
    return web.page(
        "revealer_reveal.html",
        csp=web.SCRIPT_CSP,
        account=account,
        csrf=row.csrf,
        purpose_max=PURPOSE_LIMIT,
    )


def _asked(form: dict[str, str]) -> tuple[str, str, str]:
    """The form's token, case and purpose, each checked as the API's body is; errors name
    the field, never a value."""
    token, case = form.get("token", "").strip(), form.get("case", "").strip()
    if not re.fullmatch(VAULT_TOKEN_SHAPE, token):
        raise InvalidInput("token: a vault token, tk_<kind>_…")
    if not re.fullmatch(CASE_REFERENCE, case):
        raise InvalidInput("case: application:<id> or certificate:<number>")
    return token, case, check_purpose(form.get("purpose", ""))


@router.post("/reveal")
async def reveal_value(request: Request, db: web.DbDep) -> Response:
    found = web.signed_in(request, db)
    if found is None:
        return web.redirect("/console/login")
    row, account = found
    form = await web.read_form(request, FIELDS)
    web.require_csrf(row.csrf, form)
    revealer(account, db)
    workstation = await proven_workstation(request, db, row, account)
    token, case, purpose = _asked(form)
    values = await run_in_threadpool(
        reveal_for_case,
        db,
        state.vault(request),
        actor_of(account, workstation),
        [token],
        case,
        purpose,
        reveal_limit(state.settings(request)),
    )
    return JSONResponse(
        {
            "values": [
                {"token": t, "kind": v.kind.value, "value": v.value} for t, v in values.items()
            ]
        },
        headers={"Cache-Control": "no-store"},
    )
