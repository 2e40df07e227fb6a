"""The security officer's alert policy from the settings and the body's work calendar."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from audit.query import AlertPolicy
from certify.workdays import CalendarNotCovered, work_calendar
from certsvc.settings import Settings


def alert_policy(db: Session, settings: Settings) -> AlertPolicy:
    """Office hours and the reveal spike as configured; working days as the certifying body's
    calendar has them (holidays, and the weekends worked in their place), Monday to Friday in
    a year it does not cover — an alert list never fails for want of a calendar."""
    calendar = work_calendar(db)

    def working_day(day: date) -> bool:
        try:
            return calendar.is_workday(day)
        except CalendarNotCovered:
            return day.weekday() < 5

    return AlertPolicy(
        (settings.office_hours_start, settings.office_hours_end),
        settings.reveal_spike,
        working_day,
    )
