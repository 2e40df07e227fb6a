"""A console form's action in one unit of work: the signed-in account is resolved, its role
and the form's CSRF token checked, then the domain function runs. A domain refusal rolls the
whole unit back (its kept refusal records are still written, as for the API) and comes back
as the error to show beside the form instead of a JSON answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import TypeVar

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from certify.cases import CHINA
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.console import web
from certsvc.console.models import ConsoleSession
from common.errors import CertsvcError, InvalidInput
from common.unit_of_work import unit_of_work

T = TypeVar("T")


def act(
    request: Request,
    form: Mapping[str, str],
    roles: tuple[Role, ...],
    action: Callable[[Session, StaffAccount], T],
) -> T | Response | CertsvcError:
    """The action's result; a Response when the caller may not open the page (sign-in or
    403); the domain's error when it refused (nothing of the action stored)."""
    try:
        with unit_of_work(state.writer_sessions(request)) as db:
            found = web.staff_page(request, db, *roles)
            if isinstance(found, Response):
                return found
            row, account = found
            web.require_csrf(row.csrf, form)
            return action(db, account)
    except CertsvcError as exc:
        return exc


Draw = Callable[[Session, ConsoleSession, StaffAccount], Response]


def draw(request: Request, roles: tuple[Role, ...], drawer: Draw) -> Response:
    """A page drawn in a unit of its own (after an action's unit has ended)."""
    with unit_of_work(state.writer_sessions(request)) as db:
        found = web.staff_page(request, db, *roles)
        if isinstance(found, Response):
            return found
        return drawer(db, *found)


def day(form: Mapping[str, str], field: str) -> date:
    try:
        return date.fromisoformat(form.get(field, ""))
    except ValueError:
        raise InvalidInput(f"{field}: a date, YYYY-MM-DD") from None


def moment(form: Mapping[str, str], field: str) -> datetime:
    """A browser's `datetime-local` value, read as time in China (the body's time zone)."""
    try:
        return datetime.fromisoformat(form.get(field, "")).replace(tzinfo=CHINA)
    except ValueError:
        raise InvalidInput(f"{field}: a date and time, YYYY-MM-DDTHH:MM") from None


def number(form: Mapping[str, str], field: str) -> int:
    value = form.get(field, "")
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidInput(f"{field}: a whole number")
    return int(value)


Action = Callable[[Session, StaffAccount, Mapping[str, str]], object]


async def post_form(
    request: Request,
    limits: Mapping[str, int],
    roles: tuple[Role, ...],
    action: Action,
    done: str,
    redraw: Callable[[str], Response],
) -> Response:
    """Run the form's action; on success back to `done` (post/redirect/get), on a refusal the
    page again with the refusal beside the form."""
    form = await web.read_form(request, limits)
    result = await run_in_threadpool(
        act, request, form, roles, lambda db, account: action(db, account, form)
    )
    if isinstance(result, Response):
        return result
    if isinstance(result, CertsvcError):
        return await run_in_threadpool(redraw, str(result))
    return web.redirect(done)
