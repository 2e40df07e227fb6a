"""Chinese working days (R3): public holidays and the adjusted weekend workdays come from the
maintained `chinese-calendar` package, which the State Council's yearly notice updates. A date
outside the years it covers is an error, never a guess from the weekday."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar

from common.errors import InvalidInput

MAX_SPAN_DAYS = 3 * 366


class CalendarNotCovered(InvalidInput):
    """The calendar package has no holiday data for this year yet: update it."""


def is_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        raise CalendarNotCovered(
            f"{day.isoformat()}: the Chinese holiday calendar (package chinese-calendar) does "
            f"not cover {day.year} yet; upgrade it once the State Council publishes the year's "
            f"holidays"
        ) from None


def workdays_between(first: date, last: date) -> int:
    """Working days from `first` to `last`, both included."""
    if last < first:
        return 0
    if (last - first).days > MAX_SPAN_DAYS:
        raise InvalidInput("dates: more than three years apart")
    return sum(is_workday(first + timedelta(days=n)) for n in range((last - first).days + 1))


def add_workdays(start: date, count: int) -> date:
    """The `count`-th working day after `start` (`start` itself not counted)."""
    day, left = start, count
    while left > 0:
        day += timedelta(days=1)
        left -= is_workday(day)
        if (day - start).days > MAX_SPAN_DAYS:
            raise InvalidInput("count: more working days than three years hold")
    return day


def workdays_left(today: date, due: date) -> int:
    """Working days after `today` up to and including `due`; negative: the working days by
    which `due` has passed (0: due today, or passed only over non-working days)."""
    if today <= due:
        return workdays_between(today + timedelta(days=1), due)
    return -workdays_between(due + timedelta(days=1), today)
