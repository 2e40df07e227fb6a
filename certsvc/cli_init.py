"""`certsvc init`: create or upgrade the database and provision what the service needs."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from certsvc.accounts import Role
from certsvc.bootstrap import FIRST_OPTIONS, FirstHolder, initialise, refuse_first_in_simulation
from certsvc.cli_output import make_console
from certsvc.settings import get_settings
from common.errors import InvalidInput

console = make_console(stderr=True)


def init(
    admin_person: Annotated[
        str | None,
        typer.Option(
            help="with CERTSVC_HSM_SIMULATION=false, on a body without one: the first admin's "
            "personnel number"
        ),
    ] = None,
    security_officer_person: Annotated[
        str | None,
        typer.Option(help="…and the first security officer's, another person (both are needed)"),
    ] = None,
) -> None:
    """Create or upgrade the database. With the simulation: provision the demo body, tokens,
    keys, certificates, staff accounts and workstations when missing. Without it: the first
    admin and security officer, each typing an initial password (hidden; or one line each on
    standard input) that only lets them set their own. Safe to run again."""
    settings = get_settings()
    named = admin_person is not None or security_officer_person is not None
    refuse_first_in_simulation(settings, named)
    first = _first_holders(admin_person, security_officer_person) if named else None
    with console.status("initialising") as status:
        report = initialise(settings, lambda step: status.update(f"initialising: {step}"), first)
    for item in report.created:
        console.print(f"created {item}")
    if report.credentials_file is not None:
        console.print(
            f"ready: home {settings.resolved_home}; demo credentials in "
            f"{report.credentials_file} (owner-only)"
        )
        return
    console.print(
        f"ready: home {settings.resolved_home}. The first admin and security officer set their "
        "own passwords (POST /api/v1/auth/password); the admin proposes every other account "
        "(`certsvc staff add`), the security officer approves it; then enrol the USBKeys "
        "(`certsvc hsm enrol`)."
    )


def _first_holders(
    admin_person: str | None, security_officer_person: str | None
) -> dict[Role, FirstHolder]:
    """Both holders, with the initial passwords they type."""
    persons = {Role.ADMIN: admin_person, Role.SECURITY_OFFICER: security_officer_person}
    for role, person in persons.items():
        if person is None:
            raise InvalidInput(f"{FIRST_OPTIONS[role]}: name both first holders, or neither")
    return {
        role: FirstHolder(str(person), _initial_password(role, str(person)))
        for role, person in persons.items()
    }


def _initial_password(role: Role, person: str) -> str:
    """Typed by the holder at a hidden prompt (piped: the next line of standard input), never
    an argument; nothing echoes or stores it but its hash."""
    if sys.stdin.isatty():
        prompt = f"initial password of the first {role.value} (person {person}, typed by them)"
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInput(f"{FIRST_OPTIONS[role]}: no initial password on standard input")
    return password
