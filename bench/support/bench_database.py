"""The database a benchmark runs on: `--database-url`, by default the embedded SQLite.

PostgreSQL is the production store, so every bench runs on it too. A PostgreSQL URL names a
server (and a database to connect to for administration): the bench creates fresh databases of
its own there and drops them when it ends, so that every measurement starts from an empty
schema and a bench never writes into a database that holds anything else. Its RESULT line then
carries the suffix `_pg` (`RESULT issue_pg …`), beside the SQLite line of the same bench.
"""

from __future__ import annotations

import argparse
import secrets
from types import TracebackType

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

HELP = (
    "SQLAlchemy URL (default: the embedded SQLite); for PostgreSQL, a server on which the bench "
    "creates and drops databases of its own"
)


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=None, help=HELP)


class BenchDatabases:
    """Fresh databases for one bench run: `fresh()` answers None for the embedded SQLite (the
    service makes its file under its home) or the URL of a new PostgreSQL database; `close`
    drops every database it made."""

    def __init__(self, url: str | None) -> None:
        self._server: URL | None = None
        self._made: list[str] = []
        if url is None:
            return
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            return
        if parsed.get_backend_name() != "postgresql":
            raise SystemExit("--database-url: SQLite (the default) or PostgreSQL")
        self._server = parsed.set(drivername="postgresql+psycopg")

    @property
    def postgres(self) -> bool:
        return self._server is not None

    @property
    def label(self) -> str:
        return "PostgreSQL" if self.postgres else "SQLite"

    def result_name(self, name: str) -> str:
        """The bench's name in its RESULT line: `_pg` on PostgreSQL."""
        return f"{name}_pg" if self.postgres else name

    def fresh(self) -> str | None:
        if self._server is None:
            return None
        name = f"certsvc_bench_{secrets.token_hex(6)}"
        self._admin(f"CREATE DATABASE {name}")
        self._made.append(name)
        return self._server.set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        while self._made:
            self._admin(f"DROP DATABASE IF EXISTS {self._made.pop()} WITH (FORCE)")

    def _admin(self, statement: str) -> None:
        assert self._server is not None
        engine = create_engine(self._server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def __enter__(self) -> BenchDatabases:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()
