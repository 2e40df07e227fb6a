"""`certsvc audit …`: verify the log, reconcile the records with it, sign a checkpoint, show the
vkeys, rotate the checkpoint key, re-anchor after a deliberate restore, export and check
bundles."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from sqlalchemy.orm import Session, sessionmaker

from audit.anchor import Anchor, AnchorDamaged
from audit.bundle import (
    bundle_certificates,
    certificate_fingerprint,
    verify_bundle,
)
from audit.note import InvalidNote, parse_vkey
from audit.tiles import TileError
from audit.trail import record
from audit.verify import Kept, Verdict, verify_log
from audit.witness_protocol import cosignatures, parse_witness_vkey
from certsvc.accounts import Role, authenticate, password_hasher
from certsvc.audit_keys import (
    CheckpointKeyHolder,
    export_bundle,
    note_keys,
    published_vkeys,
)
from certsvc.audit_trail import operator, operator_actor
from certsvc.bootstrap import rotate_checkpoint_key
from certsvc.cli_output import make_console
from certsvc.db import (
    database_session,
    make_engine,
    make_sessionmaker,
    require_current_schema,
)
from certsvc.hsm import open_tokens
from certsvc.reconcile import Finding, reconcile
from certsvc.settings import Settings, get_settings
from certsvc.tiles_check import check_tiles
from common.files import open_for_writing
from signer.actor import Actor
from signer.models import ED25519, ES256
from signer.tokens import Pkcs11Tokens

audit_app = typer.Typer(
    help="The audit log: verify, checkpoint, keys, anchor, export.", no_args_is_help=True
)
console = make_console()
REANCHOR = "audit.reanchor"
ALGORITHMS = {"ed25519": ED25519, "ecdsa-p256": ES256}


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
            + (
                f"; extends the checkpoint anchored outside the database at {verdict.anchored}"
                if verdict.anchored is not None
                else "; nothing anchored outside the database yet"
            )
        )
        return
    typer.echo(f"{what} NOT intact: {verdict.problems[0]}", err=True)
    raise typer.Exit(1)


def _kept(paths: list[Path]) -> list[Kept]:
    kept = []
    for path in paths:
        try:
            kept.append(Kept(f"the checkpoint in {path}", path.read_text()))
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"--checkpoint: cannot read {path} ({exc})") from None
    return kept


@contextmanager
def _service() -> Iterator[tuple[Pkcs11Tokens, sessionmaker[Session]]]:
    """Token access and database sessions for one command, on an initialised database."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        require_current_schema(engine)
        sessions = make_sessionmaker(engine)
        yield open_tokens(settings, sessions), sessions
    finally:
        engine.dispose()


@audit_app.command("verify")
def verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            help="a checkpoint note kept outside the database (e.g. from "
            "/.well-known/certsvc/audit-checkpoint); repeatable"
        ),
    ] = None,
) -> None:
    """Recompute the whole tree from the stored events; check every signed checkpoint, the
    checkpoint anchored outside the database (entry by entry) and each `--checkpoint` (and the
    cosignatures it carries by the configured witnesses); exit 1 naming the first bad entry."""
    settings = get_settings()
    kept = _kept(checkpoint or [])
    witnesses = [parse_witness_vkey(w.vkey) for w in settings.audit_witnesses]
    for note in kept:
        try:
            names = sorted(c.witness.name for c in cosignatures(note.note, witnesses))
        except InvalidNote as exc:
            typer.echo(f"{note.label} NOT intact: {exc}", err=True)
            raise typer.Exit(1) from None
        if witnesses:
            console.print(
                f"{note.label}: cosigned by {', '.join(names) or 'no configured witness'}"
            )
    with database_session(settings.resolved_database_url) as db:
        keys = note_keys(db, settings)
        anchor = Anchor(settings.audit_anchor_path)
        verdict = verify_log(db, settings.audit_origin, keys, anchor, kept)
    _report(verdict, "audit log")


@audit_app.command("reconcile")
def reconcile_command() -> None:
    """Hold decisions, signed documents, certificates, public register rows, revocations, the
    trust and revocation lists and the audit events against each other (signatures checked
    under the pinned root); exit 1 naming every mismatch."""
    settings = get_settings()
    with database_session(settings.resolved_database_url) as db:
        findings = reconcile(db, settings.pinned_anchors())
    report_findings(findings)


def report_findings(findings: list[Finding]) -> None:
    """Print each finding; exit 1 when there is any."""
    if not findings:
        console.print("[green]reconciled[/green]: records, signatures and audit log agree")
        return
    for finding in findings:
        typer.echo(f"MISMATCH {finding}", err=True)
    typer.echo(f"{_count(len(findings), 'mismatch')} found", err=True)
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def checkpoint() -> None:
    """Sign a checkpoint for the log as it is now (also done automatically)."""
    settings = get_settings()
    with _service() as (tokens, sessions):
        holder = CheckpointKeyHolder(settings, tokens, sessions)
        try:
            published = holder.publish(sessions, operator_actor())
            witnessing = holder.witness()
        finally:
            holder.close()
    if published.signed:
        console.print(f"checkpoint signed at size {published.row.size}")
    else:
        console.print(f"nothing new since the checkpoint at size {published.row.size}")
    if witnessing is None:
        return
    for problem in witnessing.problems():
        typer.echo(f"witness {problem}", err=True)
    console.print(
        f"{witnessing.cosigned} of {len(holder.witnesses.witnesses)} witnesses cosigned the "
        f"checkpoint at {witnessing.size} (quorum {witnessing.quorum})"
    )
    if not witnessing.met:
        typer.echo("checkpoint NOT published: the witness quorum is not met", err=True)
        raise typer.Exit(1)


@audit_app.command("vkeys")
def vkeys() -> None:
    """The verifier keys of the keys that sign checkpoints, one a line, as
    /.well-known/certsvc/audit-vkeys serves them: publish them, pin them."""
    settings = get_settings()
    with database_session(settings.resolved_database_url) as db:
        lines = published_vkeys(db, settings)
    for line in lines:
        typer.echo(line)


@audit_app.command("rotate-key")
def rotate_key(
    algorithm: Annotated[
        str, typer.Option(help=f"the key to replace: {' or '.join(ALGORITHMS)}")
    ] = "ed25519",
    root_pin_stdin: Annotated[
        bool,
        typer.Option("--root-pin-stdin", help="read the root USBKey's PIN from one stdin line"),
    ] = False,
) -> None:
    """Replace a checkpoint key: a new one on the audit token, certified by the root (its PIN
    is asked), announced in the log and vouched for by a checkpoint of the old one; then the old
    one is retired, on record. Verifiers that follow the log follow the rotation."""
    if algorithm not in ALGORITHMS:
        raise typer.BadParameter(f"--algorithm: one of {', '.join(ALGORITHMS)}")
    root_pin = _secret("PIN of the root USBKey", root_pin_stdin)
    settings = get_settings()
    with _service() as (tokens, sessions):
        actor = operator_actor()
        new = rotate_checkpoint_key(
            settings, sessions, tokens, root_pin, actor, ALGORITHMS[algorithm]
        )
        with sessions() as db:
            lines = published_vkeys(db, settings)
    console.print(f"checkpoint key {new.label} signs from now on; vkeys to publish:")
    for line in lines:
        typer.echo(line)


@audit_app.command("reanchor")
def reanchor(
    officer: Annotated[str, typer.Option(help="the security officer who decides it")],
    reason: Annotated[str, typer.Option(help="why, e.g. the restore's ticket")],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="read the officer's password from one stdin line"),
    ] = False,
) -> None:
    """Give up the anchored checkpoint the database no longer extends — after restoring an
    older backup on purpose — and anchor the log as the database holds it. A security officer
    decides, with their password; the event names them, the operator, the checkpoint given up
    and what differs, and the checkpoint signed over it becomes the new anchor. Whoever kept the
    old checkpoint will see the fork: it is recorded, not hidden."""
    if not 10 <= len(reason.strip()) <= 400:
        raise typer.BadParameter("--reason: 10 to 400 characters")
    password = _secret(f"password of {officer}", password_stdin)
    settings = get_settings()
    with _service() as (tokens, sessions):
        holder = CheckpointKeyHolder(settings, tokens, sessions)
        try:
            with sessions.begin() as db:
                account = authenticate(db, officer, password, hasher=password_hasher(settings))
                if account is None or account.role is not Role.SECURITY_OFFICER:
                    record(
                        db,
                        operator_actor(),
                        REANCHOR,
                        "audit-anchor",
                        outcome="refused",
                        reason=f"{officer} is not a security officer with that password",
                    )
                    account = None
            if account is None:
                _refuse("re-anchoring needs a security officer's username and password")
            given_up = _given_up(settings, sessions, holder)
            with sessions.begin() as db:
                actor = Actor(account.username, account.id, account.role.value)
                record(
                    db,
                    actor,
                    REANCHOR,
                    "audit-anchor",
                    reason=reason.strip(),
                    details={
                        "operator": operator(),
                        "given_up_size": given_up.size,
                        "given_up_root": given_up.root,
                        "differs": given_up.differs,
                    },
                )
            published = holder.publish(sessions, actor, restart=True)
        finally:
            holder.close()
    console.print(
        f"audit log re-anchored at its checkpoint {published.row.size}; what was anchored "
        f"before is kept aside in {settings.audit_anchor_path}"
    )


@dataclass(frozen=True)
class GivenUp:
    """What re-anchoring gives up: the anchored checkpoint, and the first thing the database
    contradicts in it."""

    size: int | None
    root: str | None
    differs: str


def _given_up(
    settings: Settings, sessions: sessionmaker[Session], holder: CheckpointKeyHolder
) -> GivenUp:
    """Refused when there is nothing to give up, or when the database's log does not even
    agree with itself (re-anchoring would bless the damage)."""
    origin = settings.audit_origin
    with sessions() as db:
        keys = note_keys(db, settings)
        own = verify_log(db, origin, keys)
        if not own.ok:
            _refuse(f"the database's own log is not intact ({own.problems[0]})")
        try:
            anchored = holder.anchor.read(keys)
            against = verify_log(db, origin, keys, holder.anchor)
            differs = against.problems[0] if against.problems else None
        except AnchorDamaged as exc:
            anchored, differs = None, str(exc)
    if anchored is None:
        return GivenUp(None, None, (differs or "nothing was anchored")[:400])
    if differs is None:
        _refuse("the log extends its anchor; there is nothing to re-anchor")
    root = base64.b64encode(anchored.checkpoint.root_hash).decode()
    return GivenUp(anchored.size, root, differs[:400])


def _refuse(why: str) -> NoReturn:
    typer.echo(f"refused: {why}", err=True)
    raise typer.Exit(1)


def _secret(prompt: str, from_stdin: bool) -> str:
    """From one line of standard input (a secret store's pipe), or a hidden prompt; never an
    argument or a variable."""
    if from_stdin:
        return typer.get_text_stream("stdin").readline().rstrip("\r\n")
    secret: str = typer.prompt(prompt, hide_input=True)
    return secret


@audit_app.command("publish-tiles")
def publish_tiles_command(
    directory: Annotated[Path, typer.Argument(help="where to write (served as the tiles' URL)")],
) -> None:
    """Write the log up to its published checkpoint as C2SP tlog-tiles files (hash tiles,
    entry bundles, `checkpoint`) for any static web server or CDN; tiles already there are
    kept, and never replaced by others."""
    settings = get_settings()
    with _service() as (tokens, sessions):
        holder = CheckpointKeyHolder(settings, tokens, sessions)
        written = holder.publish_tiles(directory)
    if written is None:
        console.print(f"{directory} already holds the published checkpoint's tiles")
        return
    console.print(
        f"tiles of the checkpoint at {written.size} in {directory}: {written.written} files "
        f"written, {written.kept} kept"
    )


@audit_app.command("verify-tiles")
def verify_tiles_command(
    url: Annotated[str, typer.Argument(help="the tiles' URL prefix, e.g. https://…/audit/tiles")],
    vkey: Annotated[list[str], typer.Option(help="a vkey of the log (repeatable)")],
    event: Annotated[
        int | None, typer.Option(min=0, help="check this event's inclusion proof only")
    ] = None,
) -> None:
    """Check the log from its tiles alone, over HTTP, with nothing but its vkeys: the
    checkpoint's signature, then every entry against its tile and the root they make (or, with
    `--event`, that event's inclusion proof). Exit 1 naming what differs."""
    try:
        keys = [parse_vkey(line) for line in vkey]
    except InvalidNote as exc:
        raise typer.BadParameter(f"--vkey: {exc}") from None
    try:
        console.print(check_tiles(url.rstrip("/"), keys, event))
    except (TileError, InvalidNote) as exc:
        typer.echo(f"audit tiles NOT intact: {exc}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        typer.echo(f"audit tiles unreadable: {exc}", err=True)
        raise typer.Exit(1) from None


@audit_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="bundle file to write (JSON)")],
    since: Annotated[datetime | None, typer.Option(help="first event time (UTC)")] = None,
    until: Annotated[datetime | None, typer.Option(help="end of the range (UTC)")] = None,
) -> None:
    """Write events of a time range, with proofs and checkpoints, as a self-contained bundle."""
    settings = get_settings()
    with database_session(settings.resolved_database_url, writer=True) as db:
        bundle = export_bundle(db, settings, operator_actor(), since, until)
    with open_for_writing(out, "out") as stream:
        stream.write(json.dumps(bundle, indent=1))
    fingerprints = ", ".join(certificate_fingerprint(c) for c in bundle_certificates(bundle))
    console.print(
        f"wrote {len(bundle['events'])} events to {out}; checkpoint key fingerprints {fingerprints}"
    )


@audit_app.command("verify-bundle")
def verify_bundle_command(bundle: Path) -> None:
    """Check a bundle offline: signatures, consistency and inclusion proofs. Compare the printed
    key fingerprints with the ones the certifying body publishes."""
    try:
        data = json.loads(bundle.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"bundle: cannot read {bundle} as JSON ({exc})") from None
    verdict = verify_bundle(data)
    if verdict.ok:
        fingerprints = ", ".join(certificate_fingerprint(c) for c in bundle_certificates(data))
        console.print(f"checkpoint key fingerprints {fingerprints}")
    _report(verdict, "bundle")
