"""What every console page shares: templates and the strict CSP, the `__Host-` cookies, reading
a form with per-field length limits, the CSRF check, and resolving the signed-in account. Each
role's pages live in a module of their own and go through `staff_page` to reach an account."""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session

from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.console import sessions
from certsvc.console.models import ConsoleSession
from certsvc.grants import account_backed
from certsvc.settings import Settings
from common.unit_of_work import unit_of_work

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Pages that run the service's own scripts (workstation key, security keys), never inline.
SCRIPT_CSP = CSP + "; script-src 'self'; connect-src 'self'"
# Each role's pages, as (path, Chinese, English) links in the header; a role module adds its own.
NAV: dict[Role, tuple[tuple[str, str, str], ...]] = {
    Role.SECURITY_OFFICER: (
        ("/console/dashboard", "密钥使用", "Key usage"),
        ("/console/audit", "审计检索", "Audit search"),
    ),
    Role.REGISTRAR: (
        ("/console/intake", "受理", "Intake"),
        ("/console/import", "批量导入", "Import"),
        ("/console/batches", "批次", "Batches"),
    ),
    Role.OFFICER: (
        ("/console/batches", "批次", "Batches"),
        ("/console/revocations", "撤销", "Revocations"),
        ("/console/announcements", "公告", "Announcements"),
    ),
}
_templates = Environment(
    loader=PackageLoader("certsvc.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _db(request: Request) -> Iterator[Session]:
    """Every console request may write (a session's idle clock, a refusal): a writer unit."""
    with unit_of_work(state.writer_sessions(request)) as db:
        yield db


DbDep = Annotated[Session, Depends(_db, scope="function")]


def page(name: str, status_code: int = 200, *, csp: str = CSP, **context: Any) -> HTMLResponse:
    account = context.get("account")
    nav = NAV.get(account.role, ()) if isinstance(account, StaffAccount) else ()
    html = _templates.get_template(name).render(nav=nav, **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"},
    )


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(
        path, status.HTTP_303_SEE_OTHER, headers={"Content-Security-Policy": CSP}
    )


def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """`__Host-` cookies: Secure, path /, no domain. Browsers take Secure cookies from
    http://127.0.0.1 and localhost too (secure contexts); anywhere else the console needs TLS."""
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


async def read_form(request: Request, limits: Mapping[str, int]) -> dict[str, str]:
    """The url-encoded form's fields named in `limits` (first value each); a value longer than
    its limit is cut to nothing, so it fails its form's own check rather than being truncated."""
    wanted = {"csrf": 64, **limits}
    try:
        fields = parse_qs(
            (await request.body()).decode("utf-8", "replace"), max_num_fields=len(wanted) + 4
        )
    except ValueError:  # more fields than the form has: nothing taken (CSRF fails)
        return {}
    return {
        name: values[0] if len(values[0]) <= wanted[name] else ""
        for name, values in fields.items()
        if name in wanted
    }


def require_csrf(expected: str | None, form: Mapping[str, str]) -> None:
    given = form.get("csrf", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="csrf: missing or wrong form token")


def _timeouts(settings: Settings) -> sessions.Timeouts:
    return sessions.Timeouts(
        timedelta(minutes=settings.console_idle_minutes),
        timedelta(minutes=settings.console_absolute_minutes),
    )


def live_session(request: Request, db: Session) -> ConsoleSession | None:
    return sessions.resolve(
        db, request.cookies.get(sessions.COOKIE), _timeouts(state.settings(request))
    )


def session_account(db: Session, row: ConsoleSession) -> StaffAccount | None:
    """The session's account while it may still act: active, granted, own password set."""
    account = db.get(StaffAccount, row.account_id)
    if account is None or not account.active or account.must_set_password:
        return None
    return account if account_backed(db, account) else None


def signed_in(request: Request, db: Session) -> tuple[ConsoleSession, StaffAccount] | None:
    row = live_session(request, db)
    if row is None or not row.verified:
        return None
    account = session_account(db, row)
    return (row, account) if account is not None else None


def staff_page(
    request: Request, db: Session, *roles: Role
) -> tuple[ConsoleSession, StaffAccount] | Response:
    """The signed-in session and account when its role may open this page; otherwise the
    answer to send instead: the sign-in page, or 403 naming the roles the page is for."""
    found = signed_in(request, db)
    if found is None:
        return redirect("/console/login")
    row, account = found
    if account.role not in roles:
        return page(
            "home.html",
            403,
            account=account,
            csrf=row.csrf,
            error="role",
            allowed=[role.value for role in roles],
        )
    return found
