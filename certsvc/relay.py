"""The register relay: drains the internal outbox (`verify.outbox`) into the public database
named by `CERTSVC_PUBLIC_DATABASE_URL`, over a connection the inside opens; the DMZ never
connects inward.

Each batch is applied in one public transaction together with the relayed-up-to watermark kept
in that database, so a relay killed at any point has applied a batch wholly or not at all;
rows are upserted by primary key, so applying one again changes nothing. Outbox rows are then
marked relayed inside (for the lag shown on `/healthz`, `/metrics` and by `certsvc status`),
and relayed rows beyond the newest `CERTSVC_RELAY_KEEP_RELAYED` are deleted; a crash between
the two only delays the mark. With `CERTSVC_PUBLIC_STATIC_DIR` set, the relay also writes the
public side's signed files there (`certsvc.public_static`). Only the public tables' kinds are
written: anything else in the outbox stops the relay (fail closed) before it touches the public
database.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    Table,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from certsvc.db import (
    WRITER,
    DatabaseConfigError,
    DatabaseNotInitialisedError,
    make_engine,
    safe_url,
)
from certsvc.public_static import StaticFiles
from common.db import Base
from common.dbtypes import UTCDateTime, utcnow
from common.errors import CertsvcError, InvalidInput
from verify.models import PUBLIC_MODELS
from verify.outbox import MODELS, RegisterOutbox, RegisterOutboxHead, prune, row_from_payload

log = logging.getLogger("certsvc.relay")
STATE_ID = 1
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Kept in the public database only: how far the relay got, committed with the rows.
RELAY_METADATA = MetaData()
relay_state = Table(
    "register_relay_state",
    RELAY_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("relayed_id", BigInteger, nullable=False),
    Column("relayed_at", UTCDateTime, nullable=True),
)


class RelayRefused(CertsvcError):
    """The outbox holds something the relay must not write (a non-public kind, a gap in the
    ids), or the public database was never prepared: the relay stops rather than guess."""


def init_public(url: str, relay_role: str | None = None, reader_role: str | None = None) -> Engine:
    """Create the public tables and the relay's watermark in the public database (idempotent);
    the engine, for the caller to use or dispose. On PostgreSQL, `relay_role` may read and
    write those tables and `reader_role` (the public nodes) read them, and nothing else: the
    database itself refuses either anything more."""
    grants = [
        (role, rights)
        for role, rights in ((relay_role, "SELECT, INSERT, UPDATE"), (reader_role, "SELECT"))
        if role is not None
    ]
    if any(not ROLE_NAME.fullmatch(role) for role, _rights in grants):
        raise InvalidInput("role: a PostgreSQL role name ([a-z_][a-z0-9_]*)")
    engine = make_engine(url, create=True)
    if grants and engine.dialect.name != "postgresql":
        engine.dispose()
        raise InvalidInput("role: roles are granted on PostgreSQL only")
    tables = [Base.metadata.tables[str(model.__tablename__)] for model in PUBLIC_MODELS]
    Base.metadata.create_all(engine, tables=tables)
    RELAY_METADATA.create_all(engine)
    with engine.begin() as connection:
        found = connection.scalar(select(relay_state.c.id).where(relay_state.c.id == STATE_ID))
        if found is None:
            connection.execute(insert(relay_state).values(id=STATE_ID, relayed_id=0))
        for role, rights in grants:
            names = ", ".join(table.name for table in (*tables, relay_state))
            connection.execute(text(f'GRANT {rights} ON {names} TO "{role}"'))
    return engine


def open_public(url: str) -> Engine:
    """An engine on the public database; one never prepared is `RelayRefused`, saying how."""
    try:
        public = make_engine(url)
    except DatabaseNotInitialisedError:
        raise RelayRefused(
            f"public database {safe_url(url)} does not exist: run `certsvc register init-public`"
        ) from None
    if relay_state.name not in inspect(public).get_table_names():
        public.dispose()
        raise RelayRefused(
            f"public database {safe_url(url)} is not prepared: run `certsvc register init-public`"
        )
    return public


def relayed_up_to(public: Engine) -> int:
    """The watermark: every outbox id up to it is in the public database."""
    with public.connect() as connection:
        value = connection.scalar(
            select(relay_state.c.relayed_id).where(relay_state.c.id == STATE_ID)
        )
    if value is None:
        raise RelayRefused(_not_prepared(public))
    return int(value)


def _not_prepared(public: Engine) -> str:
    return (
        f"public database {public.url.render_as_string(hide_password=True)} is not "
        "prepared: run `certsvc register init-public`"
    )


def _upsert(connection: Any, table: Table, values: dict[str, Any]) -> None:
    keys = [column.name for column in table.primary_key.columns]
    changed = {name: value for name, value in values.items() if name not in keys}
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=changed))


def relay_batch(
    internal: sessionmaker[Session], public: Engine, limit: int, keep: int | None = None
) -> int:
    """Apply the next `limit` outbox rows past the watermark, in id order, with the new
    watermark in the same public transaction; how many were applied. Then mark them relayed
    inside, and (`keep` set) prune relayed rows beyond the newest `keep`."""
    with public.execution_options(**{WRITER: True}).begin() as out:
        watermark = out.scalar(
            select(relay_state.c.relayed_id).where(relay_state.c.id == STATE_ID).with_for_update()
        )
        if watermark is None:
            raise RelayRefused(_not_prepared(public))
        with internal() as db:
            head = db.scalar(select(RegisterOutboxHead.last_id)) or 0
            if head < watermark:
                raise RelayRefused(
                    f"outbox: the public database has relayed up to {watermark} but the outbox "
                    f"ends at {head} (the internal database was restored?): run "
                    "`certsvc register requeue`, which continues past the public watermark"
                )
            entries = list(
                db.scalars(
                    select(RegisterOutbox)
                    .where(RegisterOutbox.id > watermark)
                    .order_by(RegisterOutbox.id)
                    .limit(limit)
                )
            )
        expected = int(watermark) + 1
        for entry in entries:
            if entry.id != expected:
                raise RelayRefused(f"outbox: id {expected} is missing (next is {entry.id})")
            model = MODELS.get(entry.kind)
            if model is None:
                raise RelayRefused(f"outbox {entry.id}: kind {entry.kind!r} is not a public table")
            try:
                values = row_from_payload(entry.kind, json.loads(entry.payload))
            except (InvalidInput, ValueError) as exc:
                raise RelayRefused(f"outbox {entry.id}: {exc}") from None
            _upsert(out, Base.metadata.tables[entry.kind], values)
            expected += 1
        if entries:
            out.execute(
                update(relay_state)
                .where(relay_state.c.id == STATE_ID)
                .values(relayed_id=entries[-1].id, relayed_at=utcnow())
            )
            watermark = entries[-1].id
    mark_relayed(internal, int(watermark), keep)
    return len(entries)


def mark_relayed(internal: sessionmaker[Session], watermark: int, keep: int | None = None) -> None:
    """Note inside that every outbox row up to `watermark` is in the public database (read
    from it: the public side's own watermark); with `keep`, delete the relayed rows older than
    the newest `keep` of them."""
    with internal.begin() as db:
        db.execute(
            update(RegisterOutbox)
            .where(RegisterOutbox.id <= watermark, RegisterOutbox.relayed_at.is_(None))
            .values(relayed_at=utcnow())
        )
        if keep is not None:
            prune(db, watermark, keep)


def relay_all(
    internal: sessionmaker[Session], public: Engine, batch: int, keep: int | None = None
) -> int:
    """Relay until the outbox is drained; how many rows were applied."""
    mark_relayed(internal, relayed_up_to(public), keep)
    total = 0
    while moved := relay_batch(internal, public, batch, keep):
        total += moved
    return total


class Relay:
    """The relay as a long-running loop (`certsvc register relay`, or a thread in `serve`):
    drains, waits `interval` seconds, drains again; when the public database cannot be reached
    it waits longer each time, up to `max_backoff` seconds, and says so in the log (the URL
    with its password hidden)."""

    def __init__(
        self,
        internal: sessionmaker[Session],
        public_url: str,
        batch: int,
        interval: float,
        max_backoff: float,
        keep: int | None = None,
        static: StaticFiles | None = None,
    ) -> None:
        self._internal = internal
        self._keep = keep
        self._static = static
        self._static_failing: str | None = None
        self._url = public_url
        self._batch = batch
        self._interval = interval
        self._max_backoff = max_backoff
        self.stop = threading.Event()

    def run(self) -> None:
        public: Engine | None = None
        delay = self._interval
        try:
            while not self.stop.is_set():
                self.refresh_static()
                try:
                    if public is None:
                        public = open_public(self._url)
                    moved = relay_batch(self._internal, public, self._batch, self._keep)
                    delay = self._interval
                    self.stop.wait(0 if moved else self._interval)
                except RelayRefused as exc:
                    log.error("register relay stopped: %s", exc)
                    raise
                except (DatabaseConfigError, DBAPIError):
                    log.warning(
                        "register relay: a database is unavailable (public %s); retry in %.1f s",
                        safe_url(self._url),
                        delay,
                    )
                    if public is not None:
                        public.dispose()
                        public = None
                    self.stop.wait(delay)
                    delay = min(delay * 2, self._max_backoff)
        finally:
            if public is not None:
                public.dispose()

    def refresh_static(self) -> None:
        """Bring the static files up to date; a failure (a refused rollback, a full disk) is
        logged once while it lasts and does not hold up the relay."""
        if self._static is None:
            return
        try:
            self._static.refresh()
        except (CertsvcError, OSError, SQLAlchemyError) as exc:
            if str(exc) != self._static_failing:
                log.error("public static files not written: %s", exc)
            self._static_failing = str(exc)
            return
        if self._static_failing is not None:
            log.info("public static files are written again")
        self._static_failing = None
