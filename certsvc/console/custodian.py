"""The key custodian's console: the USBKeys in their custody (present, locked, tries left, each
key's certificate validity and usage against its limit), opening and closing a signing session
with the PIN, signing a batch's ready decisions, issuing its certificates one by one with
progress, and the signed PDFs. Every action is a POST signed by the browser's workstation key
(`certsvc.console.proof`) and calls the function the API route calls, with its checks and
audit events. The PIN goes from the form to the token: never stored, logged, echoed or put in
a URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from certify.issuance import ISSUED, issuable
from certify.models import Application, Batch, Certificate, Decision
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.console import web
from certsvc.console.models import ConsoleSession
from certsvc.console.proof import proven_workstation
from certsvc.routes.certificates_pdf import signed_pdf
from certsvc.routes.certify_signing import issue_batch, sign_batch
from certsvc.routes.signing_sessions import close_signing_session, open_signing_session
from certsvc.workstations import Workstation
from common.dbtypes import utcnow
from common.errors import InvalidInput
from common.unit_of_work import end_before_job
from signer.custody import find_token, list_tokens
from signer.models import SigningKey, TokenWorkstation

router = APIRouter(prefix="/console", include_in_schema=False)
HOME = "/console/custodian"
SCRIPT = files("certsvc.console").joinpath("static/workstation.js").read_bytes()
SESSION_FIELDS = {"token": 32, "key": 64, "pin": 64}
CLOSE_FIELDS = {"token": 32}
BATCH_FIELDS = {"batch": 12}
ISSUE_FIELDS = {"batch": 12, "application": 12}
PDF_FIELDS = {"number": 17}
BATCHES_SHOWN = 20
# What the page may say an action did: a known word and counts, nothing else from the URL.
DONE_RE = re.compile(r"opened|closed|signed-[0-9]{1,6}-refused-[0-9]{1,6}|issued-[0-9]{1,6}")
web.NAV[Role.CUSTODIAN] = ((HOME, "签名与发证", "Signing and issue"),)


@dataclass(frozen=True)
class KeyView:
    label: str
    purpose: str
    status: str
    not_after: datetime
    expired: bool
    used: int
    limit: int | None


@dataclass(frozen=True)
class TokenView:
    serial: str
    label: str
    present: bool
    locked: bool
    tries_left: int | None
    workstations: list[str]
    keys: list[KeyView]
    session_key: str | None


@dataclass(frozen=True)
class BatchView:
    id: int
    name: str
    ready: int
    issuable: list[int]
    certificates: list[tuple[str, str]]


@router.get("/static/workstation.js")
def script() -> Response:
    return Response(
        SCRIPT,
        media_type="text/javascript",
        headers={"Content-Security-Policy": web.CSP, "Cache-Control": "max-age=300"},
    )


@router.get("/custodian")
def custodian_page(request: Request, db: web.DbDep, done: str = "") -> Response:
    found = web.staff_page(request, db, Role.CUSTODIAN)
    if isinstance(found, Response):
        return found
    row, account = found
    return web.page(
        "custodian.html",
        csp=web.SCRIPT_CSP,
        account=account,
        csrf=row.csrf,
        tokens=_tokens(request, db, account),
        batches=_batches(db),
        done=done if DONE_RE.fullmatch(done) else "",
    )


def _tokens(request: Request, db: Session, account: StaffAccount) -> list[TokenView]:
    """The USBKeys in the account's custody as the token module reports them now."""
    tokens = state.tokens(request)
    live = {status.serial: status for status in tokens.statuses()}
    held = {
        s.token.serial: s.key_label
        for s in state.signing_sessions(request).held_by(account.username)
    }
    now = utcnow()
    views = []
    for token in list_tokens(db):
        if token.custodian_id != account.id:
            continue
        status = live.get(token.serial)
        keys = db.scalars(
            select(SigningKey)
            .where(SigningKey.token_serial == token.serial)
            .order_by(SigningKey.label)
        )
        places = db.scalars(
            select(TokenWorkstation.workstation_name).where(
                TokenWorkstation.token_serial == token.serial
            )
        )
        views.append(
            TokenView(
                serial=token.serial,
                label=token.label,
                present=status is not None,
                locked=status is not None and status.pin_locked,
                tries_left=tokens.tries_left(status, token.pin_failures) if status else None,
                workstations=sorted(places),
                keys=[
                    KeyView(
                        key.label,
                        key.purpose.value,
                        key.status.value,
                        key.not_after,
                        key.not_after <= now,
                        key.usage_count,
                        key.usage_limit,
                    )
                    for key in keys
                ],
                session_key=held.get(token.serial),
            )
        )
    return views


def _batches(db: Session) -> list[BatchView]:
    """The newest batches with decisions to sign, certificates to issue or issued ones."""
    unsigned = dict(
        db.execute(
            select(Application.batch_id, func.count())
            .join(Decision, Decision.application_id == Application.id)
            .where(Decision.signed_at.is_(None))
            .group_by(Application.batch_id)
        ).all()
    )
    views = []
    for batch in db.scalars(select(Batch).order_by(Batch.id.desc()).limit(BATCHES_SHOWN)):
        certificates = db.execute(
            select(Certificate.number, Certificate.masked_name)
            .join(Application, Application.id == Certificate.application_id)
            .where(Application.batch_id == batch.id, Certificate.status == ISSUED)
            .order_by(Certificate.number)
        ).all()
        view = BatchView(
            batch.id,
            batch.name,
            unsigned.get(batch.id, 0),
            issuable(db, batch.id),
            [(number, masked) for number, masked in certificates],
        )
        if view.ready or view.issuable or view.certificates:
            views.append(view)
    return views


async def _signed_action(
    request: Request, db: Session, limits: dict[str, int]
) -> tuple[ConsoleSession, StaffAccount, Workstation, dict[str, str]] | Response:
    """A custodian's signed form: signed in, CSRF token right, proven workstation."""
    found = web.staff_page(request, db, Role.CUSTODIAN)
    if isinstance(found, Response):
        return found
    row, account = found
    form = await web.read_form(request, limits)
    web.require_csrf(row.csrf, form)
    workstation = await proven_workstation(request, db, row, account)
    return row, account, workstation, form


def _number(form: dict[str, str], field: str) -> int:
    value = form.get(field, "")
    if not value.isdigit():
        raise InvalidInput(f"{field}: a whole number")
    return int(value)


def _next(done: str) -> JSONResponse:
    return JSONResponse({"next": f"{HOME}?done={done}"}, headers={"Cache-Control": "no-store"})


@router.post("/custodian/session")
async def open_session(request: Request, db: web.DbDep) -> Response:
    found = await _signed_action(request, db, SESSION_FIELDS)
    if isinstance(found, Response):
        return found
    _, account, workstation, form = found
    if not form.get("pin"):
        raise InvalidInput("pin: the USBKey's PIN is required")
    token = find_token(db, form.get("token", ""), "token")
    await run_in_threadpool(
        open_signing_session,
        request,
        db,
        account,
        workstation,
        token.serial,
        form.get("key", ""),
        form["pin"],
    )
    return _next("opened")


@router.post("/custodian/session/close")
async def close_session(request: Request, db: web.DbDep) -> Response:
    found = await _signed_action(request, db, CLOSE_FIELDS)
    if isinstance(found, Response):
        return found
    _, account, workstation, form = found
    close_signing_session(request, db, account, workstation, form.get("token", ""), "token")
    return _next("closed")


@router.post("/custodian/decisions")
async def sign_decisions(request: Request, db: web.DbDep) -> Response:
    found = await _signed_action(request, db, BATCH_FIELDS)
    if isinstance(found, Response):
        return found
    _, account, workstation, form = found
    batch_id = _number(form, "batch")
    end_before_job(db)
    report = await run_in_threadpool(
        sign_batch,
        request,
        state.writer_sessions(request),
        actor_of(account, workstation),
        batch_id,
    )
    refused = len(report.refused) + report.not_attempted
    return _next(f"signed-{len(report.signed)}-refused-{refused}")


@router.post("/custodian/issue")
async def issue_one(request: Request, db: web.DbDep) -> Response:
    """One application's certificate: the page issues a batch one request per certificate,
    so its progress bar counts real work."""
    found = await _signed_action(request, db, ISSUE_FIELDS)
    if isinstance(found, Response):
        return found
    _, account, workstation, form = found
    batch_id, application_id = _number(form, "batch"), _number(form, "application")
    end_before_job(db)
    report = await run_in_threadpool(
        issue_batch,
        request,
        state.writer_sessions(request),
        actor_of(account, workstation),
        batch_id,
        [application_id],
    )
    issued = report.issued if report is not None else []
    return JSONResponse({"issued": issued}, headers={"Cache-Control": "no-store"})


@router.post("/custodian/pdf")
async def pdf(request: Request, db: web.DbDep) -> Response:
    found = await _signed_action(request, db, PDF_FIELDS)
    if isinstance(found, Response):
        return found
    _, account, workstation, form = found
    number = form.get("number", "")
    if not number:
        raise InvalidInput("number: the certificate number is required")
    end_before_job(db)
    document = await run_in_threadpool(
        signed_pdf, request, state.writer_sessions(request), actor_of(account, workstation), number
    )
    return Response(
        document,
        media_type="application/pdf",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{number}.pdf"',
        },
    )
