"""`certsvc vault …`: key versions and rotation, while the service keeps running."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.cli_output import make_console
from certsvc.db import (
    make_engine,
    make_sessionmaker,
    make_writer_sessionmaker,
    require_current_schema,
)
from certsvc.hsm import open_tokens
from certsvc.settings import get_settings
from certsvc.vault_setup import open_vault
from vault.models import VaultEntry, VaultKeyVersion
from vault.rotation import rotate as rotate_keys
from vault.store import Vault

vault_app = typer.Typer(help="The vault's keys: versions and rotation.", no_args_is_help=True)
console = make_console(stderr=True)


def operator() -> str:
    """Who runs a command from the shell, as the audit log names them."""
    return f"cli:{getpass.getuser()}"[:64]


@contextmanager
def vault_and_sessions() -> Iterator[tuple[Vault, sessionmaker[Session]]]:
    """The vault and database sessions for one command, on an initialised database. The
    sessions are writer sessions: a bulk import or a rotation reads, then writes, while the
    service may be writing too (on SQLite it must hold the write lock from the start)."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        require_current_schema(engine)
        sessions = make_sessionmaker(engine)
        tokens = open_tokens(settings, sessions)
        yield open_vault(settings, sessions, tokens), make_writer_sessionmaker(engine)
    finally:
        engine.dispose()


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@vault_app.command("status")
def status() -> None:
    """Key versions in use, their KEK on the token, and how many values each encrypts."""
    with vault_and_sessions() as (_, sessions), sessions() as db:
        versions = db.execute(
            select(VaultKeyVersion.version, VaultKeyVersion.kek_label, VaultKeyVersion.created_at)
        ).all()
        counts = dict(
            db.execute(
                select(VaultEntry.key_version, func.count()).group_by(VaultEntry.key_version)
            ).all()
        )
    table = Table("version", "KEK on token", "created", "values")
    for version, label, created in sorted(versions):
        table.add_row(str(version), label, f"{created:%Y-%m-%d %H:%M}", str(counts.get(version, 0)))
    make_console().print(table)


@vault_app.command("rotate")
def rotate(
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="values re-encrypted per transaction")
    ] = 1000,
    rewrap_only: Annotated[
        bool, typer.Option("--rewrap-only", help="replace the KEK only; values stay as they are")
    ] = False,
) -> None:
    """New KEK and data keys, values re-encrypted in batches, old keys deleted; run it again
    to finish a rotation that was interrupted."""
    settings = get_settings()
    with vault_and_sessions() as (vault, sessions), progress_bar() as bar:
        task = bar.add_task("re-encrypting", total=None)
        report = rotate_keys(
            sessions,
            vault.keyring,
            operator(),
            batch_size=batch_size,
            grace_seconds=settings.vault_rotation_grace_seconds,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            rewrap_only=rewrap_only,
        )
    action = "started and finished" if report.started else "finished"
    console.print(f"vault key version {report.version}: rotation {action}")
    console.print(f"values re-encrypted: {report.moved}")
    if report.retired:
        console.print(f"key versions deleted: {', '.join(map(str, report.retired))}")
    if report.destroyed:
        console.print(f"KEKs destroyed on the token: {', '.join(report.destroyed)}")
