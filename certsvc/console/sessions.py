"""Console browser sessions: a random cookie, stored only as its SHA-256, with a CSRF token,
an idle and an absolute timeout. A session is born after the password, `verified` only by a new
session (a new cookie) once the second factor passed: the id that saw the password is never the
one that reaches the pages."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from certsvc.accounts import StaffAccount
from certsvc.console.models import ConsoleSession
from common.dbtypes import utcnow

COOKIE = "__Host-certsvc-console"
LOGIN_COOKIE = "__Host-certsvc-console-login"
# How stale `last_seen_at` may get before a request writes it again (fewer writes).
SEEN_RESOLUTION = timedelta(seconds=10)


@dataclass(frozen=True)
class Timeouts:
    idle: timedelta
    absolute: timedelta


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def start(db: Session, account: StaffAccount, verified: bool) -> tuple[str, ConsoleSession]:
    """A new session for `account`: the cookie's text (kept nowhere) and its row."""
    text = secrets.token_urlsafe(32)
    now = utcnow()
    row = ConsoleSession(
        id_hash=_hash(text),
        account_id=account.id,
        verified=verified,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
    )
    db.add(row)
    db.flush()
    return text, row


def resolve(
    db: Session, text: str | None, timeouts: Timeouts, now: datetime | None = None
) -> ConsoleSession | None:
    """The live session this cookie names, its idle clock reset; None when unknown, ended,
    idle too long or too old (an expired one is ended for good)."""
    if not text or len(text) > 128:
        return None
    row = db.get(ConsoleSession, _hash(text))
    if row is None or row.ended_at is not None:
        return None
    now = now or utcnow()
    if now - row.last_seen_at >= timeouts.idle or now - row.created_at >= timeouts.absolute:
        row.ended_at = now
        return None
    if now - row.last_seen_at >= SEEN_RESOLUTION:
        row.last_seen_at = now
    return row


def end(db: Session, row: ConsoleSession) -> None:
    row.ended_at = utcnow()


def end_all(db: Session, account_id: int) -> None:
    """Every live session of the account ends (sign-out everywhere, account disabled)."""
    db.execute(
        update(ConsoleSession)
        .where(ConsoleSession.account_id == account_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
