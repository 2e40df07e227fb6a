"""`certsvc calendar`: the holiday schedule the deadlines (R3) are counted in."""

from __future__ import annotations

import calendar as weekdays
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from certify.calendar_import import import_schedule
from certify.workdays import package_covers, work_calendar
from certsvc.audit_trail import operator_actor
from certsvc.cli_output import make_console
from certsvc.db import database_session
from certsvc.settings import get_settings
from common.errors import InvalidInput

calendar_app = typer.Typer(
    help="The Chinese holiday schedule working days are counted in.", no_args_is_help=True
)
console = make_console()


@calendar_app.command("import")
def import_file(
    file: Annotated[
        Path, typer.Argument(help="date,kind,name,source (docs/staff-api.md, holiday schedule)")
    ],
    over_package: Annotated[
        bool,
        typer.Option(
            "--over-package", help="use the notice's days where the calendar package differs"
        ),
    ] = False,
) -> None:
    """Import a year's holidays and adjusted workdays from the State Council's notice; used
    before the chinese-calendar package for that year. Audited; a later import replaces it."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"FILE: cannot read {file} ({exc.strerror})") from None
    actor = operator_actor()
    with database_session(get_settings().resolved_database_url, writer=True) as db:
        imported = import_schedule(db, actor, data, over_package=over_package)
    schedule = imported.schedule
    console.print(
        f"imported {schedule.year} from {schedule.source}: {len(schedule.holidays)} holiday "
        f"days, {len(schedule.workdays)} adjusted workdays"
        + (f" (replaces {imported.replaced})" if imported.replaced else "")
    )
    if imported.package_differs:
        console.print(
            f"the chinese-calendar package differs on {imported.package_differs} day(s); "
            "the notice's schedule is used"
        )


@calendar_app.command("show")
def show(year: Annotated[int, typer.Argument(min=2000, max=2100)]) -> None:
    """Working days per month of YEAR, and where the schedule comes from."""
    with database_session(get_settings().resolved_database_url) as db:
        calendar = work_calendar(db)
    imported = calendar.imported.get(year)
    if imported is not None:
        source = f"imported from {imported.source}"
    elif package_covers(year):
        source = "the chinese-calendar package"
    else:
        raise InvalidInput(
            f"YEAR: {year} is not covered; import its schedule with `certsvc calendar import`"
        )
    table = Table(title=f"{year}: working days ({source})")
    for column in ("month", "working days", "days off on weekdays", "working weekend days"):
        table.add_column(column)
    for month in range(1, 13):
        days = [date(year, month, 1) + timedelta(n) for n in range(_length(year, month))]
        working = [d for d in days if calendar.is_workday(d)]
        off = [d for d in days if d.weekday() < weekdays.SATURDAY and not calendar.is_workday(d)]
        shifted = [d for d in working if d.weekday() >= weekdays.SATURDAY]
        table.add_row(
            f"{year}-{month:02d}",
            str(len(working)),
            " ".join(f"{d.day}" for d in off),
            " ".join(f"{d.day}" for d in shifted),
        )
    console.print(table)


def _length(year: int, month: int) -> int:
    return weekdays.monthrange(year, month)[1]
