"""Fixtures for every test package: a fresh database per test on SQLite and on PostgreSQL,
settings pointing at it, the FastAPI app, and staff members of any role.

Each backend's schema is migrated once per session into a template (a file for SQLite, a
`CREATE DATABASE … TEMPLATE` source for PostgreSQL) and copied per test: fresh and fast.
PostgreSQL unreachable fails the tests: a CI run must never pass by quietly skipping them.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from certsvc.accounts import Role, StaffAccount, password_hasher
from certsvc.app import create_app
from certsvc.audit_trail import SYSTEM_ROLE, actor_of
from certsvc.db import (
    make_engine,
    make_sessionmaker,
    make_writer_sessionmaker,
    safe_url,
    upgrade_database,
)
from certsvc.grants import (
    SECOND_PERSON_ROLES,
    approve_account,
    bootstrap_account,
    grant_token,
    grant_workstation,
    propose_account,
    set_own_password,
)
from certsvc.settings import Settings, get_settings, reset_settings
from certsvc.workstations import WorkstationPrivateKey
from init_cache import drop_snapshots
from service_helpers import MakeStaff, StaffMember
from signer.actor import Actor

POSTGRES_URL = os.environ.get(
    "CERTSVC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
KEPT_ENVIRONMENT = ("CERTSVC_TEST_", "CERTSVC_PKCS11_MODULE")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _postgres_url(database: str | None = None) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session", autouse=True)
def _init_snapshots() -> Iterator[None]:
    """`init_cache`'s snapshots of this process, removed at its end."""
    yield
    drop_snapshots()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit connection to the test server, for CREATE and DROP DATABASE."""
    engine = create_engine(_postgres_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        pytest.fail(
            f"PostgreSQL test server {safe_url(POSTGRES_URL)} unreachable ({reason}); start it"
            " or point CERTSVC_TEST_POSTGRES_URL at one",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: Engine) -> Iterator[str]:
    """A migrated database to copy from, dropped at the end of the session."""
    name = f"certsvc_t_{secrets.token_hex(6)}_template"
    with postgres_admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        upgrade_database(_postgres_url(name))
        yield name
    finally:
        with postgres_admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "certsvc.db"
    upgrade_database(f"sqlite:///{path}")
    return path


def _database(request: pytest.FixtureRequest, tmp_path: Path, migrated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "db" / ("certsvc.db" if migrated else "empty.db")
        if migrated:
            path.parent.mkdir()
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    template = f" TEMPLATE {request.getfixturevalue('postgres_template')}" if migrated else ""
    name = f"certsvc_t_{secrets.token_hex(8)}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}{template}"))
    try:
        yield _postgres_url(name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the newest schema, holding no rows."""
    yield from _database(request, tmp_path, migrated=True)


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database without any schema (SQLite: the file does not exist yet)."""
    yield from _database(request, tmp_path, migrated=False)


@pytest.fixture
def settings(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for `db_url`, set through the environment so that the CLI sees them too;
    cheap Argon2 parameters (the production ones are tested on their own). Other `CERTSVC_*`
    variables of the developer's shell are cleared, but for machine-specific ones."""
    for name in list(os.environ):
        if name.startswith("CERTSVC_") and not name.startswith(KEPT_ENVIRONMENT):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CERTSVC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CERTSVC_DATABASE_URL", db_url)
    monkeypatch.setenv("CERTSVC_PASSWORD_HASH_PROFILE", "test")
    reset_settings()
    yield get_settings()
    reset_settings()


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as db:
        yield db


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


FIXTURE_PROVISIONER = Actor("fixture-init", 0, SYSTEM_ROLE)


def _granters(db: Session, settings: Settings) -> tuple[StaffAccount, StaffAccount]:
    """The admin who proposes and the security officer (another person) who approves the
    test's accounts, provisioned as `certsvc init` would the first ones."""
    names = ("fixture.admin", "fixture.security")
    query = select(StaffAccount).where(StaffAccount.username.in_(names))
    found = {account.username: account for account in db.scalars(query)}
    for username, role in (
        ("fixture.admin", Role.ADMIN),
        ("fixture.security", Role.SECURITY_OFFICER),
    ):
        if username not in found:
            found[username] = bootstrap_account(
                db,
                FIXTURE_PROVISIONER,
                username,
                role,
                secrets.token_urlsafe(16),
                username,
                hasher=password_hasher(settings),
            )
    return found["fixture.admin"], found["fixture.security"]


@pytest.fixture
def make_staff(settings: Settings, sessions: sessionmaker[Session]) -> MakeStaff:
    """`make_staff(role, username=None, workstation=False, p256=False)`: an account with an API
    token and, for a custodian or a revealer on request, a registered workstation named
    `ws-<username>` (its key Ed25519 as the CLI's, or ECDSA P-256 as a browser's).
    Made the way the service grants them: an admin proposes, a security officer approves
    when the role needs a second person, the holder replaces the initial password, a token
    is issued as `certsvc staff token` would, the admin registers the workstation."""
    serial = itertools.count(1)
    hasher = password_hasher(settings)
    # With the write lock from the start: a running service's checkpoints commit beside it.
    writer = make_writer_sessionmaker(sessions.kw["bind"])

    def make(
        role: Role, username: str | None = None, workstation: bool = False, p256: bool = False
    ) -> StaffMember:
        username = username or f"{role.value}{next(serial)}"
        initial, password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        key: WorkstationPrivateKey | None = None
        if workstation:
            key = ec.generate_private_key(ec.SECP256R1()) if p256 else Ed25519PrivateKey.generate()
        with writer.begin() as db:
            admin, security = _granters(db, settings)
            propose_account(db, actor_of(admin), username, role, initial, hasher=hasher)
            if role in SECOND_PERSON_ROLES:
                approve_account(db, security, username)
            account = set_own_password(db, username, initial, password, hasher=hasher)
            assert account is not None
            token, record = grant_token(db, FIXTURE_PROVISIONER, account, settings.api_token_days)
            if key is not None:
                grant_workstation(db, actor_of(admin), f"ws-{username}", username, key.public_key())
        return StaffMember(
            username=username,
            role=role,
            password=password,
            token=token,
            token_id=record.token_id,
            workstation=f"ws-{username}" if key is not None else None,
            workstation_key=key,
        )

    return make
