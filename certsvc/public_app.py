"""A public verification node: the routes of `verify` over a database that needs to hold
nothing but the public register (no vault, no cases, no staff, no tokens).

Built from `verify`, `common` and the neutral part of `certsvc` (settings, engines, hardening
middleware, log redaction, the error answers) and nothing else: no staff route, no
signer, no vault, no PKCS#11 library is ever loaded by a public node, so a bug there cannot reach
what it never had (`tests/test_verify/test_public_node_imports.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import inspect

from certsvc import __version__
from certsvc.db import DatabaseNotInitialisedError, make_engine, make_sessionmaker
from certsvc.error_answers import install_error_answers
from certsvc.hardening import Hardening
from certsvc.log_redaction import install_log_redaction
from certsvc.settings import Settings, get_settings
from verify.fast_lookup import FastLookup
from verify.health import router as health_router
from verify.models import PUBLIC_MODELS
from verify.ratelimit import make_rate_limiter
from verify.routes import router as verify_router
from verify.tiles import router as tiles_router

PUBLIC_TABLES = tuple(str(model.__tablename__) for model in PUBLIC_MODELS)
# Verification first: it is the hot path, and routes are matched in order.
ROUTERS = (verify_router, health_router, tiles_router)


def create_public_app(settings: Settings | None = None) -> FastAPI:
    """The public node for `settings` (default: from the environment, as uvicorn's factory for
    `serve --public --workers N` calls it); fails at once on a database without the register."""
    settings = settings or get_settings()
    engine = make_engine(settings.resolved_database_url)
    missing = set(PUBLIC_TABLES) - set(inspect(engine).get_table_names())
    if missing:
        engine.dispose()
        raise DatabaseNotInitialisedError(
            f"database has no public register (missing {', '.join(sorted(missing))})"
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="certsvc public verification",
        version=__version__,
        description="Check a teacher-qualification certificate by its QR code.",
        lifespan=lifespan,
        # The interactive docs load scripts from a CDN: no third-party code on our pages.
        docs_url=None,
        redoc_url=None,
        # A redirect to the path with(out) its slash would be built from the request's Host.
        redirect_slashes=False,
    )
    app.add_middleware(FastLookup)  # inside Hardening: added first
    app.add_middleware(Hardening)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.trust_anchors = settings.pinned_anchors()
    app.state.register_watermark = settings.register_watermark_file
    app.state.max_replica_lag = settings.public_max_replica_lag_seconds
    app.state.rate_limiter = make_rate_limiter(settings.verify_rate_per_minute, settings.redis_url)
    install_error_answers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_log_redaction()
    return app
