"""`certsvc audit …`: verify the log, sign a checkpoint, export and check bundles."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from audit.bundle import build_bundle, certificate_fingerprint, verify_bundle
from audit.publish import publish_checkpoint
from audit.query import event_range
from audit.verify import Verdict, verify_log
from certsvc.audit_keys import CheckpointKeyHolder, checkpoint_key, checkpoint_public_key
from certsvc.audit_trail import SYSTEM_ROLE, operator
from certsvc.cli_output import make_console
from certsvc.db import (
    database_session,
    make_engine,
    make_sessionmaker,
    require_current_schema,
)
from certsvc.hsm import open_tokens
from certsvc.settings import get_settings
from signer.actor import Actor
from signer.gate import signing_transaction

audit_app = typer.Typer(help="The audit log: verify, checkpoint, export.", no_args_is_help=True)
console = make_console()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _report(verdict: Verdict, what: str) -> None:
    if verdict.ok:
        console.print(
            f"{what} intact: {_count(verdict.events, 'event')}, "
            f"{_count(verdict.checkpoints, 'signed checkpoint')}"
            + (
                f" (newest at {verdict.latest_checkpoint})"
                if verdict.latest_checkpoint is not None
                else ""
            )
        )
        return
    typer.echo(f"{what} NOT intact: {verdict.problems[0]}", err=True)
    raise typer.Exit(1)


@audit_app.command("verify")
def verify() -> None:
    """Recompute the whole tree from the stored events and check every signed checkpoint;
    exit 1 naming the first bad entry."""
    settings = get_settings()
    with database_session(settings.resolved_database_url) as db:
        public = checkpoint_public_key(db, settings)
        verdict = verify_log(db, settings.audit_origin, public)
    _report(verdict, "audit log")


@audit_app.command("checkpoint")
def checkpoint() -> None:
    """Sign a checkpoint for the log as it is now (also done automatically)."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        require_current_schema(engine)
        sessions = make_sessionmaker(engine)
        holder = CheckpointKeyHolder(settings, open_tokens(settings, sessions), sessions)
        try:
            holder.unlock()
            with signing_transaction(sessions) as unit:
                signer = holder.signer(unit, Actor(operator(), 0, SYSTEM_ROLE))
                size = publish_checkpoint(unit.db, signer).size
        finally:
            holder.close()
    finally:
        engine.dispose()
    console.print(f"checkpoint signed at size {size}")


@audit_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="bundle file to write (JSON)")],
    since: Annotated[datetime | None, typer.Option(help="first event time (UTC)")] = None,
    until: Annotated[datetime | None, typer.Option(help="end of the range (UTC)")] = None,
) -> None:
    """Write events of a time range, with proofs and checkpoints, as a self-contained bundle."""
    settings = get_settings()
    with database_session(settings.resolved_database_url) as db:
        start, end = event_range(db, since, until)
        _, certificate = checkpoint_key(db, settings)
        bundle = build_bundle(db, settings.audit_origin, certificate, start, end)
    out.write_text(json.dumps(bundle, indent=1))
    console.print(
        f"wrote {len(bundle['events'])} events to {out}; checkpoint key fingerprint "
        f"{certificate_fingerprint(certificate)}"
    )


@audit_app.command("verify-bundle")
def verify_bundle_command(bundle: Path) -> None:
    """Check a bundle offline: signatures, consistency and inclusion proofs. Compare the printed
    key fingerprint with the one the certifying body publishes."""
    try:
        data = json.loads(bundle.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"bundle: cannot read {bundle} as JSON ({exc})") from None
    verdict = verify_bundle(data)
    if verdict.ok:
        certificate = x509.load_pem_x509_certificate(str(data["certificate"]).encode())
        console.print(f"checkpoint key fingerprint {certificate_fingerprint(certificate)}")
    _report(verdict, "bundle")
