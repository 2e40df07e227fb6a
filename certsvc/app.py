"""The FastAPI application: one per worker process, holding no state but its database engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from audit.trail import record
from certify.records import CaseRecords
from certsvc import __version__, expiry
from certsvc.accounts import password_hasher
from certsvc.audit_keys import CheckpointKeyHolder
from certsvc.audit_trail import SYSTEM_ROLE
from certsvc.checkpointer import Checkpointer
from certsvc.console import case_pages, officer_pages, registrar_pages
from certsvc.console.admin import router as admin_console_router
from certsvc.console.approvals import router as approvals_console_router
from certsvc.console.custodian import router as custodian_console_router
from certsvc.console.revealer import router as revealer_console_router
from certsvc.console.routes import router as console_router
from certsvc.db import (
    make_engine,
    make_sessionmaker,
    make_writer_sessionmaker,
    require_current_schema,
)
from certsvc.error_answers import install_error_answers
from certsvc.hardening import Hardening
from certsvc.hsm import open_tokens
from certsvc.log_redaction import install_log_redaction
from certsvc.login_refusals import RefusedLogins
from certsvc.public_static import static_files
from certsvc.relay import Relay
from certsvc.routes import PUBLIC_ROUTERS, STAFF_ROUTERS, openapi
from certsvc.service_pins import check_pins_location
from certsvc.settings import Settings, get_settings
from common.errors import CertsvcError
from common.unit_of_work import unit_of_work
from signer.actor import Actor
from signer.claims import SessionClaims
from signer.documents import DocumentSigner
from signer.gate import SigningGate
from signer.sessions import SigningSessions
from verify.fast_lookup import FastLookup
from verify.ratelimit import make_rate_limiter

# Who records a register proof refusal: the service itself, no staff account behind it.
REGISTER_GUARD = Actor("certsvc:register-proof", 0, SYSTEM_ROLE)
REFUSED_ACTION = "verify.register.refused"


def register_refusal_recorder(sessions: sessionmaker[Session]) -> Callable[[str, str], None]:
    """What the full service does with a register row or list that failed its proof, beside
    the log line: one audit event for the security officer (a public node has no log)."""

    def record_refusal(obj: str, reason: str) -> None:
        with unit_of_work(sessions) as db:
            record(
                db, REGISTER_GUARD, "verify.register.refused", obj, outcome="refused", reason=reason
            )

    return record_refusal


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for `settings` (default: from the environment).

    Fails with `DatabaseConfigError`, `DatabaseNotInitialisedError` or `HsmConfigError` at once
    rather than on the first request.
    """
    settings = settings or get_settings()
    check_pins_location(settings.service_pins_file, settings.resolved_home, settings.hsm_simulation)
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

    relay = (
        Relay(
            sessions,
            settings.public_database_url,
            settings.relay_batch,
            settings.relay_interval_seconds,
            settings.relay_max_backoff_seconds,
            settings.relay_keep_relayed,
            static_files(settings, sessions),
        )
        if settings.public_database_url
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        relaying = asyncio.create_task(asyncio.to_thread(relay.run)) if relay else None
        background = [
            asyncio.create_task(Checkpointer(settings, checkpoint_key, sessions).run()),
            asyncio.create_task(refused_logins.run(writer_sessions)),
            asyncio.create_task(expiry.watch(sessions)),
        ]
        yield
        for task in background:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if relay is not None and relaying is not None:
            relay.stop.set()
            with suppress(CertsvcError):
                await relaying
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
    app.add_middleware(FastLookup)  # inside Hardening: added first
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
    app.state.trust_anchors = settings.pinned_anchors()
    app.state.register_watermark = settings.register_watermark_file
    app.state.record_register_refusal = register_refusal_recorder(writer_sessions)
    app.state.login_limiter = make_rate_limiter(
        settings.login_attempts_per_minute, settings.redis_url, scope="login", fail_open=False
    )
    install_error_answers(app)
    for router in PUBLIC_ROUTERS + STAFF_ROUTERS:
        app.include_router(router)
    app.include_router(openapi.router)
    app.include_router(console_router)
    for desk in (case_pages, registrar_pages, officer_pages):  # registrars' and officers' pages
        app.include_router(desk.router)
    app.include_router(custodian_console_router)
    app.include_router(admin_console_router)
    app.include_router(approvals_console_router)
    app.include_router(revealer_console_router)
    app.state.public_routes = [route for router in PUBLIC_ROUTERS for route in router.routes]
    install_log_redaction()
    return app
