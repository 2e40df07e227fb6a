"""`certsvc serve`: run the HTTP service, the full one or a public verification node.

Imports only the neutral part of `certsvc` at module level: the app is named by its factory's
import path, so `serve --public` imports `certsvc.public_app` (the public side) and never
`certsvc.app` (the staff side), in this process and in every worker uvicorn starts.
"""

from __future__ import annotations

import functools
import logging.config
from collections.abc import Callable
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI
from uvicorn.importer import import_from_string

from certsvc.log_config import log_config
from certsvc.settings import Settings, get_settings

FULL_APP = "certsvc.app:create_app"
PUBLIC_APP = "certsvc.public_app:create_public_app"
logger = logging.getLogger(__name__)


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    public: Annotated[
        bool, typer.Option("--public", help="serve only the public verification side")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes")] = 1,
) -> None:
    """Run the HTTP service (`certsvc init` first)."""
    settings = get_settings()
    logging_setup = log_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(logging_setup)
    factory_path = PUBLIC_APP if public else FULL_APP
    factory: Callable[[Settings], FastAPI] = import_from_string(factory_path)
    # Build the app once here so that a bad database URL or module path fails with one line
    # before any worker starts.
    app = factory(settings)
    logger.info("certsvc listening on http://%s:%d%s", host, port, " (public)" if public else "")
    # No access log: URLs of the public side carry verification ids, and client addresses are
    # personal data; what needs recording goes to the audit log. Forwarded headers only from
    # the configured proxies: believed from anyone, they would let a client pick the address
    # its rate limit counts.
    run = functools.partial(
        uvicorn.run,
        host=host,
        port=port,
        access_log=False,
        log_config=logging_setup,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )
    if workers == 1:
        run(app)
    else:
        run(factory_path, factory=True, workers=workers)
