"""A public verification node: the verification routes over a database that needs to hold
nothing but the public register (no vault, no cases, no staff, no tokens)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import inspect

from certsvc import __version__
from certsvc.db import DatabaseNotInitialisedError, make_engine, make_sessionmaker
from certsvc.db_outage import answer_database_outages
from certsvc.hardening import Hardening
from certsvc.log_redaction import install_log_redaction
from certsvc.routes import PUBLIC_NODE_ROUTERS
from certsvc.settings import Settings
from verify.models import PublicCertificate, SignedTrustList, TrustedBody, TrustedKey
from verify.ratelimit import make_rate_limiter

PUBLIC_TABLES = tuple(
    str(model.__tablename__)
    for model in (PublicCertificate, TrustedBody, TrustedKey, SignedTrustList)
)


def create_public_app(settings: Settings) -> FastAPI:
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
    )
    app.add_middleware(Hardening)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.rate_limiter = make_rate_limiter(settings.verify_rate_per_minute, settings.redis_url)
    answer_database_outages(app)
    for router in PUBLIC_NODE_ROUTERS:
        app.include_router(router)
    install_log_redaction()
    return app
