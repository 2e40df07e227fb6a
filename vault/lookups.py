"""Exact-match lookups, limited and watched per person.

A lookup by value is a reveal in disguise: with the birth date, sex and region an applicant's
case shows, a few hundred candidate ID numbers find the real one, and a masked phone number
plus ten thousand candidates finds the number. So lookups count against a per-person limit
like reveals (serialised per person, so parallel batches cannot all pass the count), each
batch is an audit event with its hits and misses, and a person whose misses in the window
reach the alert level raises a `security.alert` event the security officer's report shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.trail import event, keep_events, record
from common.db import serialise_on
from common.dbtypes import utcnow
from vault.errors import LookupRateLimited
from vault.models import VaultLookup
from vault.reveal import Person, minutes, person_of, retry_after

ACTION = "vault.lookup"
ALERT = "security.alert"


@dataclass(frozen=True)
class LookupLimit:
    values: int
    window: timedelta
    alert_misses: int


def admit_lookup(db: Session, who: Person, values: int, limit: LookupLimit) -> None:
    """Take the person's lookup lock and check the limit for a batch of `values`; over it,
    the refusal is kept on record and `LookupRateLimited` (429) raised."""
    person = person_of(who)
    serialise_on(db, f"{ACTION}:{person}")
    now = utcnow()
    used, _, oldest = _recent(db, person, now - limit.window)
    if used + values > limit.values:
        reason = f"rate limit: {limit.values} values per {minutes(limit.window)} minutes"
        refusal = event(
            who, ACTION, "vault", outcome="refused", reason=reason, details={"values": values}
        )
        keep_events(db, [refusal])
        raise LookupRateLimited(
            limit.values, minutes(limit.window), retry_after(oldest, limit.window, now)
        )


def record_lookup(db: Session, who: Person, values: int, misses: int, limit: LookupLimit) -> None:
    """The batch's audit event (values, hits, misses) and its count toward the limit; the
    alert event when this batch brings the person's misses in the window to the alert level."""
    person = person_of(who)
    now = utcnow()
    _, missed_before, _ = _recent(db, person, now - limit.window)
    db.add(
        VaultLookup(
            person=person, actor=who.username, values=values, misses=misses, looked_up_at=now
        )
    )
    details = {"values": values, "found": values - misses, "misses": misses}
    record(db, who, ACTION, "vault", details=details)
    missed = missed_before + misses
    if missed_before < limit.alert_misses <= missed:
        record(
            db,
            who,
            ALERT,
            f"person:{person}",
            reason=f"{missed} lookup misses in {minutes(limit.window)} minutes: values "
            "guessed one after another?",
            details={"kind": "lookup_misses", "misses": missed, "person": person},
        )
    db.flush()


def _recent(db: Session, person: str, since: datetime) -> tuple[int, int, datetime | None]:
    values, misses, oldest = db.execute(
        select(
            func.coalesce(func.sum(VaultLookup.values), 0),
            func.coalesce(func.sum(VaultLookup.misses), 0),
            func.min(VaultLookup.looked_up_at),
        ).where(VaultLookup.person == person, VaultLookup.looked_up_at > since)
    ).one()
    return int(values), int(misses), oldest
