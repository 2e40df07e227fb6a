"""The console's pages. Sign-in is the API's login (same account checks, same per-client limit,
same refusal events) followed by a TOTP code; every form carries a CSRF token (403 without it);
a page answers only a verified, live session of a granted account; the dashboard reads the
same domain functions as the security officer's API routes."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from datetime import timedelta
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.trail import record
from certsvc import state
from certsvc.accounts import PASSWORD_MAX, Role, StaffAccount, authenticate
from certsvc.audit_trail import actor_of
from certsvc.console import dashboard, sessions, totp
from certsvc.console.models import ConsoleSession
from certsvc.grants import account_backed
from certsvc.routes.auth import limit_attempts, refuse_login
from certsvc.settings import Settings
from common.unit_of_work import unit_of_work

router = APIRouter(prefix="/console", include_in_schema=False)
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
FIELD_MAX = {"username": 64, "password": PASSWORD_MAX, "code": 16, "csrf": 64, "scope": 8}
STYLESHEET = files("certsvc.console").joinpath("static/console.css").read_bytes()
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


def _timeouts(settings: Settings) -> sessions.Timeouts:
    return sessions.Timeouts(
        timedelta(minutes=settings.console_idle_minutes),
        timedelta(minutes=settings.console_absolute_minutes),
    )


def _page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(
        path, status.HTTP_303_SEE_OTHER, headers={"Content-Security-Policy": CSP}
    )


def _set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """`__Host-` cookies: Secure, path /, no domain. Browsers take Secure cookies from
    http://127.0.0.1 and localhost too (secure contexts); anywhere else the console needs TLS."""
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


def _clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


async def _form(request: Request) -> dict[str, str]:
    """The url-encoded form's fields (first value each), over-long ones cut to nothing."""
    try:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:  # more fields than any console form has: nothing taken (CSRF fails)
        return {}
    return {
        name: values[0] if len(values[0]) <= FIELD_MAX.get(name, 0) else ""
        for name, values in fields.items()
        if name in FIELD_MAX
    }


def _require_csrf(expected: str | None, form: dict[str, str]) -> None:
    given = form.get("csrf", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="csrf: missing or wrong form token")


def _live(request: Request, db: Session) -> ConsoleSession | None:
    return sessions.resolve(
        db, request.cookies.get(sessions.COOKIE), _timeouts(state.settings(request))
    )


def _account(db: Session, row: ConsoleSession) -> StaffAccount | None:
    """The session's account while it may still act: active, granted, own password set."""
    account = db.get(StaffAccount, row.account_id)
    if account is None or not account.active or account.must_set_password:
        return None
    return account if account_backed(db, account) else None


def _signed_in(request: Request, db: Session) -> tuple[ConsoleSession, StaffAccount] | None:
    row = _live(request, db)
    if row is None or not row.verified:
        return None
    account = _account(db, row)
    return (row, account) if account is not None else None


@router.get("/")
def home(request: Request, db: DbDep) -> Response:
    found = _signed_in(request, db)
    if found is None:
        return _redirect("/console/login")
    row, account = found
    if account.role is Role.SECURITY_OFFICER:
        return _redirect("/console/dashboard")
    return _page("home.html", account=account, csrf=row.csrf)


@router.get("/static/console.css")
def stylesheet() -> Response:
    return Response(
        STYLESHEET,
        media_type="text/css",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "max-age=300"},
    )


@router.get("/login")
def login_page() -> Response:
    """The sign-in form; its CSRF token doubles as a cookie (no session exists yet)."""
    token = secrets.token_urlsafe(32)
    response = _page("login.html", csrf=token)
    _set_cookie(response, sessions.LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request, db: DbDep) -> Response:
    form = await _form(request)
    _require_csrf(request.cookies.get(sessions.LOGIN_COOKIE), form)
    try:
        await limit_attempts(request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_429_TOO_MANY_REQUESTS:
            raise
        limited = _page("login.html", 429, csrf=form["csrf"], error="limit")
        limited.headers.update(exc.headers or {})
        return limited
    username, password = form.get("username", ""), form.get("password", "")
    refused = await run_in_threadpool(_check_password, request, db, username, password)
    if refused is not None:
        return _page("login.html", 401, csrf=form["csrf"], error=refused)
    account = db.scalar(select(StaffAccount).where(StaffAccount.username == username))
    assert account is not None
    text, _ = sessions.start(db, account, verified=False)
    moved = _redirect("/console/second-factor")
    _set_cookie(moved, sessions.COOKIE, text)
    _clear_cookie(moved, sessions.LOGIN_COOKIE)
    return moved


def _check_password(request: Request, db: Session, username: str, password: str) -> str | None:
    """None when the password is right and the account may sign in; else the refusal's kind,
    audited as the API's login audits it."""
    hasher = state.password_hasher(request)
    account = authenticate(db, username, password, hasher=hasher) if username else None
    if account is None:
        refuse_login(db, username or "-", "wrong username or password", via="console")
        return "password"
    if account.must_set_password:
        refuse_login(db, username, "the holder has not set their own password yet", "console")
        return "initial"
    if not account_backed(db, account):
        refuse_login(db, username, "account not granted", via="console")
        return "grant"
    return None


@router.get("/second-factor")
def second_factor_page(request: Request, db: DbDep) -> Response:
    """The code form; for an account without a confirmed secret, a new one shown this once."""
    row = _live(request, db)
    account = _account(db, row) if row is not None and not row.verified else None
    if row is None or account is None:
        return _redirect("/console/login")
    if totp.enrolled(db, account) is not None:
        return _page("second_factor.html", csrf=row.csrf)
    if totp.ever_enrolled(db, account):
        return _page("second_factor.html", 409, csrf=row.csrf, error="lost")
    secret, uri = totp.begin_enrolment(db, account, state.settings(request).console_key_file)
    return _page("second_factor.html", csrf=row.csrf, secret=secret, uri=uri)


@router.post("/second-factor")
async def second_factor(request: Request, db: DbDep) -> Response:
    row = _live(request, db)
    form = await _form(request)
    _require_csrf(row.csrf if row is not None else None, form)
    account = _account(db, row) if row is not None and not row.verified else None
    if row is None or account is None:
        return _redirect("/console/login")
    try:
        await limit_attempts(request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_429_TOO_MANY_REQUESTS:
            raise
        return _page("second_factor.html", 429, csrf=row.csrf, error="limit")
    key_file = state.settings(request).console_key_file
    if not totp.check_code(db, account, form.get("code", "").strip(), key_file):
        refuse_login(db, account.username, "wrong second factor", via="console")
        return _page("second_factor.html", 401, csrf=row.csrf, error="code")
    sessions.end(db, row)
    text, _ = sessions.start(db, account, verified=True)
    record(db, actor_of(account), "console.sign_in", "console")
    response = _redirect("/console/")
    _set_cookie(response, sessions.COOKIE, text)
    return response


@router.post("/logout")
async def logout(request: Request, db: DbDep) -> Response:
    """Sign out this browser, or (`scope=all`) every console session of the account."""
    row = _live(request, db)
    form = await _form(request)
    _require_csrf(row.csrf if row is not None else None, form)
    if row is not None:
        account = db.get(StaffAccount, row.account_id)
        everywhere = form.get("scope") == "all"
        if everywhere:
            sessions.end_all(db, row.account_id)
        else:
            sessions.end(db, row)
        if account is not None:
            details = {"everywhere": everywhere}
            record(db, actor_of(account), "console.sign_out", "console", details=details)
    response = _redirect("/console/login")
    _clear_cookie(response, sessions.COOKIE)
    return response


@router.get("/dashboard")
def security_dashboard(request: Request, db: DbDep) -> Response:
    found = _signed_in(request, db)
    if found is None:
        return _redirect("/console/login")
    row, account = found
    if account.role is not Role.SECURITY_OFFICER:
        return _page("home.html", 403, account=account, csrf=row.csrf, error="role")
    board = dashboard.build(db)
    return _page("dashboard.html", account=account, csrf=row.csrf, board=board, d=dashboard)
