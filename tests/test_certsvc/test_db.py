"""Engines, URLs and migrations on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, make_url, text

from certsvc.db import (
    DatabaseConfigError,
    DatabaseNotInitialisedError,
    alembic_config,
    make_engine,
    require_current_schema,
    upgrade_database,
)
from certsvc.models_registry import import_all_models
from common.db import Base


def test_upgrade_gives_exactly_the_models_schema(empty_db_url: str) -> None:
    import_all_models()
    upgrade_database(empty_db_url)
    upgrade_database(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        require_current_schema(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(empty_db_url: str) -> None:
    upgrade_database(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        with pytest.raises(DatabaseNotInitialisedError, match="run `certsvc init`"):
            require_current_schema(engine)
    finally:
        engine.dispose()
    upgrade_database(empty_db_url)


def test_missing_schema_is_refused_not_created(empty_db_url: str) -> None:
    """SQLite: the missing file is not made; PostgreSQL: the empty database gets no table."""
    if empty_db_url.startswith("sqlite"):
        with pytest.raises(DatabaseNotInitialisedError, match=r"^database not initialised — "):
            make_engine(empty_db_url)
        assert not Path(make_url(empty_db_url).database or "").parent.exists()
        return
    engine = make_engine(empty_db_url)
    try:
        with pytest.raises(
            DatabaseNotInitialisedError, match=r"^database not initialised — run `certsvc init`$"
        ):
            require_current_schema(engine)
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_outdated_schema_is_refused(empty_db_url: str) -> None:
    upgrade_database(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'older'"))
        with pytest.raises(DatabaseNotInitialisedError, match="revision older"):
            require_current_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_engine_creates_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "certsvc.db"
    engine = make_engine(f"sqlite:///{path}", create=True)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
    finally:
        engine.dispose()
    assert path.exists()


def test_foreign_keys_are_enforced(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with pytest.raises(Exception, match=r"(?i)foreign key"), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO api_tokens (account_id, token_id, token_hash, created_at,"
                    " expires_at) VALUES (999, 'x', 'y', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
    finally:
        engine.dispose()


def test_url_with_or_without_explicit_driver(db_url: str) -> None:
    """`postgresql://` means psycopg 3 here (SQLAlchemy's own default, psycopg2, is absent)."""
    other = (
        db_url.replace("postgresql+psycopg://", "postgresql://")
        if db_url.startswith("postgresql")
        else db_url.replace("sqlite:///", "sqlite+pysqlite:///")
    )
    assert other != db_url
    engine = make_engine(other)
    try:
        require_current_schema(engine)
    finally:
        engine.dispose()


PASSWORD = "Sup3r-secret-pw"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "database URL is not a valid SQLAlchemy URL"),
        (f"mysql://admin:{PASSWORD}@db.example/certsvc", "unsupported database driver 'mysql'"),
        (
            f"postgresql+asyncpg://admin:{PASSWORD}@db.example/certsvc",
            "unsupported database driver 'postgresql+asyncpg'",
        ),
        (
            f"postgresql+psycopg://admin:{PASSWORD}@127.0.0.1:1/certsvc",
            "cannot connect to database postgresql+psycopg://admin:***@127.0.0.1:1/certsvc: ",
        ),
    ],
)
def test_bad_url_is_one_line_without_password(url: str, message: str) -> None:
    with pytest.raises(DatabaseConfigError) as caught:
        make_engine(url)
    shown = str(caught.value)
    assert message in shown
    assert "\n" not in shown
    assert PASSWORD not in shown


def test_sqlite_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DatabaseConfigError, match="cannot create the directory"):
        make_engine(f"sqlite:///{blocker}/sub/certsvc.db", create=True)


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseConfigError, match="cannot connect to database sqlite"):
        make_engine(f"sqlite:///{path}")
