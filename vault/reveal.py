"""Reveal (detokenise): the only way a value leaves the vault, with a stated purpose, one audit
event and one `VaultReveal` row per value, and a per-person rate limit. Callers choose who may
ask and under which limit: the `vault_revealer` role through the reveal route; the custodian
printing a certificate, for the holder's name, under the print limit.

Events are written in the caller's unit of work: the reveal is allowed only if its events
commit. A refused reveal — and one that meets a stored value failing its integrity check —
records its events with `record_refusal`, which keeps them although the refusal rolls the unit
back (`common.unit_of_work.keep`), then raises.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.events import OBJECT_MAX
from audit.trail import Attributed, event, keep_events, record
from common.db import serialise_on
from common.dbtypes import utcnow
from common.errors import NotFound
from vault._plaintext import Opened as Opened  # what `reveal` hands out, for its callers
from vault._plaintext import open_entries
from vault.errors import InvalidValue, RevealRateLimited, StoredValueCorrupt
from vault.models import VaultReveal
from vault.store import Vault

ACTION = "vault.reveal"
PURPOSE_MIN = 10
PURPOSE_MAX = 500


class Person(Attributed, Protocol):
    """Who asks, and the natural person behind the account (None: the account is its own
    person), whom limits count: more accounts give one person no more values."""

    @property
    def person(self) -> str | None: ...


def person_of(who: Person) -> str:
    return who.person or who.username


@dataclass(frozen=True)
class RevealLimit:
    values: int
    window: timedelta


# The purpose is kept in the audit log, which must never hold a personal value: a purpose that
# quotes an ID number, a phone number or an e-mail address is refused.
_PERSONAL_IN_TEXT = re.compile(r"\d{17}[\dXx]|(?<!\d)1[3-9]\d{9}(?!\d)|[\w.+-]+@[\w-]+\.[\w.]+")


def check_purpose(purpose: str) -> str:
    text = " ".join(purpose.split())
    if not PURPOSE_MIN <= len(text) <= PURPOSE_MAX:
        raise InvalidValue("purpose", f"state why, in {PURPOSE_MIN}–{PURPOSE_MAX} characters")
    # Full-width digits and spaces must not hide a number from the check.
    if _PERSONAL_IN_TEXT.search("".join(unicodedata.normalize("NFKC", text).split())):
        raise InvalidValue("purpose", "must not quote an ID number, phone number or e-mail")
    return text


def record_refusal(
    db: Session, who: Attributed, tokens: Sequence[str], reason: str, outcome: str = "refused"
) -> None:
    """One event per token asked for (one without object when none is known yet): `refused`,
    or `failed` when the vault could not answer; kept although the unit rolls back."""
    keep_events(
        db,
        [
            event(who, ACTION, token[:OBJECT_MAX], outcome=outcome, reason=reason)
            for token in tokens or [""]
        ],
    )


def reveal(
    db: Session,
    vault: Vault,
    who: Person,
    tokens: Sequence[str],
    purpose: str,
    limit: RevealLimit,
) -> dict[str, Opened]:
    """token → kind and value. Raises after recording a refusal (`record_refusal`) when over
    the limit or when a token is unknown (a `failed` event when a stored value fails its
    integrity check); otherwise the events and the reveal records are in the caller's unit, to
    commit with the values' release. Reveals by one person run one at a time (`serialise_on`),
    so parallel requests cannot all pass the count before any is written."""
    purpose = check_purpose(purpose)
    person = person_of(who)
    serialise_on(db, f"vault.reveal:{person}")
    now = utcnow()
    used, oldest = _recent(db, person, now - limit.window)
    if used + len(tokens) > limit.values:
        retry = retry_after(oldest, limit.window, now)
        reason = f"rate limit: {limit.values} values per {minutes(limit.window)} minutes"
        record_refusal(db, who, tokens, reason)
        raise RevealRateLimited(limit.values, minutes(limit.window), retry)
    try:
        opened = open_entries(db, vault.keyring.current(db), tokens)
    except StoredValueCorrupt as exc:
        record_refusal(db, who, [exc.token], "stored value failed its integrity check", "failed")
        raise
    unknown = [i for i, token in enumerate(tokens) if token not in opened]
    if unknown:
        record_refusal(db, who, [tokens[i] for i in unknown], "unknown token")
        raise NotFound(f"tokens[{unknown[0]}]: no such token in the vault")
    for token in tokens:
        record(db, who, ACTION, token, reason=purpose, details={"kind": opened[token].kind.value})
        db.add(VaultReveal(actor=who.username, person=person, token=token, revealed_at=now))
    db.flush()
    return {token: opened[token] for token in tokens}


def _recent(db: Session, person: str, since: datetime) -> tuple[int, datetime | None]:
    count, oldest = db.execute(
        select(func.count(), func.min(VaultReveal.revealed_at)).where(
            VaultReveal.person == person, VaultReveal.revealed_at > since
        )
    ).one()
    return int(count), oldest


def retry_after(oldest: datetime | None, window: timedelta, now: datetime) -> int:
    """Seconds until the oldest use in the window leaves it (at least 1)."""
    if oldest is None:
        return math.ceil(window.total_seconds())
    return max(1, math.ceil((oldest + window - now).total_seconds()))


def minutes(window: timedelta) -> int:
    """The window in whole minutes, for messages."""
    return max(1, round(window.total_seconds() / 60))
