"""The `certsvc` command: known errors turned into one line, and each subcommand's module
imported only when that subcommand is looked up.

Lazy on purpose: a command module imports what its command needs (the vault, the signer,
python-pkcs11 …), and `certsvc serve --public` must load the public side alone, so that a bug on a
public node cannot reach code it never loaded. Click's documented pattern for this (a group that
imports its subcommands by name) keeps one command tree, with no second parser guessing at the
arguments; `certsvc --help` still lists every command (and so imports them all).
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_group

from certsvc.db import DatabaseConfigError
from certsvc.settings import SettingsInvalid
from common.errors import CertsvcError
from common.files import restrict_new_files

# name → "module:attribute", a command function or a `typer.Typer` of subcommands; in the
# order `certsvc --help` lists them.
COMMANDS = {
    "init": "certsvc.cli_init:init",
    "serve": "certsvc.cli_server:serve",
    "status": "certsvc.cli_status:status",
    "verify-qr": "certsvc.cli_verify:verify_qr",
    "demo": "certsvc.cli_demo:demo",
    "staff": "certsvc.cli_staff:staff_app",
    "workstation": "certsvc.cli_staff:workstation_app",
    "grants": "certsvc.cli_staff:grants_app",
    "hsm": "certsvc.cli_hsm:hsm_app",
    "vault": "certsvc.cli_vault:vault_app",
    "import": "certsvc.cli_import:import_app",
    "audit": "certsvc.cli_audit:audit_app",
    "witness": "certsvc.cli_witness:witness_app",
    "register": "certsvc.cli_register:register_app",
    "calendar": "certsvc.cli_calendar:calendar_app",
    "rules": "certsvc.cli_rules:rules_app",
    "custodian": "certsvc.cli_custodian:custodian_app",
    "backup": "certsvc.cli_backup:backup",
    "restore": "certsvc.cli_backup:restore",
}


class LazyCommands(TyperGroup):
    """The top-level group: a subcommand's module is imported when the subcommand is asked for.
    (`ctx` is typed `object`: the base class's context type is Typer's private copy of Click's.)"""

    def list_commands(self, ctx: object) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: object, cmd_name: str) -> TyperCommand | TyperGroup | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        found = getattr(importlib.import_module(module), attribute)
        # Registered the way an eager app would register it, then taken out again.
        holder = typer.Typer()
        if isinstance(found, typer.Typer):
            holder.add_typer(found, name=cmd_name)
        else:
            holder.command(cmd_name)(found)
        command = get_group(holder).commands[cmd_name]
        assert isinstance(command, TyperCommand | TyperGroup)  # all that Typer builds
        return command


app = typer.Typer(
    cls=LazyCommands,
    name="certsvc",
    help="Teacher-qualification certificates: staff, keys, signing and verification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def certsvc() -> None:
    """Nothing to do before a subcommand: Typer makes a group only of an app with a callback
    (the help shown is the app's own)."""


def main(argv: list[str] | None = None) -> None:
    """Run the CLI with owner-only file modes (`common.files`); a `CertsvcError` prints one
    line on stderr (exit 2 for bad configuration, 1 otherwise) instead of a traceback that
    might show more than it should."""
    restrict_new_files()
    try:
        app(args=argv, prog_name="certsvc")
    except CertsvcError as exc:
        print(f"certsvc: error: {exc}", file=sys.stderr)
        configuration = isinstance(exc, DatabaseConfigError | SettingsInvalid)
        raise SystemExit(2 if configuration else 1) from None
