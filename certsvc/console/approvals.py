"""The security officer's approvals: accounts an admin proposed whose role reveals, decides,
approves or signs, and second-factor resets. Each approval calls the function the API calls
(`certsvc.grants.approve_account`, `certsvc.console.factor_reset.approve_reset`), with the same
refusals: one's own, or what one's own person proposed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from certsvc.accounts import Role, StaffAccount, list_accounts
from certsvc.console import web
from certsvc.console.factor_reset import approve_reset, pending_resets
from certsvc.console.models import ConsoleSession
from certsvc.grants import account_pending, approve_account
from common.errors import CertsvcError

router = APIRouter(prefix="/console", include_in_schema=False)
HOME = "/console/approvals"
FIELDS = {"username": 32}
web.NAV[Role.SECURITY_OFFICER] = (
    *web.NAV[Role.SECURITY_OFFICER],
    (HOME, "批准", "Approvals"),
)


def _render(
    db: Session, row: ConsoleSession, account: StaffAccount, status_code: int = 200, **extra: Any
) -> Response:
    return web.page(
        "approvals.html",
        status_code,
        account=account,
        csrf=row.csrf,
        accounts=[a for a in list_accounts(db) if a.active and account_pending(db, a)],
        resets=pending_resets(db),
        **extra,
    )


@router.get("/approvals")
def approvals_page(request: Request, db: web.DbDep, done: str = "") -> Response:
    found = web.staff_page(request, db, Role.SECURITY_OFFICER)
    if isinstance(found, Response):
        return found
    row, account = found
    return _render(db, row, account, done=done if done in ("account", "reset") else "")


async def _approve(
    request: Request, db: Session, action: Callable[[StaffAccount, str], object], done: str
) -> Response:
    """Signed in as a security officer, CSRF token right; a refusal leaves nothing done and
    shows the page again with its reason."""
    found = web.staff_page(request, db, Role.SECURITY_OFFICER)
    if isinstance(found, Response):
        return found
    row, account = found
    form = await web.read_form(request, FIELDS)
    web.require_csrf(row.csrf, form)
    try:
        with db.begin_nested():
            action(account, form.get("username", ""))
    except CertsvcError as exc:
        return _render(db, row, account, exc.status_code, error=str(exc))
    return web.redirect(f"{HOME}?done={done}")


@router.post("/approvals/accounts")
async def approve_proposed_account(request: Request, db: web.DbDep) -> Response:
    return await _approve(request, db, lambda me, name: approve_account(db, me, name), "account")


@router.post("/approvals/factor-resets")
async def approve_factor_reset(request: Request, db: web.DbDep) -> Response:
    return await _approve(request, db, lambda me, name: approve_reset(db, me, name), "reset")
