"""When the database stops answering (a restart, a failover, a dropped connection), the
requests in flight get a 503 with `Retry-After`, never a 500.

Nothing they did is half-written: each request's transaction is rolled back with its session,
and the pool's pre-ping replaces dead connections, so the next requests succeed once the
database is back.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRY_AFTER_SECONDS = 2
OUTAGES = (OperationalError, InterfaceError, PoolTimeout)

logger = logging.getLogger(__name__)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The driver's message may quote SQL; the exception's class is enough to diagnose.
    cause = type(getattr(exc, "orig", None) or exc).__name__
    route = getattr(request.scope.get("route"), "path", "?")
    logger.warning(
        "database unavailable during %s %s: %s",
        request.method,
        route,
        cause,
        extra={"event": "service.database_unavailable"},
    )
    return JSONResponse(
        {"detail": "the database is unavailable: try again shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def answer_database_outages(app: FastAPI) -> None:
    """Make `app` answer 503 + Retry-After to any request the database failed under."""
    for outage in OUTAGES:
        app.add_exception_handler(outage, _database_unavailable)
