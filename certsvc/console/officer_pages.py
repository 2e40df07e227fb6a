"""The officer's pages beyond the case: revocations filed and approved under dual control (who
filed it and every officer who approved it are on the page, from the signer's own approval
records), and the announcement composer: "check" runs the announcement checker on the draft,
"publish" stores it only through `publish_text`, which runs the same checker again: a text the
checker refuses is never published."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from certify.announcements import findings
from certify.issuance import approve, request_revocation
from certify.models import Batch, Revocation
from certify.publication import announcements, publish_text
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.console import web
from certsvc.console.actions import act, draw, number, post_form
from certsvc.console.models import ConsoleSession
from certsvc.routes.certify_common import contacts, staff_hosts
from certsvc.routes.certify_signing import revocation_out
from common.errors import CertsvcError, InvalidInput
from verify.codes import REVOCATION_CATEGORIES

router = APIRouter(prefix="/console", include_in_schema=False)
OFFICER = (Role.OFFICER,)
REVOCATION_FIELDS = {"number": 17, "category": 16, "reason": 500}
APPROVAL_FIELDS = {"reason": 500}
DRAFT_MAX = 20000
DRAFT_FIELDS = {"batch_id": 12, "text": DRAFT_MAX, "action": 8}
REVOCATIONS_SHOWN = 200


@router.get("/revocations")
def revocations_page(request: Request) -> Response:
    return draw(request, OFFICER, partial(_revocations, None))


def _revocations(
    error: str | None, db: Session, row: ConsoleSession, account: StaffAccount
) -> Response:
    rows = db.scalars(select(Revocation).order_by(Revocation.id.desc()).limit(REVOCATIONS_SHOWN))
    return web.page(
        "officer_revocations.html",
        422 if error else 200,
        account=account,
        csrf=row.csrf,
        revocations=[revocation_out(db, r) for r in rows],
        categories=REVOCATION_CATEGORIES,
        error=error,
    )


@router.post("/revocations")
async def post_revocation(request: Request) -> Response:
    def file(db: Session, account: StaffAccount, form: Mapping[str, str]) -> object:
        number_ = form.get("number", "").strip()
        category, reason = form.get("category", ""), form.get("reason", "")
        return request_revocation(db, actor_of(account), number_, category, reason)

    return await post_form(
        request,
        REVOCATION_FIELDS,
        OFFICER,
        file,
        "/console/revocations",
        lambda error: draw(request, OFFICER, partial(_revocations, error)),
    )


@router.post("/revocations/{revocation_id}/approval")
async def post_approval(request: Request, revocation_id: int) -> Response:
    def approved(db: Session, account: StaffAccount, form: Mapping[str, str]) -> object:
        if db.get(Revocation, revocation_id) is None:
            raise InvalidInput(f"revocation_id: no revocation {revocation_id}")
        return approve(db, actor_of(account), revocation_id, form.get("reason", ""))

    return await post_form(
        request,
        APPROVAL_FIELDS,
        OFFICER,
        approved,
        "/console/revocations",
        lambda error: draw(request, OFFICER, partial(_revocations, error)),
    )


@router.get("/announcements")
def announcements_page(request: Request) -> Response:
    return draw(request, OFFICER, partial(_composer, request, {}, None, None))


def _composer(
    request: Request,
    draft: Mapping[str, str],
    verdict: list[str] | None,
    error: str | None,
    db: Session,
    row: ConsoleSession,
    account: StaffAccount,
) -> Response:
    refused = bool(verdict) or error is not None
    return web.page(
        "officer_announcements.html",
        422 if refused else 200,
        account=account,
        csrf=row.csrf,
        batches=db.scalars(select(Batch).order_by(Batch.id.desc())).all(),
        published=list(reversed(announcements(db)))[:20],
        draft=draft,
        verdict=verdict,
        error=error,
    )


@router.post("/announcements")
async def post_announcement(request: Request) -> Response:
    """`action=check`: the checker's verdict on the draft, nothing stored (the kinds of item
    found, never the matched text); `action=publish`: published only if the checker passes it."""
    form = await web.read_form(request, DRAFT_FIELDS)
    draft = {"batch_id": form.get("batch_id", ""), "text": form.get("text", "")}

    def batch_of(form: Mapping[str, str]) -> int | None:
        return number(form, "batch_id") if form.get("batch_id") else None

    def check(db: Session, account: StaffAccount) -> list[str]:
        batch_id = batch_of(form)
        if not form.get("text", "").strip():
            raise InvalidInput(f"text: write the announcement (at most {DRAFT_MAX} characters)")
        return findings(form["text"], staff_hosts(request), contacts(request, db, batch_id))

    def publish(db: Session, account: StaffAccount) -> object:
        batch_id = batch_of(form)
        hosts, allowed = staff_hosts(request), contacts(request, db, batch_id)
        return publish_text(db, actor_of(account), batch_id, form.get("text", ""), hosts, allowed)

    publishing = form.get("action") == "publish"
    result = await run_in_threadpool(act, request, form, OFFICER, publish if publishing else check)
    if isinstance(result, Response):
        return result
    if isinstance(result, CertsvcError):
        redraw = partial(_composer, request, draft, None, str(result))
    elif publishing:
        return web.redirect("/console/announcements")
    else:
        assert isinstance(result, list)
        redraw = partial(_composer, request, draft, result, None)
    return await run_in_threadpool(draw, request, OFFICER, redraw)
