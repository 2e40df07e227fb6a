"""Importing a year's holiday schedule from the State Council's notice.

The file is a CSV with a header row `date,kind,name,source`: one row per day the notice makes a
holiday (`holiday`, weekends inside a holiday period included or not) or a working weekend day
(`workday`); `name` is the holiday the day belongs to (元旦, 春节, 清明节, 劳动节, 端午节, 中秋节,
国庆节); `source` is the notice's number, the same on every row. Checked before anything is
stored: one year, every statutory holiday present, no day listed twice, adjusted workdays on
weekends only. A year the calendar package also covers must agree with it, unless the
importer says the notice overrides the package (both are audited).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date, timedelta
from importlib.metadata import version

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.events import decode_leaf
from audit.models import AuditEventRow
from audit.trail import record
from certify.models import HolidaySchedule
from certify.workdays import (
    SATURDAY,
    YearSchedule,
    package_covers,
    package_is_workday,
    work_calendar,
)
from common.errors import Conflict, InvalidInput
from signer.actor import Actor

COLUMNS = ("date", "kind", "name", "source")
STATUTORY_HOLIDAYS = ("元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节")
KINDS = ("holiday", "workday")
MAX_BYTES = 64 * 1024
SOURCE_MAX = 200
SOURCE_EXAMPLE = "国办发明电〔2026〕7号"


IMPORT_ACTION = "certify.calendar.import"


@dataclass(frozen=True)
class Disagreement:
    """An imported year that the installed package also covers, and says otherwise about.
    `acknowledged`: the import said so knowingly (`--over-package`), against this very package
    version and these days — anything else appeared since, e.g. with a newer package."""

    year: int
    source: str
    days: list[date]
    acknowledged: bool


@dataclass(frozen=True)
class ImportedYear:
    schedule: YearSchedule
    replaced: str | None  # the source of the schedule this import replaced, if any
    package_differs: int  # days on which the package says otherwise (0 when it does not cover)


def read_schedule(data: bytes) -> YearSchedule:
    """The schedule a file holds; `InvalidInput` naming the line and column at fault."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"file: larger than {MAX_BYTES // 1024} KiB; one year's notice is small")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("file: not UTF-8 text") from None
    rows = csv.DictReader(io.StringIO(text, newline=""))
    if rows.fieldnames is None or sorted(rows.fieldnames) != sorted(COLUMNS):
        raise InvalidInput(f"header: the columns are {', '.join(COLUMNS)}")
    holidays: set[date] = set()
    workdays: set[date] = set()
    names: set[str] = set()
    sources: set[str] = set()
    for line, row in enumerate(rows, start=2):
        day = _day(row["date"], line)
        kind, name, source = row["kind"].strip(), row["name"].strip(), row["source"].strip()
        if kind not in KINDS:
            raise InvalidInput(f"line {line}, kind: holiday or workday")
        if name not in STATUTORY_HOLIDAYS:
            raise InvalidInput(f"line {line}, name: one of {', '.join(STATUTORY_HOLIDAYS)}")
        if not source or len(source) > SOURCE_MAX:
            raise InvalidInput(
                f"line {line}, source: the notice's number, e.g. 国办发明电〔2026〕7号"
            )
        if day in holidays or day in workdays:
            raise InvalidInput(f"line {line}, date: {day.isoformat()} is listed twice")
        if kind == "workday" and day.weekday() < SATURDAY:
            raise InvalidInput(
                f"line {line}, date: {day.isoformat()} is a weekday; an adjusted workday "
                f"replaces a Saturday or Sunday"
            )
        (holidays if kind == "holiday" else workdays).add(day)
        if kind == "holiday":
            names.add(name)
        sources.add(source)
    return _whole_year(holidays, workdays, names, sources)


def _day(text: str, line: int) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"line {line}, date: YYYY-MM-DD") from None


def _whole_year(
    holidays: set[date], workdays: set[date], names: set[str], sources: set[str]
) -> YearSchedule:
    years = {day.year for day in holidays | workdays}
    if len(years) != 1:
        found = ", ".join(str(y) for y in sorted(years)) or "none"
        raise InvalidInput(f"file: one year's schedule per file (years found: {found})")
    if len(sources) != 1:
        raise InvalidInput("source: one notice per file, the same number on every row")
    missing = [name for name in STATUTORY_HOLIDAYS if name not in names]
    if missing:
        raise InvalidInput(f"file: incomplete year, no holiday days for {', '.join(missing)}")
    return YearSchedule(years.pop(), sources.pop(), frozenset(holidays), frozenset(workdays))


def package_disagreements(schedule: YearSchedule) -> list[date]:
    """The days of the year on which the calendar package says otherwise (none if it does
    not cover the year)."""
    if not package_covers(schedule.year):
        return []
    day, end = date(schedule.year, 1, 1), date(schedule.year, 12, 31)
    differing = []
    while day <= end:
        if schedule.is_workday(day) != package_is_workday(day):
            differing.append(day)
        day += timedelta(days=1)
    return differing


def import_schedule(
    db: Session, actor: Actor, data: bytes, *, over_package: bool = False
) -> ImportedYear:
    """Store the file's schedule for its year (replacing an earlier import), audited."""
    schedule = read_schedule(data)
    differing = package_disagreements(schedule)
    if differing and not over_package:
        raise Conflict(
            f"file: the chinese-calendar package disagrees on {len(differing)} day(s) of "
            f"{schedule.year} (first {differing[0].isoformat()}); check the notice, and pass "
            f"--over-package if the notice is right"
        )
    row = db.get(HolidaySchedule, schedule.year, with_for_update=True)
    replaced = row.source if row is not None else None
    if row is None:
        row = HolidaySchedule(year=schedule.year)
        db.add(row)
    row.source = schedule.source
    row.holidays = " ".join(sorted(d.isoformat() for d in schedule.holidays))
    row.workdays = " ".join(sorted(d.isoformat() for d in schedule.workdays))
    row.file_sha256 = hashlib.sha256(data).hexdigest()
    row.imported_by = actor.username
    db.flush()
    record(
        db,
        actor,
        IMPORT_ACTION,
        f"calendar:{schedule.year}",
        reason=schedule.source,
        details={
            "holidays": len(schedule.holidays),
            "workdays": len(schedule.workdays),
            "replaced": replaced,
            "package_differs": len(differing),
            "package_version": package_version(),
            "file_sha256": row.file_sha256,
        },
    )
    return ImportedYear(schedule, replaced, len(differing))


def package_version() -> str:
    """The installed chinese-calendar release (the Makefile pins the newest)."""
    return version("chinese-calendar")


def imported_disagreements(db: Session) -> list[Disagreement]:
    """Every imported year on which the installed package now says otherwise: what to check
    after upgrading the package, before the next batch's deadlines are computed."""
    found = []
    for year, schedule in sorted(work_calendar(db).imported.items()):
        days = package_disagreements(schedule)
        if not days:
            continue
        leaf = db.scalar(
            select(AuditEventRow.leaf)
            .where(
                AuditEventRow.action == IMPORT_ACTION, AuditEventRow.object == f"calendar:{year}"
            )
            .order_by(AuditEventRow.idx.desc())
        )
        details = decode_leaf(leaf).get("details", {}) if leaf is not None else {}
        known = isinstance(details, dict) and (
            details.get("package_differs"),
            details.get("package_version"),
        ) == (len(days), package_version())
        found.append(Disagreement(year, schedule.source, days, known))
    return found
