"""Whether an account enrolled a console second factor since its last reset: a row missing
after such an enrolment was deleted, and the console then refuses rather than let whoever
deleted it enrol a factor of their own. Only a reset event (`certsvc.console.factor_reset`),
which takes two persons, starts the account afresh."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.models import AuditEventRow

RESET_ACTION = "console.factor_reset"


def last_reset(db: Session, username: str) -> int:
    """The index of the account's last reset event (-1: never reset)."""
    found = db.scalar(
        select(func.max(AuditEventRow.idx)).where(
            AuditEventRow.action == RESET_ACTION, AuditEventRow.object == username
        )
    )
    return -1 if found is None else int(found)


def enrolled_since_reset(db: Session, username: str, enrol_action: str) -> bool:
    """Whether the log holds an `enrol_action` event for `username` after its last reset."""
    query = select(AuditEventRow.idx).where(
        AuditEventRow.action == enrol_action,
        AuditEventRow.object == username,
        AuditEventRow.idx > last_reset(db, username),
    )
    return db.scalar(query.limit(1)) is not None
