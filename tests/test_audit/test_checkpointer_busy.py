"""The background checkpointer meets a database another writer holds (SQLite's lock past its
busy timeout): the tick signs nothing and logs one line without the statement, and the next tick
after the lock is gone signs the checkpoint. Before, the error ended the background task."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from sqlalchemy import func, select

from audit.events import AuditEvent
from audit.log import append
from audit.models import AuditCheckpoint
from certsvc.app import create_app
from certsvc.checkpointer import Checkpointer
from certsvc.settings import Settings, get_settings, reset_settings
from init_cache import initialised


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's own write lock
def test_a_tick_on_a_locked_database_is_retried_not_fatal(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    initialised(settings)
    monkeypatch.setenv("CERTSVC_AUDIT_CHECKPOINT_EVENTS", "1")  # any new event makes one due
    reset_settings()
    app = create_app(get_settings())  # no lifespan: no checkpointer of its own runs
    sessions = app.state.sessionmaker
    checkpointer = Checkpointer(app.state.settings, app.state.checkpoint_key, sessions)
    with sessions.begin() as db:
        append(db, AuditEvent("tester", "officer", "test.event", "x", "ok"))
    with sessions() as db:
        before = db.scalar(select(func.max(AuditCheckpoint.size)))
    path = settings.resolved_database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer, holding the lock
    try:
        with caplog.at_level(logging.ERROR, logger="certsvc.checkpointer"):
            checkpointer.tick()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    lines = [r.getMessage() for r in caplog.records if "not signed" in r.getMessage()]
    assert lines == [
        "audit checkpoint not signed: the database is busy or unreachable (OperationalError)"
    ]
    checkpointer.tick()
    with sessions() as db:
        after = db.scalar(select(func.max(AuditCheckpoint.size)))
    assert after is not None and (before is None or after > before)
    app.state.engine.dispose()
