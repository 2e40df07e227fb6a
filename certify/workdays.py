"""Chinese working days (R3): public holidays and the adjusted weekend workdays.

They come from the State Council's yearly notice. The maintained `chinese-calendar` package
carries past notices, but follows a new one by weeks or months; a body that cannot wait imports
the year's schedule itself (`certsvc calendar import`), and an imported year is used before the
package. A date in a year neither covers is an error naming the import command, never a guess
from the weekday.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import chinese_calendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from certify.models import HolidaySchedule
from common.errors import InvalidInput

MAX_SPAN_DAYS = 3 * 366
SATURDAY = 5


class CalendarNotCovered(InvalidInput):
    """Neither the calendar package nor an imported schedule covers this year."""


@dataclass(frozen=True)
class YearSchedule:
    """One year's exceptions to the weekday rule, as the notice lists them."""

    year: int
    source: str
    holidays: frozenset[date]
    workdays: frozenset[date]

    def is_workday(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return day in self.workdays or day.weekday() < SATURDAY


@dataclass(frozen=True)
class WorkCalendar:
    """Working days: an imported year's schedule first, else the calendar package."""

    imported: Mapping[int, YearSchedule] = field(default_factory=dict)

    def is_workday(self, day: date) -> bool:
        schedule = self.imported.get(day.year)
        if schedule is not None:
            return schedule.is_workday(day)
        return package_is_workday(day)

    def workdays_between(self, first: date, last: date) -> int:
        """Working days from `first` to `last`, both included."""
        if last < first:
            return 0
        if (last - first).days > MAX_SPAN_DAYS:
            raise InvalidInput("dates: more than three years apart")
        days = (last - first).days + 1
        return sum(self.is_workday(first + timedelta(days=n)) for n in range(days))

    def add_workdays(self, start: date, count: int) -> date:
        """The `count`-th working day after `start` (`start` itself not counted)."""
        day, left = start, count
        while left > 0:
            day += timedelta(days=1)
            left -= self.is_workday(day)
            if (day - start).days > MAX_SPAN_DAYS:
                raise InvalidInput("count: more working days than three years hold")
        return day

    def workdays_left(self, today: date, due: date) -> int:
        """Working days after `today` up to and including `due`; negative: the working days by
        which `due` has passed (0: due today, or passed only over non-working days)."""
        if today <= due:
            return self.workdays_between(today + timedelta(days=1), due)
        return -self.workdays_between(due + timedelta(days=1), today)


def package_is_workday(day: date) -> bool:
    """What the `chinese-calendar` package says; `CalendarNotCovered` beyond its years."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        raise CalendarNotCovered(
            f"{day.isoformat()}: the Chinese holiday calendar does not cover {day.year} yet; "
            f"import the State Council's schedule for {day.year} with `certsvc calendar "
            f"import FILE`, or upgrade the chinese-calendar package"
        ) from None


def package_covers(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


def work_calendar(db: Session) -> WorkCalendar:
    """The calendar in force: every imported schedule (a few rows) over the package."""
    imported = {
        row.year: YearSchedule(
            row.year,
            row.source,
            frozenset(date.fromisoformat(d) for d in row.holidays.split()),
            frozenset(date.fromisoformat(d) for d in row.workdays.split()),
        )
        for row in db.scalars(select(HolidaySchedule))
    }
    return WorkCalendar(imported)
