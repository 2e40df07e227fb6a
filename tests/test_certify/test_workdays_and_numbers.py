"""Chinese working days across Labour Day, National Day and adjusted Sunday workdays; R3 batch
dates; certificate numbers unique under concurrent issuance on both databases."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import BatchPlan, create_batch
from certify.numbers import next_number
from certify.workdays import CalendarNotCovered, WorkCalendar
from common.errors import InvalidInput
from test_certify.conftest import OFFICER, PLAN

PACKAGE = WorkCalendar()  # the calendar package alone, nothing imported


def test_labour_day_and_adjusted_sunday() -> None:
    assert PACKAGE.is_workday(date(2020, 4, 26))  # a Sunday made a workday
    assert not PACKAGE.is_workday(date(2020, 5, 4))  # a Monday in the Labour Day holiday
    assert PACKAGE.workdays_between(date(2020, 4, 24), date(2020, 5, 8)) == 9
    assert PACKAGE.add_workdays(date(2020, 4, 28), 3) == date(2020, 5, 6)


def test_national_day() -> None:
    assert PACKAGE.is_workday(date(2020, 9, 27)) and PACKAGE.is_workday(date(2020, 10, 10))
    assert PACKAGE.add_workdays(date(2020, 9, 25), 5) == date(2020, 10, 9)
    assert PACKAGE.add_workdays(date(2020, 7, 10), 30) == date(2020, 8, 21)


def test_uncovered_year() -> None:
    with pytest.raises(CalendarNotCovered, match="does not cover 2099"):
        PACKAGE.is_workday(date(2099, 1, 5))


def test_batch_dates(sessions: sessionmaker[Session]) -> None:
    short = BatchPlan(
        **{
            **PLAN.__dict__,
            "confirmation_starts": date(2020, 4, 28),
            "confirmation_ends": date(2020, 5, 6),
        }
    )
    with sessions.begin() as db:
        with pytest.raises(InvalidInput, match="4 working day"):
            create_batch(db, OFFICER, short)
        # The 30th working day after confirmation is 08-21; the round closes on 08-20.
        assert create_batch(db, OFFICER, PLAN).decision_deadline == date(2020, 8, 20)


def test_numbers_unique_under_concurrency(sessions: sessionmaker[Session]) -> None:
    numbers: list[str] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        for _ in range(10):
            with sessions.begin() as db:
                numbers.append(next_number(db, "410000", 2020))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(numbers)) == 40
    assert sorted(numbers)[-1] == "20204100000000040"
