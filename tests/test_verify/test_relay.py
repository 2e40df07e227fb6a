"""The register relay: the outbox pushed into a public database of its own, which a public node
serves from; in order, once, after a crash or a lost connection, and public tables only."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, delete, func, inspect, make_url, select, text, update
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from certsvc.cli import main
from certsvc.cli_status import collect
from certsvc.db import make_engine, make_sessionmaker
from certsvc.public_app import PUBLIC_TABLES, create_public_app
from certsvc.public_static import StaticFiles
from certsvc.relay import (
    Relay,
    RelayRefused,
    init_public,
    open_public,
    relay_all,
    relay_state,
    relayed_up_to,
)
from certsvc.settings import Settings, get_settings, reset_settings
from common.db import Base
from common.dbtypes import utcnow
from common.errors import InvalidInput
from init_cache import initialised
from server_support import CERTSVC, serving
from test_vault.test_no_raw_values import database_bytes
from vault import synthetic
from verify.outbox import RegisterOutbox, RegisterOutboxHead, append, backlog
from verify_support import Demo

TABLES = [Base.metadata.tables[name] for name in PUBLIC_TABLES]


def _postgres_database(admin: Engine, template_url: str) -> Iterator[str]:
    name = f"certsvc_pub_{secrets.token_hex(8)}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        url = make_url(template_url).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def public_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty public database on the internal database's backend, dropped afterwards."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'public.db'}"
        return
    yield from _postgres_database(request.getfixturevalue("postgres_admin"), db_url)


@pytest.fixture
def public_pg_url(db_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty public database on PostgreSQL, whatever the internal backend."""
    admin = request.getfixturevalue("postgres_admin")
    yield from _postgres_database(admin, admin.url.render_as_string(hide_password=False))


def contents(rows_of: Callable[[Any], Any]) -> dict[str, list[dict[str, Any]]]:
    """Every public table's rows, in primary-key order."""
    found = {}
    for table in TABLES:
        query = select(table).order_by(*table.primary_key.columns)
        found[table.name] = [dict(row._mapping) for row in rows_of(query)]
    return found


def internal_contents(sessions: sessionmaker[Session]) -> dict[str, list[dict[str, Any]]]:
    with sessions() as db:
        return contents(lambda query: db.execute(query))


def public_contents(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return contents(lambda query: connection.execute(query))
    finally:
        engine.dispose()


def issue_and_revoke(demo: Demo, count: int = 2) -> list[str]:
    """`count` certificates issued, the last revoked; their verification ids."""
    issued = [demo.certificate(f"2020410000000{n:04d}") for n in range(count)]
    demo.revoke(issued[-1].verification_id, date(2026, 11, 30), "fraud")
    return [i.verification_id for i in issued]


def answers(url: str, demo: Demo, home: Path, ids: list[str]) -> list[str]:
    """What a public node on `url` says of each id."""
    settings = Settings(home=home, database_url=url, trust_anchors=demo.anchors)
    app = create_public_app(settings)
    try:
        with TestClient(app) as client:
            return [client.get(f"/api/v1/verify/{i}").json().get("status") for i in ids]
    finally:
        app.state.engine.dispose()


def test_a_public_node_answers_from_the_relayed_register(
    demo: Demo, public_url: str, tmp_path: Path
) -> None:
    ids = issue_and_revoke(demo)
    with demo.sessions() as db:
        waiting, _age = backlog(db)
    assert waiting > 0
    assert demo.client.get("/healthz").json()["register_outbox_backlog"] == waiting

    public = init_public(public_url)
    assert relay_all(demo.sessions, public, batch=3) == waiting
    assert answers(public_url, demo, tmp_path / "node", ids) == ["valid", "revoked"]
    assert public_contents(public_url) == internal_contents(demo.sessions)
    with demo.sessions() as db:
        assert backlog(db) == (0, None)
    health = demo.client.get("/healthz").json()
    assert (health["register_outbox_backlog"], health["register_outbox_lag_seconds"]) == (0, None)

    assert relay_all(demo.sessions, public, batch=3) == 0  # nothing new: nothing done
    later = demo.certificate("20204100000000099")
    assert relay_all(demo.sessions, public, batch=3) == 1
    assert relayed_up_to(public) == waiting + 1
    public.dispose()
    assert answers(public_url, demo, tmp_path / "node", [later.verification_id]) == ["valid"]


def test_applying_everything_again_changes_nothing(demo: Demo, public_url: str) -> None:
    issue_and_revoke(demo)
    public = init_public(public_url)
    relayed = relay_all(demo.sessions, public, batch=500)
    before = public_contents(public_url)
    # as if the watermark and the marks inside had been lost: every row comes again
    with public.begin() as connection:
        connection.execute(update(relay_state).values(relayed_id=0))
    with demo.sessions.begin() as db:
        db.execute(update(RegisterOutbox).values(relayed_at=None))
    assert relay_all(demo.sessions, public, batch=2) == relayed
    public.dispose()
    assert public_contents(public_url) == before == internal_contents(demo.sessions)


def _relay_env(demo: Demo, public_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CERTSVC_HOME": str(demo.settings.resolved_home),
        "CERTSVC_DATABASE_URL": demo.settings.resolved_database_url,
        "CERTSVC_PUBLIC_DATABASE_URL": public_url,
        **extra,
    }


def test_a_relay_killed_mid_batch_loses_and_repeats_nothing(
    demo: Demo, public_pg_url: str, postgres_admin: Engine
) -> None:
    ids = issue_and_revoke(demo, count=3)
    init_public(public_pg_url).dispose()
    env = _relay_env(demo, public_pg_url)
    holder = create_engine(public_pg_url, poolclass=NullPool)
    with holder.connect() as blocker:
        # The revocation list comes last in the batch: the relay applies the rows before it,
        # then waits on this lock, in the middle of its transaction, and is killed there.
        blocker.execute(text("LOCK TABLE public_revocation_lists IN ACCESS EXCLUSIVE MODE"))
        relay = subprocess.Popen([CERTSVC, "register", "relay"], env=env)
        database = make_url(public_pg_url).database
        waiting = text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = :db"
        )
        deadline = time.monotonic() + 120
        with postgres_admin.connect() as watch:
            while not watch.scalar(waiting, {"db": database}):
                assert relay.poll() is None, "the relay ended before reaching the lock"
                assert time.monotonic() < deadline, "the relay never reached the lock"
                time.sleep(0.1)
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=30)
        blocker.rollback()
    holder.dispose()
    assert public_contents(public_pg_url) == {name: [] for name in PUBLIC_TABLES}

    done = subprocess.run(
        [CERTSVC, "register", "relay", "--once"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert public_contents(public_pg_url) == internal_contents(demo.sessions)
    assert answers(public_pg_url, demo, demo.settings.resolved_home / "node", ids) == [
        "valid",
        "valid",
        "revoked",
    ]


def test_the_relay_waits_out_an_unreachable_public_database(
    demo: Demo, public_pg_url: str, postgres_admin: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ids = issue_and_revoke(demo)
    init_public(public_pg_url).dispose()
    name = make_url(public_pg_url).database
    with postgres_admin.connect() as connection:  # the DMZ cut off
        connection.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"))
    relay = Relay(demo.sessions, public_pg_url, batch=2, interval=0.05, max_backoff=0.2)
    caplog.set_level(logging.WARNING, logger="certsvc.relay")
    runner = threading.Thread(target=relay.run)
    runner.start()
    try:
        while caplog.text.count("unavailable") < 2:  # tried, and tried again
            assert runner.is_alive()
            time.sleep(0.05)
        with demo.sessions() as db:
            assert backlog(db)[0] > 0
        with postgres_admin.connect() as connection:  # back
            connection.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"))
        while True:  # the relay catches up on its own
            assert runner.is_alive()
            with demo.sessions() as db:
                if backlog(db)[0] == 0:
                    break
            time.sleep(0.05)
    finally:
        relay.stop.set()
        runner.join(timeout=60)
    assert public_contents(public_pg_url) == internal_contents(demo.sessions)
    node = demo.settings.resolved_home / "node"
    assert answers(public_pg_url, demo, node, ids) == ["valid", "revoked"]


def test_the_relay_stops_on_a_public_database_never_prepared(demo: Demo, public_url: str) -> None:
    with pytest.raises(RelayRefused, match="init-public"):
        open_public(public_url)
    relay = Relay(demo.sessions, public_url, batch=2, interval=0.05, max_backoff=0.2)
    with pytest.raises(RelayRefused, match="init-public"):
        relay.run()


def test_the_relay_writes_only_public_tables(demo: Demo, public_url: str) -> None:
    demo.certificate("20204100000000010")
    public = init_public(public_url)
    before = relay_all(demo.sessions, public, batch=500)
    with demo.sessions.begin() as db:
        append(db, "vault_records", {"token": "x", "ciphertext": "y"})
    with pytest.raises(RelayRefused, match="'vault_records' is not a public table"):
        relay_all(demo.sessions, public, batch=500)
    assert relayed_up_to(public) == before  # stopped before it, nothing half-applied
    with demo.sessions() as db:
        assert backlog(db)[0] == 1
    with public.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(TABLES[0])) == 1
    public.dispose()
    engine = make_engine(public_url)
    try:
        assert set(inspect(engine).get_table_names()) == {*PUBLIC_TABLES, relay_state.name}
    finally:
        engine.dispose()


def test_no_personal_value_reaches_the_public_database(
    settings: Settings,
    public_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[str] = []
    for kind in ("name", "id_number", "phone"):
        made = getattr(synthetic, kind)

        def recording(*args: Any, _made: Callable[..., str] = made) -> str:
            value = _made(*args)
            drawn.append(value)
            return value

        monkeypatch.setattr(synthetic, kind, recording)
    with pytest.raises(SystemExit) as done:
        main(["demo", "--out", str(tmp_path / "round")])
    assert done.value.code == 0
    assert len(drawn) >= 3
    internal = make_engine(settings.resolved_database_url)
    public = init_public(public_url)
    static = tmp_path / "static"
    try:
        assert relay_all(make_sessionmaker(internal), public, batch=500) > 0
        StaticFiles(settings, make_sessionmaker(internal), static).refresh()
    finally:
        internal.dispose()
        public.dispose()
    files = b"".join(p.read_bytes() for p in static.rglob("*") if p.is_file())
    assert b"revocation_list" in files and b"trust_list" in files  # the scan sees the lists
    held = database_bytes(public_url, tmp_path) + files
    manifest = json.loads((tmp_path / "round" / "manifest.json").read_text())
    assert all(entry["number"].encode() in held for entry in manifest)  # the scan sees the rows
    needles = drawn + [value[:17] for value in drawn if len(value) == 18]  # id without check digit
    for value in needles:
        assert value.encode() not in held, "a personal value is in the public database or files"


def test_the_public_database_grants_the_relay_and_the_nodes_the_public_tables_only(
    demo: Demo, postgres_admin: Engine, tmp_path: Path
) -> None:
    ids = issue_and_revoke(demo)
    relay_role, reader_role = (f"certsvc_{who}_{secrets.token_hex(4)}" for who in ("rl", "rd"))
    with postgres_admin.connect() as connection:
        for role in (relay_role, reader_role):
            connection.execute(text(f"CREATE ROLE {role} LOGIN"))
    databases = _postgres_database(
        postgres_admin, postgres_admin.url.render_as_string(hide_password=False)
    )
    owner_url = next(databases)
    try:
        as_relay, as_reader = (
            make_url(owner_url).set(username=role).render_as_string(hide_password=False)
            for role in (relay_role, reader_role)
        )
        init_public(owner_url, relay_role, reader_role).dispose()
        with create_engine(owner_url, poolclass=NullPool).begin() as owner:
            owner.execute(text("CREATE TABLE vault_records (token text, ciphertext bytea)"))
        public = make_engine(as_relay)
        try:
            assert relay_all(demo.sessions, public, batch=500) > 0
            for statement in (
                "INSERT INTO vault_records VALUES ('t', 'x')",
                "CREATE TABLE exposed (value text)",
                "DELETE FROM public_certificates",
            ):
                with (
                    pytest.raises(ProgrammingError, match="permission denied"),
                    public.begin() as connection,
                ):
                    connection.execute(text(statement))
        finally:
            public.dispose()
        reader = make_engine(as_reader)
        try:
            with (
                pytest.raises(ProgrammingError, match="permission denied"),
                reader.begin() as connection,
            ):
                connection.execute(text("UPDATE public_certificates SET status = 'valid'"))
        finally:
            reader.dispose()
        assert answers(as_reader, demo, tmp_path / "node", ids) == ["valid", "revoked"]
        with pytest.raises(InvalidInput, match="role"):
            init_public(owner_url, relay_role="x; DROP TABLE public_keys")
    finally:
        databases.close()
        with postgres_admin.connect() as connection:
            for role in (relay_role, reader_role):
                connection.execute(text(f"DROP ROLE IF EXISTS {role}"))


def test_serve_relays_while_it_runs(settings: Settings, public_url: str) -> None:
    initialised(settings)
    init_public(public_url).dispose()
    env = {**os.environ, "CERTSVC_PUBLIC_DATABASE_URL": public_url}
    with serving(env=env) as server:
        while True:  # what init published reaches the public database on its own
            health = httpx.get(f"{server.base}/healthz", timeout=5).json()
            if health["register_outbox_backlog"] == 0:
                break
            time.sleep(0.1)
    internal = make_engine(settings.resolved_database_url)
    try:
        assert public_contents(public_url) == internal_contents(make_sessionmaker(internal))
    finally:
        internal.dispose()
    assert public_contents(public_url)["public_trust_lists"]


def test_an_internal_database_restored_behind_the_public_one_is_refused_then_requeued(
    demo: Demo, public_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue_and_revoke(demo)
    public = init_public(public_url)
    relayed = relay_all(demo.sessions, public, batch=500)
    with demo.sessions.begin() as db:  # as a backup taken three changes ago would have it
        db.execute(delete(RegisterOutbox).where(RegisterOutbox.id > relayed - 3))
        db.execute(update(RegisterOutboxHead).values(last_id=relayed - 3))
    later = demo.certificate("20204100000000077")
    with pytest.raises(RelayRefused, match="restored"):
        relay_all(demo.sessions, public, batch=500)

    monkeypatch.setenv("CERTSVC_PUBLIC_DATABASE_URL", public_url)
    reset_settings()
    with pytest.raises(SystemExit) as done:
        main(["register", "requeue"])
    assert done.value.code in (0, None)
    assert relay_all(demo.sessions, public, batch=500) > 0
    public.dispose()
    assert public_contents(public_url) == internal_contents(demo.sessions)
    assert later.verification_id in {
        row["verification_id"] for row in public_contents(public_url)["public_certificates"]
    }


def test_status_names_a_relay_that_lags(
    demo: Demo, public_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.certificate("20204100000000010")
    with demo.sessions.begin() as db:  # queued an hour ago, and nothing relayed it
        db.execute(update(RegisterOutbox).values(created_at=utcnow() - timedelta(hours=1)))
    quiet = collect(demo.settings)["register_relay"]
    assert quiet["configured"] is False and quiet["backlog"] > 0 and quiet["lag_seconds"] >= 3600
    monkeypatch.setenv("CERTSVC_PUBLIC_DATABASE_URL", public_url)
    reset_settings()
    report = collect(get_settings())
    assert any(line.startswith("register relay:") for line in report["attention"])
    public = init_public(public_url)
    relay_all(demo.sessions, public, batch=500)
    public.dispose()
    report = collect(get_settings())
    assert report["register_relay"] == {"configured": True, "backlog": 0, "lag_seconds": None}
    assert not any(line.startswith("register relay:") for line in report["attention"])
