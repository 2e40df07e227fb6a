"""How both apps (the full service and a public node) answer errors: one handler for every
`CertsvcError` — each class carries its status, its public body and its headers
(`common.errors`) —, the request-validation answer that never echoes input, the out-of-range
answer, the answer to a lost race for a unique row (409), and the database-outage answer
(`certsvc.db_outage`).

Neutral: it imports nothing private, so a public node installs it too
(`tests/test_verify/test_public_node_imports.py`)."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError

from certsvc.db_outage import answer_database_outages
from common.errors import CertsvcError

UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


async def _certsvc_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CertsvcError)
    return JSONResponse(exc.public(), status_code=exc.status_code, headers=exc.headers())


async def _out_of_range(_request: Request, _exc: Exception) -> JSONResponse:
    """A number the database cannot hold (an id beyond any row): the client's error, not a 500.
    Nothing was stored: the request's unit of work is rolled back."""
    return JSONResponse(
        {"detail": "a number in the request is out of range"},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    """Two requests that raced for one unique row (an approval, a live certificate, a
    decision): the loser's unit of work is rolled back and it is told so, with 409 — never a
    500. Any other integrity error is a fault of the service's own, answered as one."""
    assert isinstance(exc, IntegrityError)
    if not _unique_violation(exc):
        raise exc
    return JSONResponse(
        {
            "detail": "another request changed the same record at the same time; nothing of "
            "this one was stored — reload and try again"
        },
        status_code=status.HTTP_409_CONFLICT,
    )


def _unique_violation(exc: IntegrityError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate == UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(exc.orig)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 echoes the offending input, which may be a password: keep only where and
    what."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def install_error_answers(app: FastAPI) -> None:
    """Make `app` answer every error as the service's errors say they are answered."""
    app.add_exception_handler(CertsvcError, _certsvc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DataError, _out_of_range)
    app.add_exception_handler(IntegrityError, _integrity_error)
    answer_database_outages(app)
