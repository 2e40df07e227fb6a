"""The `certsvc` command: sub-apps registered here, known errors turned into one line."""

from __future__ import annotations

import sys

import typer

from certsvc.cli_audit import audit_app
from certsvc.cli_backup import register as register_backup
from certsvc.cli_custodian import custodian_app
from certsvc.cli_demo import demo
from certsvc.cli_hsm import hsm_app
from certsvc.cli_import import import_app
from certsvc.cli_server import init, serve
from certsvc.cli_staff import staff_app, workstation_app
from certsvc.cli_vault import vault_app
from certsvc.cli_verify import verify_qr
from certsvc.db import DatabaseConfigError
from certsvc.settings import SettingsInvalid
from common.errors import CertsvcError

app = typer.Typer(
    name="certsvc",
    help="Teacher-qualification certificates: staff, keys, signing and verification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(init)
app.command("serve")(serve)
app.command("verify-qr")(verify_qr)
app.command("demo")(demo)
app.add_typer(staff_app, name="staff")
app.add_typer(workstation_app, name="workstation")
app.add_typer(hsm_app, name="hsm")
app.add_typer(vault_app, name="vault")
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")
app.add_typer(custodian_app, name="custodian")
register_backup(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a `CertsvcError` prints one line on stderr (exit 2 for bad configuration,
    1 otherwise) instead of a traceback that might show more than it should."""
    try:
        app(args=argv, prog_name="certsvc")
    except CertsvcError as exc:
        print(f"certsvc: error: {exc}", file=sys.stderr)
        configuration = isinstance(exc, DatabaseConfigError | SettingsInvalid)
        raise SystemExit(2 if configuration else 1) from None
