"""`certsvc register …`: the public database in the DMZ and the relay that pushes the register
into it (`certsvc.relay`)."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from certsvc.db import DatabaseConfigError, make_engine, make_sessionmaker, require_current_schema
from certsvc.public_static import nginx_locations, static_files
from certsvc.relay import Relay, init_public, open_public, relay_all, relayed_up_to
from certsvc.settings import Settings, get_settings
from common.errors import InvalidInput
from common.unit_of_work import unit_of_work
from verify.outbox import requeue_all

register_app = typer.Typer(help="The public register's database in the DMZ, and its relay.")


def _public_url(settings: Settings) -> str:
    if not settings.public_database_url:
        raise DatabaseConfigError("CERTSVC_PUBLIC_DATABASE_URL: not set (the public database)")
    return settings.public_database_url


@register_app.command("init-public")
def init_public_command(
    relay_role: Annotated[
        str | None,
        typer.Option(help="PostgreSQL role the relay connects as: may write the public tables"),
    ] = None,
    reader_role: Annotated[
        str | None,
        typer.Option(help="PostgreSQL role the public nodes connect as: may read them"),
    ] = None,
) -> None:
    """Create the public tables (and nothing else) in the public database, as its owner;
    idempotent. Grants the relay's and the nodes' roles those tables only."""
    settings = get_settings()
    engine = init_public(_public_url(settings), relay_role, reader_role)
    engine.dispose()
    typer.echo("public database ready")


@register_app.command("relay")
def relay_command(
    once: Annotated[bool, typer.Option("--once", help="drain the outbox once, then exit")] = False,
) -> None:
    """Push the register's outbox into the public database, in order, and (with
    CERTSVC_PUBLIC_STATIC_DIR) the signed lists, audit checkpoint and tiles into static files;
    runs until stopped (SIGTERM or Ctrl-C) unless `--once`."""
    settings = get_settings()
    url = _public_url(settings)
    internal = make_engine(settings.resolved_database_url)
    try:
        require_current_schema(internal)
        sessions = make_sessionmaker(internal)
        if once:
            public = open_public(url)
            try:
                moved = relay_all(
                    sessions, public, settings.relay_batch, settings.relay_keep_relayed
                )
            finally:
                public.dispose()
            typer.echo(f"relayed {moved} change(s)")
            static = static_files(settings, sessions)
            if static is not None:
                written = static.refresh()
                typer.echo(f"{len(written)} static file(s) written in {static.directory}")
            return
        relay = Relay(
            sessions,
            url,
            settings.relay_batch,
            settings.relay_interval_seconds,
            settings.relay_max_backoff_seconds,
            settings.relay_keep_relayed,
            static_files(settings, sessions),
        )
        signal.signal(signal.SIGTERM, lambda _signum, _frame: relay.stop.set())
        try:
            relay.run()
        except KeyboardInterrupt:
            relay.stop.set()
    finally:
        internal.dispose()


@register_app.command("requeue")
def requeue_command() -> None:
    """Queue every public row again (a new or rebuilt public database, a register written
    before the outbox existed, an internal database restored from a backup: with
    CERTSVC_PUBLIC_DATABASE_URL set, ids continue past what the public side holds); applying a
    row twice is harmless."""
    settings = get_settings()
    after = 0
    if settings.public_database_url:
        public = open_public(settings.public_database_url)
        try:
            after = relayed_up_to(public)
        finally:
            public.dispose()
    internal = make_engine(settings.resolved_database_url)
    try:
        require_current_schema(internal)
        with unit_of_work(make_sessionmaker(internal)) as db:
            queued = requeue_all(db, after)
    finally:
        internal.dispose()
    typer.echo(f"queued {queued} row(s)")


@register_app.command("nginx-static")
def nginx_static_command() -> None:
    """Print nginx `location` blocks that serve CERTSVC_PUBLIC_STATIC_DIR with the service's
    Cache-Control and media types (nginx adds ETag and answers 304 itself)."""
    settings = get_settings()
    if settings.public_static_dir is None:
        raise InvalidInput("CERTSVC_PUBLIC_STATIC_DIR: not set (the relay's static files)")
    typer.echo(nginx_locations(settings.public_static_dir), nl=False)
