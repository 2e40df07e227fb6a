"""`certsvc backup OUT` and `certsvc restore IN`: the whole database in one file, and back.

SQLite is copied with the online backup API (the service may keep running); PostgreSQL with
`pg_dump -Fc` and `pg_restore --clean --if-exists --single-transaction`. The connection details
reach the PostgreSQL tools through their environment (`PGHOST`, `PGUSER`, `PGPASSWORD` …), never
their command line, so no password shows in a process list, and none is ever printed.

A backup file is a first line `CERTSVC-BACKUP 1`, one line of JSON (backend, schema revision,
time, audit log size, SHA-256 and length of the payload), then the payload (a SQLite database or
a `pg_dump` archive). Restore refuses anything else, a payload that does not match its checksum
and a backup of the other backend. After restoring it recomputes the audit log and checks it
against every signed checkpoint it holds, against the checkpoint anchored outside the database
(`audit.anchor`) and, with `--checkpoint`, against a checkpoint note kept from
`/.well-known/certsvc/audit-checkpoint`: exit 1 if the restored log is not intact, or older
than what was checkpointed (then the service signs no checkpoint until a security officer
re-anchors the log: `certsvc audit reanchor`). The checksum only catches damage; it is the
signed checkpoints and the anchor that catch tampering and rollback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from sqlalchemy import URL, func, make_url, select
from sqlalchemy.orm import Session

from audit.anchor import Anchor
from audit.models import AuditCheckpoint, AuditHead
from audit.verify import Kept, verify_log
from certsvc.audit_keys import note_keys
from certsvc.console.models import ConsoleTotp
from certsvc.db import (
    database_session,
    head_revision,
    make_engine,
    safe_url,
)
from certsvc.settings import Settings, get_settings
from common.errors import CertsvcError
from common.files import open_for_writing

MAGIC = b"CERTSVC-BACKUP 1\n"
HEADER_LIMIT = 64 * 1024
CHUNK = 1024 * 1024
TOOL_TIMEOUT_SECONDS = 3600


class BackupError(CertsvcError):
    """A backup or restore that cannot be done; the message says why in one line."""


def _backend(url: URL) -> str:
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"backup: unsupported database {safe_url(str(url))}")
    return backend


def _sqlite_path(url: URL) -> Path:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("backup: the SQLite database must be a file path")
    return Path(database).expanduser()


def _pg_environment(url: URL) -> dict[str, str]:
    """The child's environment for `pg_dump`/`pg_restore`: connection details as PG* variables,
    so that nothing secret is on the command line; inherited PG* variables are dropped."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    fields = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password if isinstance(url.password, str) else None,
        "PGDATABASE": url.database,
    }
    for name, value in fields.items():
        if value:
            env[name] = value
    for option, variable in (
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
        ("host", "PGHOST"),
        ("port", "PGPORT"),
    ):
        given = url.query.get(option)
        if isinstance(given, tuple):
            given = given[-1] if given else None
        if given:
            env[variable] = given
    return env


def _run_tool(args: list[str], url: URL) -> None:
    tool = shutil.which(args[0])
    if tool is None:
        raise BackupError(f"{args[0]} not found: install the PostgreSQL client tools")
    try:
        result = subprocess.run(
            [tool, *args[1:]],
            env=_pg_environment(url),
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{args[0]} did not finish in {TOOL_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit status {result.returncode}"
        password = url.password if isinstance(url.password, str) else None
        if password:
            reason = reason.replace(password, "***")
        raise BackupError(f"{args[0]} failed: {reason}")


def _audit_summary(db: Session) -> tuple[int, int | None]:
    size = db.scalar(select(AuditHead.size).where(AuditHead.id == 1)) or 0
    latest = db.scalar(select(func.max(AuditCheckpoint.size)))
    return int(size), None if latest is None else int(latest)


@contextmanager
def _scratch(directory: Path) -> Iterator[Path]:
    handle, name = tempfile.mkstemp(prefix=".certsvc-backup-", dir=directory)
    os.close(handle)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _dump(url: URL, into: Path) -> None:
    if _backend(url) == "sqlite":
        source = sqlite3.connect(f"file:{_sqlite_path(url)}?mode=ro", uri=True)
        target = sqlite3.connect(into)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return
    _run_tool(["pg_dump", "--format=custom", "--no-owner", f"--file={into}"], url)


def _write_backup(out: Path, header: dict[str, Any], payload: Path) -> None:
    temporary = out.with_name(f".{out.name}.partial")
    with open_for_writing(temporary, "OUT", "wb") as stream:
        stream.write(MAGIC)
        stream.write(json.dumps(header, sort_keys=True).encode() + b"\n")
        with payload.open("rb") as source:
            shutil.copyfileobj(source, stream, CHUNK)
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(out)


def _payload_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def backup(
    out: Annotated[Path, typer.Argument(help="backup file to write (owner-only)")],
) -> None:
    """Copy the whole database into one file while the service keeps running."""
    settings = get_settings()
    url = make_url(settings.resolved_database_url)
    backend = _backend(url)
    if out.is_dir():
        raise BackupError(f"OUT: {out} is a directory")
    with database_session(settings.resolved_database_url) as db:
        events, latest = _audit_summary(db)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _scratch(out.parent) as payload:
        _dump(url, payload)
        digest, size = _payload_digest(payload)
        header = {
            "format": 1,
            "backend": backend,
            "schema_revision": head_revision(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "audit_events": events,
            "audit_latest_checkpoint": latest,
            "payload_sha256": digest,
            "payload_bytes": size,
        }
        _write_backup(out, header, payload)
    typer.echo(
        f"backup of {safe_url(str(url))} written to {out}: {size} bytes, "
        f"audit log at {events} events"
    )
    typer.echo(
        f"not in it, by design: the keys that open what it holds sealed — the service PIN file "
        f"and the console's TOTP key ({settings.console_key_file}) — nor the tokens and the "
        "audit anchor; keep those in the secret store's own backup",
        err=True,
    )


def _read_header(stream: IO[bytes], source: Path) -> dict[str, Any]:
    not_ours = f"{source} is not a certsvc backup"
    if stream.read(len(MAGIC)) != MAGIC:
        raise BackupError(not_ours)
    line = stream.readline(HEADER_LIMIT)
    try:
        header = json.loads(line)
    except ValueError:
        raise BackupError(f"{not_ours} (unreadable header)") from None
    if (
        not isinstance(header, dict)
        or header.get("format") != 1
        or header.get("backend") not in ("sqlite", "postgresql")
        or not isinstance(header.get("payload_sha256"), str)
        or not isinstance(header.get("payload_bytes"), int)
    ):
        raise BackupError(f"{not_ours} (unknown header)")
    return header


def _extract(source: Path, into: Path) -> dict[str, Any]:
    """Check the file and copy its payload to `into`; the header when all is well."""
    try:
        stream = source.open("rb")
    except OSError as exc:
        raise BackupError(f"IN: cannot read {source} ({exc.strerror})") from None
    with stream, open_for_writing(into, "IN", "wb") as target:
        header = _read_header(stream, source)
        shutil.copyfileobj(stream, target, CHUNK)
    digest, size = _payload_digest(into)
    if size != header["payload_bytes"] or digest != header["payload_sha256"]:
        raise BackupError(f"{source} is damaged: its content does not match its checksum")
    return header


def _load(url: URL, payload: Path) -> None:
    if _backend(url) == "sqlite":
        with sqlite3.connect(payload) as check:
            if check.execute("PRAGMA integrity_check").fetchone() != ("ok",):
                raise BackupError("the backup's SQLite database fails its integrity check")
        path = _sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(payload)
        target = sqlite3.connect(path, timeout=30)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return
    _run_tool(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--no-owner",
            f"--dbname={url.database}",
            str(payload),
        ],
        url,
    )


def restore(
    source: Annotated[Path, typer.Argument(metavar="IN", help="a file `certsvc backup` wrote")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="a checkpoint note kept from /.well-known/certsvc/audit-checkpoint"),
    ] = None,
) -> None:
    """Replace the database's content with a backup, then verify the restored audit log."""
    settings = get_settings()
    url = make_url(settings.resolved_database_url)
    backend = _backend(url)
    kept = []
    if checkpoint is not None:
        try:
            kept.append(Kept(f"the checkpoint in {checkpoint}", checkpoint.read_text()))
        except (OSError, UnicodeDecodeError) as exc:
            raise BackupError(f"--checkpoint: cannot read {checkpoint} ({exc})") from None
    # A bad URL fails before anything; restoring into a new home makes its SQLite file.
    make_engine(settings.resolved_database_url, create=True).dispose()
    scratch_dir = (
        Path(tempfile.gettempdir()) if backend == "postgresql" else _sqlite_path(url).parent
    )
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with _scratch(scratch_dir) as payload:
        header = _extract(source, payload)
        if header["backend"] != backend:
            raise BackupError(
                f"{source} is a {header['backend']} backup; the database is {backend}"
            )
        if header.get("schema_revision") != head_revision():
            raise BackupError(
                f"{source} has schema revision {header.get('schema_revision')}, this version"
                f" needs {head_revision()}: restore it with the version that wrote it"
            )
        _load(url, payload)
    with database_session(settings.resolved_database_url) as db:
        keys = note_keys(db, settings)
        anchor = Anchor(settings.audit_anchor_path)
        verdict = verify_log(db, settings.audit_origin, keys, anchor, kept)
        intact = verdict.ok or verify_log(db, settings.audit_origin, keys).ok
    _console_key_check(settings)
    if not verdict.ok:
        typer.echo(
            f"restored {source}, but its audit log is NOT intact: {verdict.problems[0]}"
            + (
                ""
                if not intact
                else "; if going back was meant, a security officer re-anchors the log "
                "(`certsvc audit reanchor`), else restore a newer backup"
            ),
            err=True,
        )
        raise typer.Exit(1)
    latest = (
        f", verified against the checkpoint at {verdict.latest_checkpoint}"
        if verdict.latest_checkpoint is not None
        else ", no signed checkpoint in it"
    )
    typer.echo(
        f"restored {source} (made {header.get('created_at')}) into {safe_url(str(url))}: "
        f"audit log intact, {verdict.events} events{latest}"
    )


def _console_key_check(settings: Settings) -> None:
    """Say so when the restored database holds console second factors and their sealing key
    is not where the service looks: it is never in a backup (a DBA reading one must not open
    them), and the console would make a new key at the next sign-in that opens none."""
    with database_session(settings.resolved_database_url) as db:
        enrolled = db.scalar(
            select(func.count())
            .select_from(ConsoleTotp)
            .where(ConsoleTotp.confirmed_at.is_not(None))
        )
    if enrolled and not settings.console_key_file.exists():
        typer.echo(
            f"the console's TOTP key {settings.console_key_file} is missing: the {enrolled} "
            "second factor(s) in this backup open only under the key they were sealed with; "
            "restore it from the secret store's backup before anyone signs in to the console",
            err=True,
        )
