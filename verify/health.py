"""`/healthz` of a public node: ok or degraded, and when degraded a one-phrase reason for the
operator — a public caller learns nothing more of what is behind it. Only its database (the
public register) matters: it has no tokens.

A node reading a PostgreSQL hot standby is degraded while the standby is further behind than
`app.state.max_replica_lag` seconds: it would still call a just-revoked certificate valid, so
the balancer should take it out. "Behind" is measured so that an idle primary does not look
like a lagging one: the standby has replayed everything it received → 0; else the age of the
last transaction it replayed (its commit time on the primary, against the standby's clock).
That age overstates a lag that starts after a long quiet spell, which errs towards taking a
node out, never towards serving a stale answer."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

router = APIRouter(tags=["health"])

REPLICA_LAG = text(
    "SELECT CASE"
    " WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() THEN 0"
    " ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 'Infinity')"
    " END"
)


class PublicHealth(BaseModel):
    status: Literal["ok", "degraded"]
    reason: Literal["database unavailable", "register replica behind"] | None = None


def replica_lag(db: Session) -> float:
    """Seconds the register's database is behind its primary (0 when it is no standby); asking
    is also what proves the database answers."""
    if db.get_bind().dialect.name != "postgresql":
        db.execute(text("SELECT 1"))
        return 0.0
    return float(db.scalar(REPLICA_LAG) or 0)


@router.get(
    "/healthz",
    response_model_exclude_none=True,
    responses={
        503: {"model": PublicHealth, "description": "the database fails or lags its primary"}
    },
)
def public_healthz(request: Request, response: Response) -> PublicHealth:
    """200 when the register's database answers and is not too far behind; 503 else."""
    bound: float | None = getattr(request.app.state, "max_replica_lag", None)
    try:
        with request.app.state.sessionmaker() as db:
            lag = replica_lag(db)
    except SQLAlchemyError:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return PublicHealth(status="degraded", reason="database unavailable")
    if bound is not None and lag > bound:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return PublicHealth(status="degraded", reason="register replica behind")
    return PublicHealth(status="ok")
