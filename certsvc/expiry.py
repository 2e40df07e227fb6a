"""What expires, and the alerts that say so in time: key certificates, the body's root and staff
API tokens, at 90, 30 and 7 days before the end.

Each threshold an object crosses is one audit event of kind alert (action `alert.expiry`), made
once per object and threshold however often the check runs: by `certsvc status`, and hourly by
the service itself. An API token is warned only at thresholds shorter than its whole life — a
90-day token would otherwise be "expiring" the moment it is issued.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from audit.trail import record
from certsvc.accounts import ApiToken, StaffAccount
from certsvc.audit_trail import SYSTEM_ROLE
from common.dbtypes import utcnow
from common.errors import CertsvcError
from common.unit_of_work import unit_of_work
from signer.actor import Actor
from signer.models import KeyPurpose, KeyStatus, SigningKey

THRESHOLDS = (90, 30, 7)
ALERT_ACTION = "alert.expiry"
ALERTER = Actor("certsvc-expiry", 0, SYSTEM_ROLE)
WATCH_SECONDS = 3600.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Expiry:
    """One object nearing its end: `threshold` is the smallest of `THRESHOLDS` it is within."""

    what: str
    name: str
    object: str
    expires: datetime
    days_left: int
    threshold: int

    @property
    def alert_object(self) -> str:
        return f"{self.object}@{self.threshold}d"


def expiring(db: Session, now: datetime) -> list[Expiry]:
    """Everything in use that ends within the largest threshold, soonest first."""
    horizon = now + timedelta(days=max(THRESHOLDS))
    found: list[Expiry] = []
    keys = db.scalars(
        select(SigningKey).where(
            SigningKey.status != KeyStatus.RETIRED,
            SigningKey.certificate_revoked_at.is_(None),
            SigningKey.not_after <= horizon,
        )
    )
    for key in keys:
        root = key.purpose is KeyPurpose.ROOT
        what = "root certificate" if root else "key certificate"
        name = f"{key.label} ({key.purpose.value})"
        found += _within(what, name, f"key:{key.token_serial}/{key.label}", key.not_after, now)
    tokens = db.execute(
        select(StaffAccount.username, ApiToken.token_id, ApiToken.created_at, ApiToken.expires_at)
        .join(ApiToken, ApiToken.account_id == StaffAccount.id)
        .where(
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > now,
            ApiToken.expires_at <= horizon,
            StaffAccount.active.is_(True),
        )
    )
    for username, token_id, created, expires in tokens:
        life = (expires - created).days
        name = f"{token_id} of {username}"
        found += _within("API token", name, f"api-token:{token_id}", expires, now, life)
    return sorted(found, key=lambda item: item.expires)


def _within(
    what: str, name: str, obj: str, expires: datetime, now: datetime, life: int | None = None
) -> list[Expiry]:
    days = (expires - now).days
    crossed = [t for t in THRESHOLDS if days < t and (life is None or t < life)]
    if not crossed:
        return []
    return [Expiry(what, name, obj, expires, days, min(crossed))]


def raise_alerts(db: Session, now: datetime) -> list[Expiry]:
    """Record the alert of each threshold crossed and not yet alerted, in `db`'s transaction;
    the new ones."""
    new = []
    for item in expiring(db, now):
        seen = db.scalar(
            select(AuditEventRow.idx).where(
                AuditEventRow.action == ALERT_ACTION, AuditEventRow.object == item.alert_object
            )
        )
        if seen is not None:
            continue
        record(
            db,
            ALERTER,
            ALERT_ACTION,
            item.alert_object,
            reason=f"{item.what} {item.name} expires in {item.days_left} days",
            details={
                "what": item.what,
                "threshold_days": item.threshold,
                "expires": item.expires.isoformat(),
            },
        )
        new.append(item)
    return new


def counts(items: list[Expiry]) -> dict[int, int]:
    """How many objects are within each threshold: what the staff `/healthz` shows."""
    return {t: sum(1 for item in items if item.days_left < t) for t in THRESHOLDS}


async def watch(sessions: sessionmaker[Session]) -> None:
    """The service's own hourly check; a failure is logged and tried again next hour."""
    while True:
        try:
            await asyncio.to_thread(_check, sessions)
        except (CertsvcError, SQLAlchemyError) as exc:
            logger.error("expiry alerts not recorded: %s", exc)
        await asyncio.sleep(WATCH_SECONDS)


def _check(sessions: sessionmaker[Session]) -> None:
    with unit_of_work(sessions) as db:
        raise_alerts(db, utcnow())
