"""`certsvc init` once per test process and configuration, copied into each test that asks.

`initialise` makes USBKeys on SoftHSM, their keys and certificates, accounts and the first
signed lists: seconds of work that hundreds of tests would repeat with the same result. The
first test of a process to ask for a configuration runs the real `initialise` and its home and
database are kept as a snapshot; later tests get a copy: the home's files (the two that name
the home's path rewritten) and the database (SQLite's backup API, PostgreSQL's
`CREATE DATABASE … TEMPLATE`). A test that asks twice, a home that is not empty, or a
production configuration gets the real `initialise`, so tests of `init` itself still test it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from certsvc import bootstrap
from certsvc.bootstrap import InitReport, initialise
from certsvc.settings import Settings

# The files `initialise` writes that hold the home's absolute path.
PATH_FILES = ("credentials.json", "hsm/softhsm2.conf")
# A copy's events and checkpoint are as old as its snapshot: past this age a test would see a
# body whose log the checkpointer had neglected (`certsvc status` asks for attention past ten
# checkpoint intervals), so the snapshot is taken again.
MAX_AGE_SECONDS = 300
TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = :database AND pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class _Snapshot:
    home: Path  # a copy of the home `initialise` wrote
    original_home: str  # the path it was written for, as its files name it
    database: str  # an SQLite file or a PostgreSQL database name
    admin_url: str | None  # the PostgreSQL server's, to drop it
    report: InitReport
    taken: float  # time.monotonic() when it was taken


_snapshots: dict[str, _Snapshot] = {}
_served: set[str] = set()  # the tests given a body
_directory: Path | None = None


def _key(settings: Settings) -> str:
    """The configuration: the backend, the settings but for the places, and the demo's
    USBKeys (a test may provision more)."""
    backend = make_url(settings.resolved_database_url).get_backend_name()
    kept = settings.model_dump(mode="json", exclude={"home", "database_url"})
    return f"{backend}:{sorted(kept.items())!r}:{bootstrap.DEMO_TOKENS!r}"


def _admin_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def _postgres(url: str, *statements: str, database: str | None = None) -> None:
    """`statements` run on `url`'s server, outside any database of a test."""
    engine = create_engine(_admin_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement), {"database": database})
    finally:
        engine.dispose()


def _sqlite_copy(source: str, target: str) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _sqlite_path(settings: Settings) -> str:
    database = make_url(settings.resolved_database_url).database
    assert database is not None
    return database


def _take(settings: Settings, report: InitReport) -> _Snapshot:
    global _directory
    if _directory is None:
        _directory = Path(tempfile.mkdtemp(prefix="certsvc-init-cache-"))
    place = _directory / secrets.token_hex(4)
    home = settings.resolved_home
    url = make_url(settings.resolved_database_url)
    inside = {Path(_sqlite_path(settings)).name} if url.get_backend_name() == "sqlite" else set()
    shutil.copytree(
        home,
        place / "home",
        symlinks=True,
        ignore=lambda d, names: [
            n for n in names if Path(d) == home and (n in inside or n.endswith(("-wal", "-shm")))
        ],
    )
    if url.get_backend_name() == "sqlite":
        database = str(place / "certsvc.db")
        _sqlite_copy(_sqlite_path(settings), database)
    else:
        database = f"certsvc_g_{secrets.token_hex(6)}"
        _postgres(  # a template has no other connection: the test's pool reconnects
            settings.resolved_database_url,
            TERMINATE,
            f'CREATE DATABASE {database} TEMPLATE "{url.database}"',
            database=url.database,
        )
    sqlite = url.get_backend_name() == "sqlite"
    admin = None if sqlite else _admin_url(settings.resolved_database_url)
    return _Snapshot(place / "home", str(home), database, admin, report, time.monotonic())


def _give(snapshot: _Snapshot, settings: Settings) -> InitReport:
    home = settings.resolved_home
    shutil.copytree(snapshot.home, home, symlinks=True, dirs_exist_ok=True)
    for name in PATH_FILES:
        path = home / name
        path.write_text(path.read_text().replace(snapshot.original_home, str(home)))
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        _sqlite_copy(snapshot.database, _sqlite_path(settings))
    else:
        _postgres(
            settings.resolved_database_url,
            f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)',
            f'CREATE DATABASE "{url.database}" TEMPLATE {snapshot.database}',
        )
    return replace(
        snapshot.report,
        created=list(snapshot.report.created),
        credentials_file=settings.credentials_file,
    )


def initialised(settings: Settings) -> InitReport:
    """What `initialise(settings)` gives, from this process's snapshot when there is one."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    home = settings.resolved_home
    fresh = not home.exists() or not any(home.iterdir())
    if not settings.hsm_simulation or not fresh or test in _served:
        return initialise(settings)  # a second body in one test has keys of its own
    _served.add(test)
    key = _key(settings)
    kept = _snapshots.get(key)
    if kept is not None and time.monotonic() - kept.taken < MAX_AGE_SECONDS:
        return _give(kept, settings)
    report = initialise(settings)
    if kept is not None:
        _drop(kept)
    _snapshots[key] = _take(settings, report)
    return report


def _drop(snapshot: _Snapshot) -> None:
    if snapshot.admin_url is not None:
        drop = f"DROP DATABASE IF EXISTS {snapshot.database} WITH (FORCE)"
        _postgres(snapshot.admin_url, drop)
    shutil.rmtree(snapshot.home.parent, ignore_errors=True)


def drop_snapshots() -> None:
    """Remove this process's snapshots (at the end of its session)."""
    for snapshot in _snapshots.values():
        _drop(snapshot)
    _snapshots.clear()
    if _directory is not None:
        shutil.rmtree(_directory, ignore_errors=True)
