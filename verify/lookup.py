"""The read side of the public register's hot path: one certificate by its verification id.

A verification is a single primary-key read, so it skips SQLAlchemy's `Connection` and result
machinery (which cost several times the query itself) and runs one statement, compiled once
per engine from a Core `select`, straight on a DBAPI connection from the engine's pool.

That connection is kept by the lookup between requests (one per process, used under a lock):
checking one out per request costs the pool's pre-ping, a second round trip on PostgreSQL. In
its place, a lookup that finds its connection dead (a database restart, an idle timeout)
throws it away and runs once more on a fresh one; the statement only reads. Pools that hand
each thread its own connection (in-memory SQLite) are used per request instead.

Nothing is cached: every statement runs in autocommit, outside any transaction, and so reads
the row as last committed by any process; a revocation shows at the next request (R10).
Only the allow-listed public columns are selected (R8), with the row's signed payload and the
newest versions of the trust and revocation lists, which `verify.proof` checks the row against.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine, bindparam, event, func, select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from verify.models import PublicCertificate, SignedRevocationList, SignedTrustList, TrustedBody


class RegisterRow(NamedTuple):
    """The public fields of one register entry, its issuing body's name, its proof (the signed
    payload) and the newest trust and revocation list versions on file."""

    status: str
    number: str
    qualification: str
    subject: str
    body_code: str
    issue_date: date
    masked_name: str
    revoked_on: date | None
    revocation_category: str | None
    body_name: str | None
    payload: bytes
    trust_version: int | None
    revocations_version: int | None


LOOKUP = (
    select(
        PublicCertificate.status,
        PublicCertificate.number,
        PublicCertificate.qualification,
        PublicCertificate.subject,
        PublicCertificate.body_code,
        PublicCertificate.issue_date,
        PublicCertificate.masked_name,
        PublicCertificate.revoked_on,
        PublicCertificate.revocation_category,
        TrustedBody.name.label("body_name"),
        PublicCertificate.payload,
        select(func.max(SignedTrustList.version)).scalar_subquery().label("trust_version"),
        select(func.max(SignedRevocationList.version))
        .scalar_subquery()
        .label("revocations_version"),
    )
    .select_from(PublicCertificate)
    .outerjoin(TrustedBody, TrustedBody.code == PublicCertificate.body_code)
    .where(PublicCertificate.verification_id == bindparam("verification_id"))
)
assert tuple(LOOKUP.selected_columns.keys()) == RegisterRow._fields


class RegisterLookup:
    """`find(verification_id)` on `engine`; driver errors surface as SQLAlchemy's own
    (`OperationalError` and so on, which the service answers with 503), parameters hidden."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        compiled = LOOKUP.compile(dialect=dialect)
        self.engine = engine
        self._dialect = dialect
        self._sql = str(compiled)
        self._positional = bool(compiled.positional)
        # psycopg opens a transaction before the first statement unless told otherwise;
        # SQLite connections are in autocommit already (the engine controls transactions).
        self._switch_autocommit = dialect.name == "postgresql"
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        # The driver hands some types over raw (SQLite: dates as ISO text); convert them as
        # SQLAlchemy would, so rows look the same on every backend.
        self._convert: list[tuple[int, Callable[[Any], Any]]] = []
        for index, column in enumerate(LOOKUP.selected_columns):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                self._convert.append((index, processor))
        self._keep = isinstance(engine.pool, QueuePool)
        self._kept: PoolProxiedConnection | None = None
        self._lock = threading.Lock()
        event.listen(engine, "engine_disposed", self._release)

    def find(self, verification_id: str) -> RegisterRow | None:
        params: Any = (
            (verification_id,) if self._positional else {"verification_id": verification_id}
        )
        if self._keep:
            with self._lock:
                row = self._on_kept(params)
        else:
            connection = self._checkout()
            try:
                row = self._fetch(connection, params)
            finally:
                connection.close()
        if row is None:
            return None
        if self._convert:
            values = list(row)
            for index, convert in self._convert:
                values[index] = convert(values[index])
            return RegisterRow._make(values)
        return RegisterRow._make(row)

    def _on_kept(self, params: Any) -> Any:
        for attempt in (1, 2):
            fresh = self._kept is None
            connection = self._kept = self._kept or self._checkout()
            try:
                return self._fetch(connection, params)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                self._kept = None
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _checkout(self) -> PoolProxiedConnection:
        try:
            return self.engine.raw_connection()
        except self._dbapi_error as exc:
            raise self._wrapped(exc, invalidated=False) from exc

    def _fetch(self, connection: PoolProxiedConnection, params: Any) -> Any:
        """The row or None; a lost connection is invalidated (closed, never reused)."""
        dbapi_connection: Any = connection.dbapi_connection
        cursor = None
        try:
            if self._switch_autocommit:
                dbapi_connection.autocommit = True
            try:
                cursor = connection.cursor()
                cursor.execute(self._sql, params)
                # All rows (at most one): the statement runs to its end, so SQLite holds no
                # read snapshot open between lookups.
                rows = cursor.fetchall()
                cursor.close()
            finally:
                # Between lookups the connection is as the pool made it.
                if self._switch_autocommit and not dbapi_connection.closed:
                    dbapi_connection.autocommit = False
        except self._dbapi_error as exc:
            lost = self._dialect.is_disconnect(cast(Any, exc), dbapi_connection, cursor)
            if lost:
                connection.invalidate(exc)
            raise self._wrapped(exc, invalidated=lost) from exc
        return rows[0] if rows else None

    def _release(self, _engine: Engine) -> None:
        """The engine is being disposed of (the app is shutting down): close the kept
        connection with the pool's."""
        with self._lock:
            if self._kept is not None:
                self._kept.invalidate()
                self._kept = None

    def _wrapped(self, exc: Exception, invalidated: bool) -> StatementError:
        return DBAPIError.instance(
            self._sql,
            None,
            exc,
            self._dbapi_error,
            hide_parameters=True,
            connection_invalidated=invalidated,
            dialect=self._dialect,
        )
