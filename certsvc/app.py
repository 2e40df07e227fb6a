"""The FastAPI application: one per worker process, holding no state but its database engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from audit.anchor import AnchorDamaged
from audit.log import AuditUnavailable
from audit.publish import InconsistentLog
from certify.records import CaseRecords
from certsvc import __version__
from certsvc.accounts import password_hasher
from certsvc.audit_keys import CheckpointKeyHolder, NoCheckpointKey
from certsvc.checkpointer import Checkpointer
from certsvc.db import (
    make_engine,
    make_sessionmaker,
    make_writer_sessionmaker,
    require_current_schema,
)
from certsvc.db_outage import answer_database_outages
from certsvc.hardening import Hardening
from certsvc.hsm import open_tokens
from certsvc.log_redaction import install_log_redaction
from certsvc.login_refusals import RefusedLogins
from certsvc.routes import PUBLIC_ROUTERS, STAFF_ROUTERS, openapi
from certsvc.service_pins import ServicePinMissing
from certsvc.settings import Settings, get_settings
from common.cose import CoseInvalid
from common.errors import CertsvcError, Conflict, InvalidInput, NotFound
from signer.chain import ChainInvalid
from signer.claims import SessionClaims, SessionElsewhere, TokenClaimedElsewhere
from signer.documents import BatchInterrupted, DocumentSigner
from signer.errors import (
    KeyNotFound,
    NotCustodian,
    SessionLost,
    SignatureInvalid,
    TokenAbsent,
    TokenBusy,
    TokenFault,
    TokenLocked,
    WrongPin,
)
from signer.gate import SigningGate
from signer.policy import PolicyRefused
from signer.sessions import NotYourSession, SigningSessions
from vault.errors import RevealRateLimited, StoredValueCorrupt, VaultUnavailable
from verify.ratelimit import make_rate_limiter

ERROR_STATUS: dict[type[CertsvcError], int] = {
    InvalidInput: status.HTTP_422_UNPROCESSABLE_CONTENT,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    WrongPin: status.HTTP_403_FORBIDDEN,
    NotYourSession: status.HTTP_403_FORBIDDEN,
    TokenLocked: status.HTTP_423_LOCKED,
    TokenAbsent: status.HTTP_409_CONFLICT,
    TokenBusy: status.HTTP_409_CONFLICT,
    TokenClaimedElsewhere: status.HTTP_409_CONFLICT,
    SessionElsewhere: status.HTTP_409_CONFLICT,
    SessionLost: status.HTTP_409_CONFLICT,
    KeyNotFound: status.HTTP_404_NOT_FOUND,
    TokenFault: status.HTTP_503_SERVICE_UNAVAILABLE,
    SignatureInvalid: status.HTTP_503_SERVICE_UNAVAILABLE,
    PolicyRefused: status.HTTP_403_FORBIDDEN,
    NotCustodian: status.HTTP_403_FORBIDDEN,
    BatchInterrupted: status.HTTP_503_SERVICE_UNAVAILABLE,
    CoseInvalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ChainInvalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
    VaultUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    RevealRateLimited: status.HTTP_429_TOO_MANY_REQUESTS,
    # The service's data is damaged (a stored ciphertext fails its tag): no retry can help, and
    # it is not the token's fault (503 would say "try later").
    StoredValueCorrupt: status.HTTP_500_INTERNAL_SERVER_ERROR,
    # The service's own faults: the request was fine, and nothing was done.
    AuditUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    InconsistentLog: status.HTTP_503_SERVICE_UNAVAILABLE,
    AnchorDamaged: status.HTTP_503_SERVICE_UNAVAILABLE,
    NoCheckpointKey: status.HTTP_503_SERVICE_UNAVAILABLE,
    ServicePinMissing: status.HTTP_503_SERVICE_UNAVAILABLE,
}


async def _certsvc_error(_request: Request, exc: Exception) -> JSONResponse:
    code = next(
        (code for cls, code in ERROR_STATUS.items() if isinstance(exc, cls)),
        status.HTTP_400_BAD_REQUEST,
    )
    body: dict[str, object] = {"detail": str(exc)}
    if isinstance(exc, WrongPin):
        body["tries_left"] = exc.tries_left
    if isinstance(exc, PolicyRefused):
        body["rule"] = exc.rule
    headers = {}
    if isinstance(exc, RevealRateLimited):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return JSONResponse(body, status_code=code, headers=headers)


async def _out_of_range(_request: Request, _exc: Exception) -> JSONResponse:
    """A number the database cannot hold (an id beyond any row): the client's error, not a 500.
    Nothing was stored: the request's transaction is rolled back with its session."""
    return JSONResponse(
        {"detail": "a number in the request is out of range"},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 echoes the offending input, which may be a password: keep only where and
    what."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for `settings` (default: from the environment).

    Fails with `DatabaseConfigError`, `DatabaseNotInitialisedError` or `HsmConfigError` at once
    rather than on the first request.
    """
    settings = settings or get_settings()
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    try:
        require_current_schema(engine)
        tokens = open_tokens(settings, sessions)
    except CertsvcError:
        engine.dispose()
        raise
    signing_sessions = SigningSessions(
        tokens,
        settings.signing_session_minutes * 60,
        settings.signing_idle_minutes * 60,
        claims=SessionClaims(settings.signing_claims_dir),
    )

    checkpoint_key = CheckpointKeyHolder(settings, tokens, sessions)
    writer_sessions = make_writer_sessionmaker(engine)
    refused_logins = RefusedLogins()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        background = [
            asyncio.create_task(Checkpointer(settings, checkpoint_key, sessions).run()),
            asyncio.create_task(refused_logins.run(writer_sessions)),
        ]
        yield
        for task in background:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(refused_logins.close, writer_sessions)
        signing_sessions.close_all()
        checkpoint_key.close()
        engine.dispose()

    app = FastAPI(
        title="certsvc",
        version=__version__,
        description="Teacher-qualification certificates: tokenised personal data, "
        "USBKey-controlled signing, public QR verification.",
        lifespan=lifespan,
        # The interactive docs load scripts from a CDN: no third-party code on our pages.
        docs_url=None,
        redoc_url=None,
        # A redirect to the path with(out) its slash would be built from the request's Host.
        redirect_slashes=False,
        # Served by `routes.openapi`: the staff routes' map for staff only.
        openapi_url=None,
    )
    app.add_middleware(Hardening)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessions
    app.state.writer_sessions = writer_sessions
    app.state.password_hasher = password_hasher(settings)
    app.state.tokens = tokens
    app.state.signing_sessions = signing_sessions
    app.state.signing_gate = SigningGate(signing_sessions)
    app.state.document_signer = DocumentSigner(sessions, app.state.signing_gate, CaseRecords())
    app.state.checkpoint_key = checkpoint_key
    app.state.refused_logins = refused_logins
    app.state.rate_limiter = make_rate_limiter(settings.verify_rate_per_minute, settings.redis_url)
    app.state.login_limiter = make_rate_limiter(
        settings.login_attempts_per_minute, settings.redis_url, scope="login", fail_open=False
    )
    app.add_exception_handler(CertsvcError, _certsvc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DataError, _out_of_range)
    answer_database_outages(app)
    for router in PUBLIC_ROUTERS + STAFF_ROUTERS:
        app.include_router(router)
    app.include_router(openapi.router)
    app.state.public_routes = [route for router in PUBLIC_ROUTERS for route in router.routes]
    install_log_redaction()
    return app
