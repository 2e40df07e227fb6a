"""Holiday schedules imported from the State Council's notice: checked, stored, audited, used
before the calendar package, and compared with it where both cover a year.

2026 is exported from the installed chinese-calendar package (real data); the 2027 schedule is
synthetic — built here to the notice's shape — because its notice is what the import is for."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certify.calendar_import import (
    STATUTORY_HOLIDAYS,
    import_schedule,
    imported_disagreements,
    package_disagreements,
    package_version,
    read_schedule,
)
from certify.cases import create_batch
from certify.models import HolidaySchedule
from certify.workdays import CalendarNotCovered, work_calendar
from certsvc.cli_status import collect
from certsvc.settings import Settings
from common.errors import Conflict, InvalidInput
from server_support import CERTSVC
from test_certify.conftest import OFFICER, PLAN

SOURCE = "国办发明电〔2026〕99号"
PACKAGE_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "Mid-autumn Festival": "中秋节",
    "National Day": "国庆节",
}
Row = tuple[str, str, str, str]


def _csv(rows: list[Row]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "kind", "name", "source"])
    writer.writerows(rows)
    return out.getvalue().encode()


def package_rows(year: int) -> list[Row]:
    """The package's own data for `year`, in the import format."""
    rows: list[Row] = []
    for day, name in chinese_calendar.constants.holidays.items():
        if day.year == year:
            rows.append((day.isoformat(), "holiday", PACKAGE_NAMES[name], SOURCE))
    for day, name in chinese_calendar.constants.workdays.items():
        if day.year == year:
            rows.append((day.isoformat(), "workday", PACKAGE_NAMES[name], SOURCE))
    return sorted(rows)


def synthetic_2027() -> list[Row]:
    """A made-up 2027 in the notice's shape: each holiday a run of days, a Saturday after the
    longer ones worked. Not the real 2027 schedule."""
    starts = {
        "元旦": date(2027, 1, 1),
        "春节": date(2027, 2, 6),
        "清明节": date(2027, 4, 3),
        "劳动节": date(2027, 5, 1),
        "端午节": date(2027, 6, 9),
        "中秋节": date(2027, 9, 15),
        "国庆节": date(2027, 10, 1),
    }
    lengths = {"春节": 9, "国庆节": 7, "劳动节": 5}
    rows: list[Row] = []
    for name, start in starts.items():
        days = [start + timedelta(n) for n in range(lengths.get(name, 3))]
        rows += [(d.isoformat(), "holiday", name, SOURCE) for d in days]
        if name in lengths:
            after = days[-1] + timedelta(days=1)
            while after.weekday() != 5:
                after += timedelta(days=1)
            rows.append((after.isoformat(), "workday", name, SOURCE))
    return rows


def test_a_2027_batch_works_once_its_schedule_is_imported(session: Session) -> None:
    plan = replace(
        PLAN,
        name="2027 spring",
        registration_opens=date(2027, 3, 1),
        registration_closes=date(2027, 3, 19),
        confirmation_starts=date(2027, 4, 6),
        confirmation_ends=date(2027, 4, 12),
        closes_on=date(2027, 5, 31),
    )
    with pytest.raises(CalendarNotCovered, match="certsvc calendar import"):
        create_batch(session, OFFICER, plan)
    session.rollback()
    imported = import_schedule(session, OFFICER, _csv(synthetic_2027()))
    assert imported.replaced is None and imported.package_differs == 0
    batch = create_batch(session, OFFICER, plan)
    # 30 working days after 04-12 by hand: 14 to 04-30; the synthetic 劳动节 (05-01..05-05)
    # takes 05-03..05-05, 05-08 is worked: 05-26. Weekdays alone would give 05-24.
    calendar = work_calendar(session)
    assert not calendar.is_workday(date(2027, 5, 3)) and calendar.is_workday(date(2027, 5, 8))
    assert batch.decision_deadline == date(2027, 5, 26)
    [event] = [
        decode_leaf(leaf)
        for leaf in session.scalars(
            select(AuditEventRow.leaf).where(AuditEventRow.action == "certify.calendar.import")
        )
    ]
    assert (event["object"], event["reason"]) == ("calendar:2027", SOURCE)


def test_an_import_that_contradicts_the_package_needs_to_say_so(session: Session) -> None:
    """The installed package covers 2026: an import of 2026 must agree with it, unless the
    importer says the notice is right (then the notice's days are used)."""
    rows = package_rows(2026)
    assert package_disagreements(read_schedule(_csv(rows))) == []
    assert import_schedule(session, OFFICER, _csv(rows)).package_differs == 0
    first_holiday = next(row for row in rows if row[1] == "holiday" and row[2] == "国庆节")
    moved = date.fromisoformat(first_holiday[0])
    changed = [row for row in rows if row != first_holiday]
    with pytest.raises(Conflict, match=rf"disagrees on 1 day\(s\) of 2026 \(first {moved}\)"):
        import_schedule(session, OFFICER, _csv(changed))
    imported = import_schedule(session, OFFICER, _csv(changed), over_package=True)
    assert imported.package_differs == 1 and imported.replaced == SOURCE
    assert work_calendar(session).is_workday(moved) != chinese_calendar.is_workday(moved)


def _broken(change: str) -> bytes:
    rows = synthetic_2027()
    if change == "header":
        return b"day,kind,name,source\n2027-01-01,holiday,x,y\n"
    if change == "kind":
        rows[0] = (rows[0][0], "vacation", *rows[0][2:])
    elif change == "name":
        rows[0] = (rows[0][0], "holiday", "圣诞节", SOURCE)
    elif change == "twice":
        rows.append((rows[0][0], "workday", rows[0][2], SOURCE))
    elif change == "weekday":
        rows.append(("2027-03-03", "workday", "春节", SOURCE))  # a Wednesday
    elif change == "years":
        rows.append(("2028-01-01", "holiday", "元旦", SOURCE))
    elif change == "incomplete":
        rows = [row for row in rows if row[2] != "端午节"]
    elif change == "sources":
        rows[0] = (*rows[0][:3], "国办发明电〔2026〕1号")
    elif change == "date":
        rows[0] = ("2027-02-30", *rows[0][1:])
    return _csv(rows)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("header", "header: the columns are date, kind, name, source"),
        ("kind", "line 2, kind: holiday or workday"),
        ("name", "line 2, name: one of " + ", ".join(STATUTORY_HOLIDAYS)),
        ("twice", "is listed twice"),
        ("weekday", "2027-03-03 is a weekday"),
        ("years", "one year's schedule per file (years found: 2027, 2028)"),
        ("incomplete", "incomplete year, no holiday days for 端午节"),
        ("sources", "one notice per file"),
        ("date", "line 2, date: YYYY-MM-DD"),
    ],
)
def test_a_malformed_schedule_is_refused_naming_what_is_wrong(change: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        read_schedule(_broken(change))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_calendar_commands(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    schedule = tmp_path / "2027.csv"
    schedule.write_bytes(_csv(synthetic_2027()))
    uncovered = subprocess.run(
        [CERTSVC, "calendar", "show", "2027"], capture_output=True, text=True, check=False
    )
    assert uncovered.returncode == 1 and "certsvc calendar import" in uncovered.stderr
    imported = subprocess.run(
        [CERTSVC, "calendar", "import", str(schedule)], capture_output=True, text=True, check=False
    )
    assert imported.returncode == 0, imported.stderr
    assert f"imported 2027 from {SOURCE}" in imported.stdout
    shown = subprocess.run(
        [CERTSVC, "calendar", "show", "2027"],
        capture_output=True,
        text=True,
        check=False,
        env={"COLUMNS": "200", **dict(__import__("os").environ)},
    )
    assert shown.returncode == 0, shown.stderr
    assert f"imported from {SOURCE}" in shown.stdout
    assert "2027-02" in shown.stdout and "2027-12" in shown.stdout
    with sessions() as db:
        assert work_calendar(db).imported[2027].source == SOURCE


def test_the_installed_calendar_package_is_the_one_the_makefile_pins() -> None:
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    pinned = re.search(r"^CHINESE_CALENDAR := (\S+)$", makefile, re.MULTILINE)
    assert pinned is not None and package_version() == pinned.group(1)


def test_status_notices_an_imported_year_the_package_contradicts(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """Both cover 2026: an import that agrees is quiet; one that disagrees knowingly
    (--over-package, this package version) is listed; a disagreement nobody acknowledged — as
    after upgrading the package past a year imported before — needs the operator's attention."""
    rows = package_rows(2026)
    with sessions.begin() as db:
        import_schedule(db, OFFICER, _csv(synthetic_2027()))  # the package does not cover it
        import_schedule(db, OFFICER, _csv(rows))
        assert imported_disagreements(db) == []
    national = [row for row in rows if row[1] == "holiday" and row[2] == "国庆节"]
    with sessions.begin() as db:
        import_schedule(db, OFFICER, _csv([r for r in rows if r != national[0]]), over_package=True)
        [known] = imported_disagreements(db)
    assert (known.year, known.acknowledged, known.days) == (
        2026,
        True,
        [date.fromisoformat(national[0][0])],
    )
    calendar_lines = [line for line in collect(settings)["attention"] if "calendar" in line]
    assert calendar_lines == []

    with sessions.begin() as db:
        stored = db.get_one(HolidaySchedule, 2026)
        stored.holidays = " ".join(d for d in stored.holidays.split() if d != national[1][0])
    report = collect(settings)
    [entry] = report["calendar"]
    assert entry["acknowledged"] is False and len(entry["days"]) == 2
    [line] = [line for line in report["attention"] if "calendar" in line]
    assert line.startswith("calendar 2026: the imported schedule") and package_version() in line
