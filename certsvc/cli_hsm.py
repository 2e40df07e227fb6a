"""`certsvc hsm …`: the USBKeys — status, SO unblock, and the simulation's USB bay."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.accounts import StaffAccount
from certsvc.cli_output import make_console
from certsvc.db import (
    database_session,
    make_engine,
    make_sessionmaker,
    require_current_schema,
)
from certsvc.hsm import open_tokens
from certsvc.settings import get_settings
from common.errors import CertsvcError
from hsm_sim import UsbKeyBay
from hsm_sim.bay import OPERATIONS
from hsm_sim.state import FAULTS
from signer.custody import find_token, list_tokens
from signer.models import HsmToken
from signer.tokens import Pkcs11Tokens

hsm_app = typer.Typer(
    help="USBKeys: status, PIN unblock, simulated plug and faults.", no_args_is_help=True
)
console = make_console()


class NotSimulated(CertsvcError):
    """A bay command on a real module."""


@contextmanager
def _tokens() -> Iterator[tuple[Pkcs11Tokens, sessionmaker[Session]]]:
    """Token access and database sessions for one command, on an initialised database."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        require_current_schema(engine)
        sessions = make_sessionmaker(engine)
        yield open_tokens(settings, sessions), sessions
    finally:
        engine.dispose()


def _registered(name: str) -> HsmToken:
    """The registered USBKey a command names, by label or serial: a name that matches none is
    an error, never a new entry in the simulation's state."""
    with database_session(get_settings().resolved_database_url) as db:
        return find_token(db, name, "USBKEY")


def _bay() -> UsbKeyBay:
    settings = get_settings()
    if not settings.hsm_simulation:
        raise NotSimulated(
            "this command drives the USBKey simulation; CERTSVC_HSM_SIMULATION is off"
        )
    return UsbKeyBay(settings.hsm_dir)


@hsm_app.command("status")
def status() -> None:
    """Registered tokens: custodian, inserted or not, PIN locked or not."""
    with _tokens() as (access, sessions):
        live = {s.serial: s for s in access.statuses()}
        with sessions() as db:
            tokens: list[HsmToken] = list_tokens(db)
            names = {a.id: a.username for a in db.scalars(select(StaffAccount))}
    table = Table("label", "serial", "custodian", "inserted", "PIN")
    for token in tokens:
        state = live.get(token.serial)
        table.add_row(
            token.label,
            token.serial,
            names.get(token.custodian_id or -1, ""),
            "yes" if state else "no",
            "" if state is None else ("locked" if state.pin_locked else "ok"),
        )
    console.print(table)


USBKEY_ARG = typer.Argument(metavar="USBKEY", help="the USBKey's label or serial")


@hsm_app.command("unblock")
def unblock(usbkey: Annotated[str, USBKEY_ARG]) -> None:
    """Unblock a locked USBKey with its SO PIN and set a new user PIN (both asked, hidden)."""
    token = _registered(usbkey)
    so_pin: str = typer.prompt("SO PIN", hide_input=True)
    new_pin: str = typer.prompt("New user PIN", hide_input=True, confirmation_prompt=True)
    with _tokens() as (access, _):
        access.unblock_pin(token.serial, so_pin, new_pin)
    console.print(f"USBKey {token.label}: unblocked, new user PIN set")


@hsm_app.command("unplug")
def unplug(usbkey: Annotated[str, USBKEY_ARG]) -> None:
    """Simulation: pull the USBKey out."""
    bay, token = _bay(), _registered(usbkey)
    bay.unplug(token.serial)
    console.print(f"USBKey {token.label}: unplugged")


@hsm_app.command("replug")
def replug(usbkey: Annotated[str, USBKEY_ARG]) -> None:
    """Simulation: insert the USBKey again."""
    bay, token = _bay(), _registered(usbkey)
    bay.replug(token.serial)
    console.print(f"USBKey {token.label}: inserted")


@hsm_app.command("latency")
def latency(
    usbkey: Annotated[str, USBKEY_ARG],
    milliseconds: Annotated[float | None, typer.Argument(help="omit to use the default")] = None,
) -> None:
    """Simulation: slow every operation on the USBKey down."""
    bay, token = _bay(), _registered(usbkey)
    bay.set_latency(token.serial, milliseconds)
    console.print(
        f"USBKey {token.label}: latency {milliseconds if milliseconds is not None else 'default'}"
    )


@hsm_app.command("fault")
def fault(
    usbkey: Annotated[str, USBKEY_ARG],
    error: Annotated[str, typer.Option(help=f"one of {', '.join(FAULTS)}")],
    operation: Annotated[str, typer.Option(help=f"one of {', '.join(OPERATIONS)}")] = "*",
    skip: Annotated[int, typer.Option(min=0, help="matching operations to let through first")] = 0,
    unplug_after: Annotated[
        bool, typer.Option("--unplug", help="the key is gone afterwards")
    ] = False,
) -> None:
    """Simulation: arm a one-shot fault raising a real PKCS#11 error."""
    bay, token = _bay(), _registered(usbkey)
    try:
        bay.arm_fault(token.serial, operation, error, skip=skip, unplug=unplug_after)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"USBKey {token.label}: fault armed")


@hsm_app.command("change-pin")
def change_pin(usbkey: Annotated[str, USBKEY_ARG]) -> None:
    """Replace a USBKey's user PIN (old and new asked, hidden), e.g. after an SO unblock."""
    token = _registered(usbkey)
    old_pin: str = typer.prompt("Current user PIN", hide_input=True)
    new_pin: str = typer.prompt("New user PIN", hide_input=True, confirmation_prompt=True)
    with _tokens() as (access, _):
        access.change_pin(token.serial, old_pin, new_pin)
    console.print(f"USBKey {token.label}: user PIN changed")
