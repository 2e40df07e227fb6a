"""`certsvc hsm …`: the USBKeys — enrolment of a vendor's tokens, status, SO unblock, and the
simulation's USB bay."""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.accounts import StaffAccount
from certsvc.audit_trail import operator_actor
from certsvc.cli_output import make_console
from certsvc.db import (
    database_session,
    make_engine,
    make_sessionmaker,
    require_current_schema,
)
from certsvc.enrol import Enrolment, EnrolRefused, TokenRole, enrol, module_slots
from certsvc.hsm import open_tokens
from certsvc.renewal import find_key, renew_certificate, token_pin_source
from certsvc.settings import Settings, get_settings
from common.errors import CertsvcError, InvalidInput
from hsm_sim import UsbKeyBay
from hsm_sim.bay import OPERATIONS
from hsm_sim.state import FAULTS
from signer.custody import find_token, list_tokens
from signer.models import HsmToken, KeyPurpose
from signer.tokens import Pkcs11Tokens

hsm_app = typer.Typer(
    help="USBKeys: enrolment, certificate renewal, status, PIN unblock, simulated plug and faults.",
    no_args_is_help=True,
)
console = make_console()


class NotSimulated(CertsvcError):
    """A bay command on a real module."""


@contextmanager
def _tokens(
    settings: Settings | None = None,
) -> Iterator[tuple[Pkcs11Tokens, sessionmaker[Session]]]:
    """Token access and database sessions for one command, on an initialised database."""
    settings = settings or get_settings()
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


@hsm_app.command("enrol")
def enrol_command(
    module: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="the vendor's PKCS#11 module (default CERTSVC_PKCS11_MODULE)",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="label or serial of the token to enrol; omit to list them")
    ] = None,
    role: Annotated[TokenRole | None, typer.Option(help="what the token is for")] = None,
    custodian: Annotated[
        str | None, typer.Option(help="who holds it (root and signing tokens)")
    ] = None,
    workstation: Annotated[
        str | None, typer.Option(help="their registered workstation it is used on")
    ] = None,
    adopt: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PURPOSE=LABEL",
            help="certify the key pair already on the token under LABEL instead of making one",
        ),
    ] = None,
    pin_file: Annotated[
        Path | None, typer.Option(dir_okay=False, help="owner-only file holding the token's PIN")
    ] = None,
    root_pin_file: Annotated[
        Path | None, typer.Option(dir_okay=False, help="owner-only file holding the root's PIN")
    ] = None,
) -> None:
    """Enrol a token initialised with the vendor's tool (CERTSVC_HSM_SIMULATION=false): without
    --token, list the module's tokens and free slots; with it, make (or adopt) the role's keys,
    have the root certify them, register custodian and workstation. PINs are asked for without
    echo, read from --pin-file / --root-pin-file, or piped one per line on standard input."""
    settings = get_settings()
    if settings.hsm_simulation:
        raise EnrolRefused(
            "CERTSVC_HSM_SIMULATION is on: `certsvc init` provisions simulated USBKeys; "
            "enrolment is for a vendor's tokens, with the simulation off"
        )
    if module is not None:
        settings = settings.model_copy(update={"pkcs11_module": str(module)})
    if token is None:
        _list_slots(settings)
        return
    if role is None:
        raise InvalidInput("--role: say what the token is for (root, signing, audit or vault)")
    request = Enrolment(token, role, custodian, workstation, _adoptions(adopt or []))
    pin = read_pin(pin_file, "--pin-file", f"PIN of token {token}")
    root_pin = None
    if role in (TokenRole.SIGNING, TokenRole.AUDIT):
        root_pin = read_pin(
            root_pin_file, "--root-pin-file", "PIN of the root token (its custodian)"
        )
    with _tokens(settings) as (access, sessions):
        made = enrol(settings, sessions, access, request, pin, root_pin, operator_actor())
    for item in made:
        console.print(f"enrolled {item}")
    if settings.pkcs11_module != get_settings().pkcs11_module:
        console.print(f"set CERTSVC_PKCS11_MODULE={settings.pkcs11_module} for the service")


def _list_slots(settings: Settings) -> None:
    entries = module_slots(settings.pkcs11_module)
    table = Table("slot", "label", "serial", "manufacturer", "model")
    free = 0
    for entry in entries:
        if entry.serial is None:
            free += 1
            continue
        table.add_row(str(entry.slot), entry.label, entry.serial, entry.manufacturer, entry.model)
    console.print(table)
    console.print(f"free slots (no token, or not initialised): {free}")


def _adoptions(given: list[str]) -> tuple[tuple[KeyPurpose, str], ...]:
    adopted = []
    purposes = [p.value for p in KeyPurpose]
    for item in given:
        purpose, _, label = item.partition("=")
        if purpose not in purposes or not label:
            raise InvalidInput(f"--adopt: PURPOSE=LABEL, PURPOSE one of {', '.join(purposes)}")
        adopted.append((KeyPurpose(purpose), label))
    return tuple(adopted)


def read_pin(path: Path | None, option: str, prompt: str) -> str:
    """A PIN from an owner-only file, a hidden prompt at a terminal, or the next line of
    standard input — never from an argument (shell history, `ps`)."""
    if path is not None:
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError:
            raise InvalidInput(f"{option}: cannot read {path}") from None
        if stat.S_IMODE(mode) & 0o077:
            raise InvalidInput(f"{option}: {path} must be readable by its owner only")
        pin = text.splitlines()[0].strip() if text.strip() else ""
    elif sys.stdin.isatty():
        pin = str(typer.prompt(prompt, hide_input=True))
    else:
        pin = sys.stdin.readline().rstrip("\r\n")
    if not pin:
        raise InvalidInput(f"PIN: none given ({prompt})")
    return pin


@hsm_app.command("renew-certificate")
def renew_certificate_command(
    key: Annotated[str, typer.Argument(metavar="KEY", help="the key's id, label, or USBKEY/LABEL")],
    new_key: Annotated[
        bool, typer.Option("--new-key", help="make a new key on the same token and retire this one")
    ] = False,
    pin_file: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="owner-only file holding the key token's PIN"),
    ] = None,
    root_pin_file: Annotated[
        Path | None, typer.Option(dir_okay=False, help="owner-only file holding the root's PIN")
    ] = None,
) -> None:
    """Re-issue a key's certificate from the root (same key, or --new-key) and publish the new
    trust list; what the key signed before keeps verifying. PINs as for `enrol`: the key
    token's (unless the service holds it: audit checkpoint keys), then the root's."""
    settings = get_settings()
    with _tokens(settings) as (access, sessions):
        with sessions() as db:
            found = find_key(db, key)
            key_id, label, service_token = found.id, found.label, token_pin_source(db, found)
        token_pin = None
        if service_token is None:
            token_pin = read_pin(pin_file, "--pin-file", f"PIN of the USBKey carrying {label}")
        root_pin = read_pin(root_pin_file, "--root-pin-file", "PIN of the root token")
        renewed = renew_certificate(
            settings, sessions, access, key_id, root_pin, token_pin, operator_actor(), new_key
        )
    console.print(
        f"key {renewed.label}: certificate valid until {renewed.not_after:%Y-%m-%d}; "
        "trust list published"
    )
