"""Database engines, sessions and schema migrations for SQLite and PostgreSQL.

Every failure to reach the database becomes a `DatabaseConfigError` with a one-line message that
shows the URL with its password hidden: the URL usually comes from the environment, and an
operator must be able to paste the error into a ticket.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from common.errors import ServiceFault
from common.unit_of_work import unit_of_work

# Writers queue for the lock this long before answering 503: a burst of staff writes on a
# loaded machine waits its turn rather than failing (the embedded default, several workers).
SQLITE_BUSY_TIMEOUT_MS = 15000
WRITER = "certsvc_writer"  # execution option: begin SQLite transactions with the write lock
SUPPORTED = "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
NOT_INITIALISED = "database not initialised — run `certsvc init`"


class DatabaseConfigError(ServiceFault):
    """The database URL is unusable: unparseable, unsupported, or the server cannot be reached."""


class DatabaseNotInitialisedError(ServiceFault):
    """The schema is missing or older than this code; only `certsvc init` creates or upgrades it."""


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseConfigError(
            f"database URL is not a valid SQLAlchemy URL ({SUPPORTED})"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    shown = parsed.render_as_string(hide_password=True)
    if backend == "postgresql" and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    raise DatabaseConfigError(
        f"database URL {shown}: unsupported database driver {parsed.drivername!r} ({SUPPORTED})"
    )


def safe_url(url: str) -> str:
    """The URL as it may appear in messages and logs: password hidden, or a placeholder."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"


def _one_line(exc: BaseException, password: str | None) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if password:
        line = line.replace(password, "***")
    return line


def _prepare_sqlite(engine: Engine, database: str | None, create: bool) -> None:
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        if not create and not path.exists():
            # Connecting would leave an empty database file (and its directory) behind.
            raise DatabaseNotInitialisedError(NOT_INITIALISED)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseConfigError(
                f"cannot create the directory {path.parent} for the SQLite database: {exc.strerror}"
            ) from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT and
        # transactional DDL; SQLAlchemy's documented fix is to take it over (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        # Autocommit readers (the public lookups) run without a transaction at all.
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        # A deferred transaction that reads, then writes after another connection committed,
        # fails at once (SQLITE_BUSY_SNAPSHOT: no busy timeout applies). Writers take the
        # write lock when they begin and wait for it their turn instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITER) else "BEGIN")


def make_engine(url: str, *, create: bool = False) -> Engine:
    """An engine for `url`, checked by one connection so that a bad URL fails here, clearly.

    SQLite gets foreign keys, WAL and a busy timeout (several workers share one file); its file
    is made only with `create` (by `certsvc init`), else a missing one is
    `DatabaseNotInitialisedError`. PostgreSQL goes through psycopg 3. SQL parameters never
    reach logs or error messages.
    """
    parsed = _parse(url)
    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    except (ArgumentError, NoSuchModuleError, ImportError, TypeError) as exc:
        raise DatabaseConfigError(
            f"database URL {shown}: {_one_line(exc, parsed.password)}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite(engine, parsed.database, create)
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        engine.dispose()
        raise DatabaseConfigError(
            f"cannot connect to database {shown}: {_one_line(exc, parsed.password)}"
        ) from None
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit, so a job can report what it
    committed."""
    return sessionmaker(engine, expire_on_commit=False)


def make_writer_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests that change something: on SQLite each transaction begins with
    the write lock (`BEGIN IMMEDIATE`). While such a session is in a transaction, the same
    thread must not write through another session: it would wait on itself."""
    return sessionmaker(engine.execution_options(**{WRITER: True}), expire_on_commit=False)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, from the package rather than an alembic.ini; `connection` is
    the one `env.py` migrates (required by every command that touches a database)."""
    config = Config()
    config.set_main_option("script_location", str(files("certsvc") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migration history has no head")
    return head


def upgrade_database(url: str) -> None:
    """Create or upgrade the schema to the newest migration (`alembic upgrade head`)."""
    engine = make_engine(url, create=True)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
    finally:
        engine.dispose()


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema is missing or not at this code's head.

    Nothing upgrades silently: several workers may share the database, and the operator decides
    when the schema changes.
    """
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    if not current:
        raise DatabaseNotInitialisedError(NOT_INITIALISED)
    head = head_revision()
    if tuple(current) != (head,):
        raise DatabaseNotInitialisedError(
            f"database schema is at revision {', '.join(current)}, this version needs {head}"
            " — run `certsvc init`"
        )


@contextmanager
def database_session(url: str, *, writer: bool = False) -> Iterator[Session]:
    """One unit of work on an initialised database, for a CLI command: committed on success
    (`common.unit_of_work`). A command that writes asks for a `writer` unit: on SQLite it
    holds the write lock from its start, so a service committing beside it makes it wait
    rather than fail (see `make_writer_sessionmaker`); a reader never blocks the service."""
    engine = make_engine(url)
    try:
        require_current_schema(engine)
        maker = make_writer_sessionmaker(engine) if writer else make_sessionmaker(engine)
        with unit_of_work(maker) as session:
            yield session
    finally:
        engine.dispose()
