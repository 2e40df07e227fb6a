"""`certsvc rules`: the eligibility rule table (R0) approvals and signatures obey."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from certify.eligibility import (
    NATIONAL_VERSION,
    RuleTable,
    load_table,
    table_version,
    version_in_force,
)
from certsvc.audit_trail import operator_actor
from certsvc.cli_output import make_console
from certsvc.db import database_session
from certsvc.settings import get_settings
from common.errors import InvalidInput

rules_app = typer.Typer(
    help="Eligibility rules per qualification type (degree, Mandarin, subjects, age, "
    "physical examination).",
    no_args_is_help=True,
)
console = make_console()


@rules_app.command("load")
def load(
    file: Annotated[
        Path, typer.Argument(help="TOML in the shape of certify/data/rules-national.toml")
    ],
) -> None:
    """Load a province's rule table (its announcement's values): checked against the national
    minimums, audited, stored as the next version; batches created from now on take it."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"FILE: cannot read {file} ({exc.strerror})") from None
    with database_session(get_settings().resolved_database_url, writer=True) as db:
        row = load_table(db, operator_actor(), data)
        version, name, document = row.version, row.name, row.document
    console.print(f"loaded rule table version {version}: {name} ({document})")


@rules_app.command("show")
def show(
    version: Annotated[
        int | None,
        typer.Option("--version", min=0, help="a stored version (0: national minimums)"),
    ] = None,
) -> None:
    """The rule table in force for new batches (or version N), each rule with its source."""
    with database_session(get_settings().resolved_database_url) as db:
        shown = version_in_force(db) if version is None else version
        table = table_version(db, shown)
    label = "national minimums" if shown == NATIONAL_VERSION else f"version {shown}"
    console.print(_table(table, f"{label}: {table.name} — {table.document}"))


def _table(table: RuleTable, title: str) -> Table:
    out = Table(title=title)
    for column in ("rule", "requires", "source"):
        out.add_column(column, overflow="fold")
    for code, rules in table.qualifications.items():
        out.add_row(f"{code}.degree", f"{rules.degree} or higher", rules.degree_source)
        out.add_row(f"{code}.subjects", " ".join(sorted(rules.subjects)), rules.subjects_source)
    out.add_row("mandarin.minimum", f"{table.mandarin_minimum} or higher", table.mandarin_source)
    for subject, grade in sorted(table.mandarin_by_subject.items()):
        out.add_row(
            f"mandarin.by_subject.{subject}",
            f"{grade} or higher",
            table.mandarin_by_subject_source,
        )
    out.add_row("age.minimum", str(table.age_minimum), table.age_source)
    out.add_row("age.maximum", str(table.age_maximum), table.age_source)
    out.add_row(
        "physical.required", "pass" if table.physical_required else "-", table.physical_source
    )
    if table.round is not None:
        window = f"{table.round.registration_opens} to {table.round.registration_closes}"
        out.add_row("round.registration", window, table.round.source)
        out.add_row("round.closes_on", str(table.round.closes_on), table.round.source)
    return out
