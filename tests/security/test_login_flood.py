"""A flood of login attempts refused by the rate limit (429) must not write the audit log: each
client's attempts become one summary event per minute, with the count, and a flood from many
addresses writes a bounded number of events. Real app, real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.log import size
from audit.models import AuditEventRow
from certsvc.accounts import Role
from certsvc.login_refusals import MAX_CLIENTS, RefusedLogins
from service_helpers import MakeStaff
from verify.ratelimit import WINDOW_SECONDS

FLOOD = 300


def _in_a_fresh_minute() -> None:
    """Limits and summaries count per clock minute: start where the whole flood fits in one."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < 20:
        time.sleep(left + 0.1)


def _refusal_summaries(sessions: sessionmaker[Session], start: int) -> list[dict[str, object]]:
    with sessions() as db:
        leaves = db.scalars(
            select(AuditEventRow.leaf)
            .where(AuditEventRow.idx >= start, AuditEventRow.action == "service.login")
            .order_by(AuditEventRow.idx)
        )
        decoded = [decode_leaf(leaf) for leaf in leaves]
    return [d for d in decoded if d["reason"] == "too many login attempts"]


def test_a_login_flood_writes_one_event_per_client_and_minute(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    _in_a_fresh_minute()
    member = make_staff(Role.REGISTRAR)
    state = client.app.state  # type: ignore[attr-defined]
    limit = state.settings.login_attempts_per_minute
    attempt = {"username": member.username, "password": "not the password"}
    for _ in range(limit):
        assert client.post("/api/v1/auth/token", json=attempt).status_code == 401
    with sessions() as db:
        before = size(db)

    codes = {client.post("/api/v1/auth/token", json=attempt).status_code for _ in range(FLOOD)}

    assert codes == {429}
    with sessions() as db:
        assert size(db) == before, "a refused attempt wrote the audit log"
    assert state.refused_logins.flush(state.writer_sessions, everything=True) == 1
    [summary] = _refusal_summaries(sessions, before)
    details: dict[str, object] = summary["details"]  # type: ignore[assignment]
    assert details["attempts"] == FLOOD
    assert len(str(details["client"])) == 16
    # The client is a pseudonym, never its address, nor the name typed.
    assert "testclient" not in str(summary) and member.username not in str(summary)
    assert (summary["actor"], summary["outcome"]) == ("unknown", "refused")


def test_a_flood_from_many_addresses_writes_a_bounded_number_of_events(
    sessions: sessionmaker[Session],
) -> None:
    now = [1_800_000_000.0]
    refused = RefusedLogins(clock=lambda: now[0])
    addresses = [f"198.51.{n // 250}.{n % 250}" for n in range(3 * MAX_CLIENTS)]
    for _ in range(2):
        for address in addresses:
            refused.count(address)
        refused.count("2001:db8::1")
        refused.count("2001:db8::2")  # the same /64: the same client
    with sessions() as db:
        before = size(db)

    assert refused.flush(sessions) == 0  # the minute is not over: nothing is written yet
    now[0] += WINDOW_SECONDS
    written = refused.flush(sessions)

    summaries = _refusal_summaries(sessions, before)
    assert written == len(summaries) == MAX_CLIENTS + 1
    named = [s["details"] for s in summaries if "client" in s["details"]]  # type: ignore[operator]
    others = [s["details"] for s in summaries if "clients" in s["details"]]  # type: ignore[operator]
    assert len(named) == MAX_CLIENTS and len(others) == 1
    total = sum(int(d["attempts"]) for d in named + others)  # type: ignore[index]
    assert total == 2 * len(addresses) + 4
    assert others[0]["clients"] == len(addresses) + 1 - MAX_CLIENTS  # type: ignore[index]
    assert not any("198.51." in str(s) or "2001:db8" in str(s) for s in summaries)
    assert refused.flush(sessions) == 0  # written once
