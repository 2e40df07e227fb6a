"""The admin's console: staff accounts with the state of each grant (in force, awaiting its
second person, without a grant on record, disabled), proposing an account, registering a
workstation (a browser's P-256 key or the CLI's Ed25519 key) and allowing a USBKey on it, and
the custody register with its handovers. Each action calls the function the admin API calls
(`certsvc.grants`, `signer.custody`): an admin proposes, only a security officer who is another
person makes a signing, deciding or revealing account count, or resets a second factor."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from certsvc import state
from certsvc.accounts import DISPLAY_NAME_MAX, Role, StaffAccount, list_accounts
from certsvc.audit_trail import actor_of
from certsvc.console import web
from certsvc.console.factor_reset import propose_reset
from certsvc.console.models import ConsoleSession
from certsvc.grants import (
    SECOND_PERSON_ROLES,
    account_backed,
    account_pending,
    grant_workstation,
    propose_account,
    workstation_backed,
)
from certsvc.routes.hsm_tokens import allow_on_workstation
from certsvc.workstations import WORKSTATION_ROLES, list_workstations
from common.errors import CertsvcError, InvalidInput
from signer.custody import custody_backed, list_handovers, list_tokens
from signer.models import TokenWorkstation

router = APIRouter(prefix="/console", include_in_schema=False)
HOME = "/console/admin"
ACCOUNT_FIELDS = {"username": 32, "display_name": DISPLAY_NAME_MAX, "role": 32, "person": 64}
WORKSTATION_FIELDS = {"name": 64, "custodian": 32, "public_key_pem": 4096}
TOKEN_PLACE_FIELDS = {"token": 32, "workstation": 64}
RESET_FIELDS = {"username": 32}
web.NAV[Role.ADMIN] = ((HOME, "账户与保管", "Accounts and custody"),)


@dataclass(frozen=True)
class AccountView:
    account: StaffAccount
    state: str  # granted | awaiting | unbacked | disabled


def _state(db: Session, account: StaffAccount) -> str:
    if not account.active:
        return "disabled"
    if account_backed(db, account):
        return "granted"
    return "awaiting" if account_pending(db, account) else "unbacked"


def _render(
    db: Session, row: ConsoleSession, account: StaffAccount, status_code: int = 200, **extra: Any
) -> Response:
    accounts = list_accounts(db)
    names = {a.id: a.username for a in accounts}
    places: dict[str, list[str]] = {}
    for place in db.scalars(select(TokenWorkstation).order_by(TokenWorkstation.workstation_name)):
        places.setdefault(place.token_serial, []).append(place.workstation_name)
    return web.page(
        "admin.html",
        status_code,
        account=account,
        csrf=row.csrf,
        accounts=[AccountView(a, _state(db, a)) for a in accounts],
        roles=[role.value for role in Role],
        second_person=sorted(role.value for role in SECOND_PERSON_ROLES),
        holders=[a.username for a in accounts if a.active and a.role in WORKSTATION_ROLES],
        workstations=[(w, workstation_backed(db, w)) for w in list_workstations(db)],
        tokens=[(t, custody_backed(db, t), places.get(t.serial, [])) for t in list_tokens(db)],
        handovers=list_handovers(db),
        names=names,
        **extra,
    )


@router.get("/admin")
def admin_page(request: Request, db: web.DbDep, done: str = "") -> Response:
    found = web.staff_page(request, db, Role.ADMIN)
    if isinstance(found, Response):
        return found
    row, account = found
    shown = done if done in ("registered", "allowed", "reset-proposed") else ""
    return _render(db, row, account, done=shown)


async def _act(
    request: Request,
    db: Session,
    limits: dict[str, int],
    action: Callable[[StaffAccount, dict[str, str]], str | dict[str, Any]],
) -> Response:
    """An admin's form: signed in, CSRF token right; the action runs in a savepoint, so a
    refusal leaves nothing half-stored and shows the page again with the message naming the
    field. A string result is where to go; a mapping is shown once on the page."""
    found = web.staff_page(request, db, Role.ADMIN)
    if isinstance(found, Response):
        return found
    row, account = found
    form = await web.read_form(request, limits)
    web.require_csrf(row.csrf, form)
    try:
        with db.begin_nested():
            result = action(account, form)
    except CertsvcError as exc:
        return _render(db, row, account, exc.status_code, error=str(exc))
    if isinstance(result, str):
        return web.redirect(f"{HOME}?done={result}")
    return _render(db, row, account, **result)


@router.post("/admin/accounts")
async def propose(request: Request, db: web.DbDep) -> Response:
    hasher = state.password_hasher(request)

    def act(admin: StaffAccount, form: dict[str, str]) -> dict[str, Any]:
        if form.get("role", "") not in {role.value for role in Role}:
            raise InvalidInput("role: choose one of the listed roles")
        initial = secrets.token_urlsafe(18)
        proposed = propose_account(
            db,
            actor_of(admin),
            form.get("username", ""),
            form["role"],
            initial,
            form.get("display_name") or None,
            person=form.get("person") or None,
            hasher=hasher,
        )
        return {"proposed": proposed, "initial_password": initial}

    return await _act(request, db, ACCOUNT_FIELDS, act)


@router.post("/admin/workstations")
async def register(request: Request, db: web.DbDep) -> Response:
    def act(admin: StaffAccount, form: dict[str, str]) -> str:
        if not form.get("public_key_pem"):
            raise InvalidInput("public_key_pem: paste the workstation's public key (PEM)")
        grant_workstation(
            db,
            actor_of(admin),
            form.get("name", ""),
            form.get("custodian", ""),
            form["public_key_pem"].replace("\r\n", "\n"),
        )
        return "registered"

    return await _act(request, db, WORKSTATION_FIELDS, act)


@router.post("/admin/token-workstations")
async def allow_token(request: Request, db: web.DbDep) -> Response:
    def act(admin: StaffAccount, form: dict[str, str]) -> str:
        allow_on_workstation(
            db, actor_of(admin), form.get("token", ""), form.get("workstation", "")
        )
        return "allowed"

    return await _act(request, db, TOKEN_PLACE_FIELDS, act)


@router.post("/admin/factor-resets")
async def propose_factor_reset(request: Request, db: web.DbDep) -> Response:
    """A lost phone or security key: the reset waits for a security officer's approval."""

    def act(admin: StaffAccount, form: dict[str, str]) -> str:
        propose_reset(db, admin, form.get("username", ""))
        return "reset-proposed"

    return await _act(request, db, RESET_FIELDS, act)
