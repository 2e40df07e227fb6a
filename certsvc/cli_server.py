"""`certsvc init` and `certsvc serve`: set the service up, then run it."""

from __future__ import annotations

import logging.config
import os
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from certsvc.app import create_app
from certsvc.bootstrap import initialise
from certsvc.log_config import log_config
from certsvc.settings import get_settings, reset_settings

console = Console(stderr=True)
logger = logging.getLogger(__name__)


def init() -> None:
    """Create or upgrade the database and provision the demo body, tokens, keys, certificates,
    staff accounts and workstation when missing. Safe to run again."""
    settings = get_settings()
    with console.status("initialising") as status:
        report = initialise(settings, lambda step: status.update(f"initialising: {step}"))
    for item in report.created:
        console.print(f"created {item}")
    console.print(
        f"ready: home {settings.resolved_home}; demo credentials in {report.credentials_file} "
        "(owner-only)"
    )


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    public: Annotated[
        bool, typer.Option("--public", help="serve only the public verification side")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes")] = 1,
) -> None:
    """Run the HTTP service (`certsvc init` first)."""
    if public:
        os.environ["CERTSVC_PUBLIC_ONLY"] = "true"
        reset_settings()
    # Build the app once here so that a bad database URL or module path fails with one line
    # before any worker starts.
    settings = get_settings()
    logging_setup = log_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(logging_setup)
    app = create_app(settings)
    logger.info("certsvc listening on http://%s:%d%s", host, port, " (public)" if public else "")
    # No access log: URLs of the public side carry verification ids, and client addresses are
    # personal data; what needs recording goes to the audit log.
    if workers == 1:
        uvicorn.run(app, host=host, port=port, access_log=False, log_config=logging_setup)
    else:
        uvicorn.run(
            "certsvc.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_config=logging_setup,
        )
