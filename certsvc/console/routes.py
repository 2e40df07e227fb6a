"""The console's pages. Sign-in is the API's login (same account checks, same per-client limit,
same refusal events) followed by a TOTP code; every form carries a CSRF token (403 without it);
a page answers only a verified, live session of a granted account; the dashboard reads the
same domain functions as the security officer's API routes."""

from __future__ import annotations

import json
import secrets
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.trail import record
from certsvc import state
from certsvc.accounts import PASSWORD_MAX, Role, StaffAccount, authenticate
from certsvc.alert_policy import alert_policy
from certsvc.audit_keys import export_bundle
from certsvc.audit_trail import actor_of
from certsvc.console import audit_search, dashboard, security_keys, sessions, totp, web
from certsvc.console.models import ConsoleSession
from certsvc.grants import account_backed
from certsvc.routes.auth import limit_attempts, refuse_login
from common.errors import InvalidInput

router = APIRouter(prefix="/console", include_in_schema=False)
LOGIN_FIELDS = {"username": 64, "password": PASSWORD_MAX}
CODE_FIELDS = {"code": 16}
KEY_FIELDS = {"credential": 16_000}
LOGOUT_FIELDS = {"scope": 8}
STYLESHEET = files("certsvc.console").joinpath("static/console.css").read_bytes()
WEBAUTHN_SCRIPT = files("certsvc.console").joinpath("static/webauthn.js").read_bytes()
ENROL_FIELDS = {"name": 64, "code": 16, "credential": 16_000}


@router.get("/")
def home(request: Request, db: web.DbDep) -> Response:
    found = web.signed_in(request, db)
    if found is None:
        return web.redirect("/console/login")
    row, account = found
    pages = web.NAV.get(account.role)
    if pages:  # the role's first page is its home
        return web.redirect(pages[0][0])
    return web.page("home.html", account=account, csrf=row.csrf)


@router.get("/static/console.css")
def stylesheet() -> Response:
    return Response(
        STYLESHEET,
        media_type="text/css",
        headers={"Content-Security-Policy": web.CSP, "Cache-Control": "max-age=300"},
    )


@router.get("/static/webauthn.js")
def webauthn_script() -> Response:
    return Response(
        WEBAUTHN_SCRIPT,
        media_type="text/javascript",
        headers={"Content-Security-Policy": web.CSP, "Cache-Control": "max-age=300"},
    )


@router.get("/login")
def login_page() -> Response:
    """The sign-in form; its CSRF token doubles as a cookie (no session exists yet)."""
    token = secrets.token_urlsafe(32)
    response = web.page("login.html", csrf=token)
    web.set_cookie(response, sessions.LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request, db: web.DbDep) -> Response:
    form = await web.read_form(request, LOGIN_FIELDS)
    web.require_csrf(request.cookies.get(sessions.LOGIN_COOKIE), form)
    try:
        await limit_attempts(request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_429_TOO_MANY_REQUESTS:
            raise
        limited = web.page("login.html", 429, csrf=form["csrf"], error="limit")
        limited.headers.update(exc.headers or {})
        return limited
    username, password = form.get("username", ""), form.get("password", "")
    refused = await run_in_threadpool(_check_password, request, db, username, password)
    if refused is not None:
        return web.page("login.html", 401, csrf=form["csrf"], error=refused)
    account = db.scalar(select(StaffAccount).where(StaffAccount.username == username))
    assert account is not None
    text, _ = sessions.start(db, account, verified=False)
    moved = web.redirect("/console/second-factor")
    web.set_cookie(moved, sessions.COOKIE, text)
    web.clear_cookie(moved, sessions.LOGIN_COOKIE)
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
def second_factor_page(request: Request, db: web.DbDep) -> Response:
    """The security-key prompt for an account that has one; else the code form, and for an
    account without a confirmed TOTP secret, a new one shown this once."""
    row = web.live_session(request, db)
    account = web.session_account(db, row) if row is not None and not row.verified else None
    if row is None or account is None:
        return web.redirect("/console/login")
    if security_keys.keys_of(db, account) or security_keys.ever_enrolled(db, account):
        return _key_prompt(request, db, row, account)
    if totp.enrolled(db, account) is not None:
        return web.page("second_factor.html", csrf=row.csrf)
    if totp.ever_enrolled(db, account):
        return web.page("second_factor.html", 409, csrf=row.csrf, error="lost")
    secret, uri = totp.begin_enrolment(db, account, state.settings(request).console_key_file)
    return web.page("second_factor.html", csrf=row.csrf, secret=secret, uri=uri)


def _key_prompt(
    request: Request,
    db: Session,
    row: ConsoleSession,
    account: StaffAccount,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    """The security-key sign-in page with a new challenge for this session."""
    party = security_keys.party_of(str(request.base_url))
    if not security_keys.keys_of(db, account):
        return web.page("second_factor.html", 409, csrf=row.csrf, error="lost")
    if party is None:
        return web.page("second_factor.html", 409, csrf=row.csrf, error="host")
    options = security_keys.sign_in_options(db, row, account, party)
    return web.page(
        "second_factor.html",
        status_code,
        csp=web.SCRIPT_CSP,
        csrf=row.csrf,
        options=options,
        error=error,
    )


async def _factor_attempt(
    request: Request, db: Session, fields: dict[str, int]
) -> tuple[ConsoleSession, StaffAccount, dict[str, str]] | Response:
    """The password-stage session, its account and the form; or the answer to send instead
    (sign-in page, or too many attempts: the API login's limit)."""
    row = web.live_session(request, db)
    form = await web.read_form(request, fields)
    web.require_csrf(row.csrf if row is not None else None, form)
    account = web.session_account(db, row) if row is not None and not row.verified else None
    if row is None or account is None:
        return web.redirect("/console/login")
    try:
        await limit_attempts(request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_429_TOO_MANY_REQUESTS:
            raise
        return web.page("second_factor.html", 429, csrf=row.csrf, error="limit")
    return row, account, form


@router.post("/second-factor")
async def second_factor(request: Request, db: web.DbDep) -> Response:
    attempt = await _factor_attempt(request, db, CODE_FIELDS)
    if isinstance(attempt, Response):
        return attempt
    row, account, form = attempt
    if security_keys.keys_of(db, account) or security_keys.ever_enrolled(db, account):
        refuse_login(db, account.username, "TOTP code where a security key is enrolled", "console")
        return _key_prompt(request, db, row, account, 401, error="key-only")
    key_file = state.settings(request).console_key_file
    if not totp.check_code(db, account, form.get("code", "").strip(), key_file):
        refuse_login(db, account.username, "wrong second factor", via="console")
        return web.page("second_factor.html", 401, csrf=row.csrf, error="code")
    return _verified(db, row, account, "totp")


@router.post("/second-factor/key")
async def second_factor_key(request: Request, db: web.DbDep) -> Response:
    attempt = await _factor_attempt(request, db, KEY_FIELDS)
    if isinstance(attempt, Response):
        return attempt
    row, account, form = attempt
    party = security_keys.party_of(str(request.base_url))
    refused = (
        "security key used on an IP address"
        if party is None
        else security_keys.check_assertion(db, row, account, party, form.get("credential", ""))
    )
    if refused is not None:
        refuse_login(db, account.username, f"wrong second factor: {refused}", via="console")
        return _key_prompt(request, db, row, account, 401, error="key")
    return _verified(db, row, account, "security-key")


def _verified(db: Session, row: ConsoleSession, account: StaffAccount, factor: str) -> Response:
    """The second factor passed: the password-stage session ends, a new verified one starts."""
    sessions.end(db, row)
    text, _ = sessions.start(db, account, verified=True)
    record(db, actor_of(account), "console.sign_in", "console", details={"factor": factor})
    response = web.redirect("/console/")
    web.set_cookie(response, sessions.COOKIE, text)
    return response


@router.post("/logout")
async def logout(request: Request, db: web.DbDep) -> Response:
    """Sign out this browser, or (`scope=all`) every console session of the account."""
    row = web.live_session(request, db)
    form = await web.read_form(request, LOGOUT_FIELDS)
    web.require_csrf(row.csrf if row is not None else None, form)
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
    response = web.redirect("/console/login")
    web.clear_cookie(response, sessions.COOKIE)
    return response


@router.get("/dashboard")
def security_dashboard(request: Request, db: web.DbDep) -> Response:
    found = web.staff_page(request, db, Role.SECURITY_OFFICER)
    if isinstance(found, Response):
        return found
    row, account = found
    board = dashboard.build(db, alert_policy(db, state.settings(request)))
    return web.page("dashboard.html", account=account, csrf=row.csrf, board=board, d=dashboard)


def _query(request: Request, limits: dict[str, int]) -> dict[str, str]:
    """A GET form's fields; one longer than its limit is refused, naming it."""
    form = {name: request.query_params.get(name, "") for name in limits}
    for name, value in form.items():
        if len(value) > limits[name]:
            raise InvalidInput(f"{name}: at most {limits[name]} characters")
    return form


@router.get("/audit")
def audit_page(request: Request, db: web.DbDep) -> Response:
    """Audit search (the API's event query) with each event's inclusion proof checked against
    the published checkpoint, that checkpoint and its cosignatures, and the export form."""
    found = web.staff_page(request, db, Role.SECURITY_OFFICER)
    if isinstance(found, Response):
        return found
    row, account = found
    checkpoint = audit_search.published(state.checkpoint_key(request).public_note())
    context: dict[str, Any] = {"account": account, "csrf": row.csrf, "published": checkpoint}
    try:
        form = _query(request, audit_search.FIELDS)
        where = audit_search.parse_filter(db, form)
    except InvalidInput as exc:
        return web.page("audit.html", 422, error=str(exc), form={}, **context)
    events = audit_search.search(db, where, checkpoint.checkpoint if checkpoint else None)
    return web.page("audit.html", form=form, events=events, **context)


@router.get("/audit/export")
def audit_export(request: Request, db: web.DbDep) -> Response:
    """The auditor's bundle of a range of days, as `GET /api/v1/audit/export` answers it."""
    found = web.staff_page(request, db, Role.SECURITY_OFFICER)
    if isinstance(found, Response):
        return found
    try:
        form = _query(request, {"since": 10, "until": 10})
        where = audit_search.parse_filter(db, form)
    except InvalidInput as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from None
    _session, account = found
    bundle = export_bundle(db, state.settings(request), actor_of(account), where.since, where.until)
    return Response(
        json.dumps(bundle, ensure_ascii=False),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="certsvc-audit-bundle.json"',
            "Content-Security-Policy": web.CSP,
            "Cache-Control": "no-store",
        },
    )


@router.get("/security-keys")
def security_keys_page(request: Request, db: web.DbDep) -> Response:
    """The account's security keys, and the form enrolling one more (with a new challenge)."""
    found = web.staff_page(request, db, *Role)
    if isinstance(found, Response):
        return found
    return _keys_page(request, db, *found)


def _keys_page(
    request: Request,
    db: Session,
    row: ConsoleSession,
    account: StaffAccount,
    status_code: int = 200,
    error: str | None = None,
    added: str | None = None,
) -> Response:
    party = security_keys.party_of(str(request.base_url))
    options = security_keys.registration_options(db, row, account, party) if party else None
    return web.page(
        "security_keys.html",
        status_code,
        csp=web.SCRIPT_CSP,
        account=account,
        csrf=row.csrf,
        keys=security_keys.keys_of(db, account),
        fingerprint=security_keys.fingerprint,
        options=options,
        error=error,
        added=added,
    )


@router.post("/security-keys")
async def enrol_security_key(request: Request, db: web.DbDep) -> Response:
    """Enrol a security key: the holder's fresh TOTP code first (a session cookie alone
    enrols nothing; attempts share the login limit), then the key's answer to this session's
    challenge."""
    found = web.staff_page(request, db, *Role)
    if isinstance(found, Response):
        return found
    row, account = found
    form = await web.read_form(request, ENROL_FIELDS)
    web.require_csrf(row.csrf, form)
    try:
        await limit_attempts(request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_429_TOO_MANY_REQUESTS:
            raise
        return _keys_page(request, db, row, account, 429, error="limit")
    key_file = state.settings(request).console_key_file
    if not totp.check_code(db, account, form.get("code", "").strip(), key_file):
        row.challenge = None
        refuse_login(db, account.username, "wrong code enrolling a security key", "console")
        return _keys_page(request, db, row, account, 401, error="code")
    party = security_keys.party_of(str(request.base_url))
    if party is None:
        return _keys_page(request, db, row, account, 409, error="host")
    try:
        key = security_keys.register(
            db, row, account, party, form.get("credential", ""), form.get("name", "")
        )
    except InvalidInput as exc:
        return _keys_page(request, db, row, account, 422, error=str(exc))
    return _keys_page(request, db, row, account, added=key.name)
