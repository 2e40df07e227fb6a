"""When the database stops answering (a restart, a failover, a dropped connection), the
requests in flight get a 503 with `Retry-After`, never a 500.

Nothing they did is half-written: each request's transaction is rolled back with its session,
and the pool's pre-ping replaces dead connections, so the next requests succeed once the
database is back.
"""

from __future__ import annotations

import logging
import math
import time

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRY_AFTER_SECONDS = 2
LOG_EVERY_SECONDS = 1.0
OUTAGES = (OperationalError, InterfaceError, PoolTimeout)

logger = logging.getLogger(__name__)


class _OutageHandler:
    """Answers 503 and logs at most one line every `LOG_EVERY_SECONDS`, with how many
    failures it stood for: an outage under load would otherwise write a line per request."""

    def __init__(self) -> None:
        self._last_logged = -math.inf
        self._unlogged = 0

    async def __call__(self, request: Request, exc: Exception) -> JSONResponse:
        now = time.monotonic()
        if now - self._last_logged >= LOG_EVERY_SECONDS:
            # The driver's message may quote SQL; the exception's class is enough to diagnose.
            logger.warning(
                "database unavailable during %s %s: %s (%d more requests since the last line)",
                request.method,
                getattr(request.scope.get("route"), "path", "?"),
                type(getattr(exc, "orig", None) or exc).__name__,
                self._unlogged,
                extra={"event": "service.database_unavailable", "unlogged": self._unlogged},
            )
            self._last_logged, self._unlogged = now, 0
        else:
            self._unlogged += 1
        return JSONResponse(
            {"detail": "the database is unavailable: try again shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def answer_database_outages(app: FastAPI) -> None:
    """Make `app` answer 503 + Retry-After to any request the database failed under."""
    handler = _OutageHandler()
    for outage in OUTAGES:
        app.add_exception_handler(outage, handler)
