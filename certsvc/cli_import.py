"""`certsvc import applicants FILE.csv`: bulk intake through the vault, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certify.applicant_import import import_applicants
from certsvc.cli_vault import console, operator, progress_bar, vault_and_sessions
from common.errors import InvalidInput

import_app = typer.Typer(help="Bulk intake from files.", no_args_is_help=True)


@import_app.command("applicants")
def applicants(
    file: Annotated[
        Path, typer.Argument(help="CSV with a header row: name, id_number, phone, email, address")
    ],
    errors: Annotated[
        Path | None, typer.Option(help="row error report (default FILE.errors.csv)")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option(help="utf-8 or gb18030 (default: detected)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="rows per transaction")] = 500,
) -> None:
    """Validate each row, tokenise its identifiers, store the applicant; re-run the same file
    to resume after an interruption (nothing is imported twice)."""
    if not file.is_file():
        raise InvalidInput(f"FILE: {file} is not a readable file")
    if encoding is not None and encoding.lower() not in ("utf-8", "gb18030"):
        raise InvalidInput("--encoding: utf-8 or gb18030")
    with vault_and_sessions() as (vault, sessions), progress_bar() as bar:
        task = bar.add_task(f"importing {file.name}", total=None)
        report = import_applicants(
            sessions,
            vault,
            file,
            operator(),
            errors_file=errors,
            batch_size=batch_size,
            encoding=encoding.lower() if encoding else None,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if report.resumed_after:
        console.print(f"resumed after row {report.resumed_after}")
    console.print(
        f"{report.rows} rows: {report.imported} imported, {report.duplicates} already on file, "
        f"{report.invalid} invalid"
    )
    console.print(f"row errors: {report.errors_file}")
    if report.invalid:
        raise typer.Exit(3)
