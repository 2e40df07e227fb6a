"""Login attempts refused by the rate limit (429), counted in memory and written to the audit
log as one summary event per client per minute, with the count — not one event each.

Anyone can send login attempts; writing one audit row per refused attempt would let a flood
fill the log and hold the database's write lock (SQLite has one). Here a refused attempt costs a
counter increment; once its minute is over, each client's count becomes one event
(`service.login`, refused, "too many login attempts", `details.attempts`). At most
`MAX_CLIENTS` clients are named a minute; beyond them one more event sums up the rest, so even
a flood from many addresses writes a bounded number of rows. Each worker process counts its own
attempts and writes its own summaries.

A client is named by a pseudonym: an HMAC of its rate-limit key under a key this process draws
at start and never keeps, so the log — published and kept for years — links one client's
attempts within a worker's lifetime but can never be turned back into an address.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append_many
from common.errors import CertsvcError
from verify.ratelimit import WINDOW_SECONDS, client_key

logger = logging.getLogger(__name__)
MAX_CLIENTS = 100
FLUSH_SECONDS = 10.0
REASON = "too many login attempts"


class RefusedLogins:
    """Counts of refused login attempts per (minute, client), until written."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._counts: dict[int, Counter[str]] = {}
        self._overflow: dict[int, tuple[set[str], int]] = {}

    def count(self, address: str) -> None:
        """One more refused attempt from `address`: in memory only."""
        minute = int(self._clock() // WINDOW_SECONDS)
        client = self._pseudonym(address)
        with self._lock:
            counts = self._counts.setdefault(minute, Counter())
            if client in counts or len(counts) < MAX_CLIENTS:
                counts[client] += 1
                return
            others, attempts = self._overflow.get(minute, (set(), 0))
            if len(others) < 100_000:
                others.add(client)
            self._overflow[minute] = (others, attempts + 1)

    def flush(self, sessions: sessionmaker[Session], everything: bool = False) -> int:
        """Write the summaries of the minutes that are over (all of them when `everything`, at
        shutdown) in one transaction; how many events were written. What cannot be written
        stays counted, for the next try."""
        now_minute = int(self._clock() // WINDOW_SECONDS)
        with self._lock:
            done = sorted(m for m in self._counts if everything or m < now_minute)
            taken = [(m, self._counts.pop(m), self._overflow.pop(m, None)) for m in done]
        events = [
            event
            for minute, counts, overflow in taken
            for event in _events(minute, counts, overflow)
        ]
        if not events:
            return 0
        try:
            with sessions.begin() as db:
                append_many(db, events)
        except (SQLAlchemyError, CertsvcError):
            with self._lock:
                for minute, counts, overflow in taken:
                    self._counts.setdefault(minute, Counter()).update(counts)
                    if overflow is not None:
                        others, attempts = self._overflow.get(minute, (set(), 0))
                        self._overflow[minute] = (others | overflow[0], attempts + overflow[1])
            raise
        for event in events:
            logger.warning(
                "login attempts refused by the rate limit: %s in the minute from %s",
                event.details["attempts"],
                event.details["minute"],
                extra={"event": "service.login", "outcome": "refused", "reason": REASON},
            )
        return len(events)

    async def run(self, sessions: sessionmaker[Session]) -> None:
        """Write each minute's summaries soon after it ends; a failure is retried."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await asyncio.to_thread(self.flush, sessions)
            except (SQLAlchemyError, CertsvcError) as exc:
                logger.error("refused logins not written to the audit log yet: %s", exc)

    def close(self, sessions: sessionmaker[Session]) -> None:
        """At shutdown: write every count, the current minute's too."""
        try:
            self.flush(sessions, everything=True)
        except (SQLAlchemyError, CertsvcError) as exc:
            logger.error("refused logins lost at shutdown, not written: %s", exc)

    def _pseudonym(self, address: str) -> str:
        digest = hmac.new(self._secret, client_key(address).encode(), hashlib.sha256)
        return digest.hexdigest()[:16]


def _events(
    minute: int, counts: Counter[str], overflow: tuple[set[str], int] | None
) -> list[AuditEvent]:
    """One event per client named, one more for the clients beyond `MAX_CLIENTS`."""
    when = datetime.fromtimestamp(minute * WINDOW_SECONDS, UTC).strftime("%Y-%m-%dT%H:%MZ")
    details: list[dict[str, str | int]] = [
        {"minute": when, "client": client, "attempts": attempts}
        for client, attempts in sorted(counts.items())
    ]
    if overflow is not None:
        details.append({"minute": when, "clients": len(overflow[0]), "attempts": overflow[1]})
    return [
        AuditEvent("unknown", "staff", "service.login", "api", "refused", reason=REASON, details=d)
        for d in details
    ]
