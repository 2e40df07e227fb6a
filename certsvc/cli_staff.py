"""`certsvc staff …` and `certsvc workstation …`: provisioning from the server's shell."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audit.trail import record
from certsvc.accounts import (
    TOKEN_MAX_DAYS,
    Role,
    disable_account,
    get_account,
    list_accounts,
    revoke_api_token,
)
from certsvc.audit_trail import operator_actor
from certsvc.cli_output import make_console
from certsvc.db import database_session
from certsvc.grants import (
    SECOND_PERSON_ROLES,
    TOKEN_ISSUE,
    grant_token,
    grant_workstation,
    propose_account,
    unbacked_grants,
)
from certsvc.settings import get_settings
from certsvc.workstations import (
    disable_workstation,
    generate_workstation_key,
    list_workstations,
)

staff_app = typer.Typer(help="Staff accounts and their API tokens.", no_args_is_help=True)
grants_app = typer.Typer(help="Privilege grants and their audit events.", no_args_is_help=True)
workstation_app = typer.Typer(
    help="Workstations: designated computers, each with the person answering for it.",
    no_args_is_help=True,
)


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def _read_password(password_stdin: bool, generate: bool) -> tuple[str, bool]:
    if password_stdin and generate:
        raise typer.BadParameter("give at most one of --password-stdin and --generate-password")
    if generate:
        return secrets.token_urlsafe(18), True
    if password_stdin:
        return typer.get_text_stream("stdin").readline().rstrip("\r\n"), False
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password, False


@staff_app.command("add")
def staff_add(
    username: str,
    role: Annotated[Role, typer.Option(help="the account's one role")],
    display_name: Annotated[
        str | None, typer.Option(help="the person's name (default: the username)")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from one stdin line")
    ] = False,
    generate_password: Annotated[
        bool, typer.Option("--generate-password", help="generate one and print it once")
    ] = False,
    person: Annotated[
        str | None, typer.Option(help="the holder's personnel number (default: the username)")
    ] = None,
) -> None:
    """Propose a staff account (initial password from a hidden prompt unless told otherwise).
    The password only lets its holder set their own; a role that reveals, decides, approves
    or signs waits for a security officer's approval."""
    password, generated = _read_password(password_stdin, generate_password)
    with database_session(get_settings().resolved_database_url, writer=True) as session:
        account = propose_account(
            session, operator_actor(), username, role, password, display_name, person=person
        )
    typer.echo(f"created {account.username} ({account.role.value})")
    if account.role in SECOND_PERSON_ROLES:
        typer.echo(
            "awaiting a security officer's approval "
            f"(POST /api/v1/security/accounts/{account.username}/approve)"
        )
    if generated:
        typer.echo(f"initial password (shown only now, usable once): {password}")


@staff_app.command("list")
def staff_list() -> None:
    """Every staff account."""
    table = Table("username", "display name", "role", "active", "created")
    with database_session(get_settings().resolved_database_url) as session:
        for account in list_accounts(session):
            table.add_row(
                account.username,
                account.display_name,
                account.role.value,
                "yes" if account.active else "no",
                _when(account.created_at),
            )
    make_console().print(table)


@staff_app.command("disable")
def staff_disable(username: str) -> None:
    """Disable an account and revoke all its API tokens."""
    with database_session(get_settings().resolved_database_url, writer=True) as session:
        disable_account(session, username)
        record(session, operator_actor(), "service.account.disable", username)
    typer.echo(f"disabled {username}; its API tokens are revoked")


@staff_app.command("token")
def staff_token(
    username: str,
    days: Annotated[
        int | None,
        typer.Option(min=1, max=TOKEN_MAX_DAYS, help="validity (default: CERTSVC_API_TOKEN_DAYS)"),
    ] = None,
) -> None:
    """Issue an API token: the token alone on stdout, shown only this once."""
    settings = get_settings()
    with database_session(settings.resolved_database_url, writer=True) as session:
        account = get_account(session, username)
        days = days or settings.api_token_days
        text, issued = grant_token(session, operator_actor(), account, days, TOKEN_ISSUE)
    typer.echo(
        f"token {issued.token_id} for {username}, expires {_when(issued.expires_at)}"
        " (shown only now):",
        err=True,
    )
    typer.echo(text)


@staff_app.command("revoke-token")
def staff_revoke_token(token_id: str) -> None:
    """Revoke an API token by its public id."""
    with database_session(get_settings().resolved_database_url, writer=True) as session:
        revoke_api_token(session, token_id)
        record(session, operator_actor(), "service.api_token.revoke", token_id)
    typer.echo(f"revoked token {token_id}")


@workstation_app.command("add")
def workstation_add(
    name: str,
    custodian: Annotated[
        str, typer.Option(help="the custodian (or vault revealer) answering for it")
    ],
    key_out: Annotated[Path, typer.Option(help="where to write the private key (mode 0600)")],
) -> None:
    """Generate a workstation key pair, write the private key, register the public key."""
    written = False
    try:
        with database_session(get_settings().resolved_database_url, writer=True) as session:
            public_key = generate_workstation_key(key_out)
            written = True
            grant_workstation(session, operator_actor(), name, custodian, public_key)
    except BaseException:
        if written:
            key_out.unlink()
        raise
    typer.echo(f"registered {name} for {custodian}; private key in {key_out}")


@workstation_app.command("list")
def workstation_list() -> None:
    """Every registered workstation."""
    table = Table("name", "custodian", "active", "registered", "key fingerprint")
    with database_session(get_settings().resolved_database_url) as session:
        for workstation in list_workstations(session):
            table.add_row(
                workstation.name,
                workstation.custodian.username,
                "yes" if workstation.active else "no",
                _when(workstation.registered_at),
                workstation.fingerprint,
            )
    make_console().print(table)


@workstation_app.command("disable")
def workstation_disable(name: str) -> None:
    """Disable a workstation: its signed requests are refused from now on."""
    with database_session(get_settings().resolved_database_url, writer=True) as session:
        disable_workstation(session, name)
        record(session, operator_actor(), "service.workstation.disable", name)
    typer.echo(f"disabled workstation {name}")


@grants_app.command("check")
def grants_check() -> None:
    """Name every account, API token and workstation honoured by no grant event on record
    (a row written around the service); exit 1 when there is one."""
    with database_session(get_settings().resolved_database_url) as session:
        found = unbacked_grants(session)
    for finding in found:
        typer.echo(str(finding))
    if found:
        raise typer.Exit(1)
    typer.echo("every grant is backed by its audit event")
