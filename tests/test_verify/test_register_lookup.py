"""The register lookup behind every verification: it reads what any process committed, at the
next request; it survives its connection dying; a database gone answers 503, never 500."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from certsvc.db import make_engine
from certsvc.public_app import PUBLIC_TABLES, create_public_app
from certsvc.settings import Settings
from common.db import Base
from server_support import serving
from verify.lookup import RegisterLookup
from verify.models import TrustedBody
from verify.payload import new_verification_id
from verify.register import PublicFields, publish_certificate, revoke_certificate
from verify_support import Demo

POSTGRES_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgres)]


def _publish(engine: Engine, count: int) -> list[str]:
    """`count` certificates in the register of `engine` (the first one revoked)."""
    ids = [new_verification_id() for _ in range(count)]
    with Session(engine) as db, db.begin():
        if db.get(TrustedBody, "410000") is None:
            db.add(TrustedBody(code="410000", name="河南省教育厅", root_certificate=b""))
        for n, verification_id in enumerate(ids):
            fields = PublicFields(
                verification_id, f"2020410000{n:07d}", "SS", "02", "410000", date(2020, 1, 2), "张*"
            )
            publish_certificate(db, fields, b"payload")
        revoke_certificate(db, ids[0], date(2021, 3, 4), "fraud")
    return ids


def _others_gone(observer: Engine) -> bool:
    """Whether, within a few seconds, no connection but the observer's is left on its
    database (a closed connection's server process takes a moment to exit)."""
    deadline = time.monotonic() + 10
    while True:
        with observer.connect() as connection:
            others = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        if others == 0 or time.monotonic() > deadline:
            return others == 0
        time.sleep(0.1)


@pytest.mark.parametrize("workers", [1, 2])
def test_revocation_by_another_process_shows_at_the_next_request(demo: Demo, workers: int) -> None:
    first = demo.certificate("20204100000000021")
    second = demo.certificate("20204100000000022")
    env = {**os.environ, "CERTSVC_VERIFY_RATE_PER_MINUTE": "100000"}
    with serving("--public", "--workers", str(workers), env=env) as server:

        def statuses(verification_id: str, times: int) -> set[str]:
            return {
                httpx.get(f"{server.base}/api/v1/verify/{verification_id}", timeout=10).json()[
                    "status"
                ]
                for _ in range(times)
            }

        # Enough requests for every worker to have read (and kept its connection) first.
        assert statuses(first.verification_id, 20) == {"valid"}
        assert statuses(second.verification_id, 20) == {"valid"}
        # This test's process, not the server's.
        demo.revoke(first.verification_id, date(2021, 3, 1), "fraud")
        assert statuses(first.verification_id, 20) == {"revoked"}
        assert statuses(second.verification_id, 5) == {"valid"}
        demo.revoke(second.verification_id, date(2021, 3, 2), "error")
        assert statuses(second.verification_id, 20) == {"revoked"}
        page = httpx.get(f"{server.base}/v/{second.verification_id}", timeout=10)
        assert "证书已撤销" in page.text


def test_lookup_answers_the_public_fields_on_every_backend(db_url: str) -> None:
    engine = make_engine(db_url)
    revoked, valid = _publish(engine, 2)
    lookup = RegisterLookup(engine)
    row = lookup.find(revoked)
    assert row is not None
    assert (row.status, row.number, row.body_name) == (
        "revoked",
        "20204100000000000",
        "河南省教育厅",
    )
    assert (row.issue_date, row.revoked_on, row.revocation_category) == (
        date(2020, 1, 2),
        date(2021, 3, 4),
        "fraud",
    )
    again = lookup.find(valid)
    assert again is not None and (again.status, again.revoked_on) == ("valid", None)
    assert lookup.find(new_verification_id()) is None
    engine.dispose()


def test_lookup_on_a_per_thread_pool() -> None:
    """In-memory SQLite hands each thread its own database: the lookup uses it per request."""
    engine = make_engine("sqlite://")
    written = (*PUBLIC_TABLES, "register_outbox_head", "register_outbox")  # writers queue changes
    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in written])
    revoked, _ = _publish(engine, 2)
    found = RegisterLookup(engine).find(revoked)
    assert found is not None and found.status == "revoked"
    engine.dispose()


@pytest.mark.parametrize("db_url", POSTGRES_ONLY, indirect=True)
def test_a_dead_connection_is_replaced_and_none_outlives_the_engine(db_url: str) -> None:
    engine = make_engine(db_url)
    revoked, valid = _publish(engine, 2)
    observer = make_engine(db_url)
    lookup = RegisterLookup(engine)
    assert lookup.find(valid) is not None
    # A restart, an idle timeout, a failover: the server cuts every connection.
    with observer.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    found = lookup.find(revoked)
    assert found is not None and found.status == "revoked"
    engine.dispose()
    assert _others_gone(observer), "a connection outlived its engine"
    observer.dispose()


@pytest.mark.parametrize("db_url", POSTGRES_ONLY, indirect=True)
def test_a_database_gone_answers_503_not_500(
    db_url: str, tmp_path: Path, postgres_admin: Engine
) -> None:
    engine = make_engine(db_url)
    (revoked,) = _publish(engine, 1)
    engine.dispose()
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    app = create_public_app(settings)
    with TestClient(app) as client:
        # Read (its made-up row has no proof behind it, so it answers as unknown).
        assert client.get(f"/api/v1/verify/{revoked}").status_code == 404
        name = db_url.rsplit("/", 1)[1]
        with postgres_admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        gone = client.get(f"/api/v1/verify/{revoked}")
        assert gone.status_code == 503 and gone.headers["retry-after"].isdigit()
        assert revoked not in gone.text
        with pytest.raises(OperationalError) as raised:
            app.state.register_lookup.find(revoked)
        assert revoked not in str(raised.value)  # parameters hidden
    app.state.engine.dispose()
