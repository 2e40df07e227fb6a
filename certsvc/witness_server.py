"""A C2SP tlog-witness (`certsvc witness serve`): what a second party — the provincial
inspectors, a neighbouring body — runs to cosign this log's checkpoints, and so to notice when it
is shown a history that contradicts one it cosigned before (a split view, a rollback).

It holds its own Ed25519 key (a file, 0600) and, per log origin, the last checkpoint it cosigned,
in `state.json` of its state directory, replaced atomically; checking a request against that
record and writing the new one happen under one lock, as the spec requires. It imports nothing
of the service but the pure protocol: a witness needs no database, token or vault.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from audit.checkpoints import Checkpoint, parse_checkpoint
from audit.note import InvalidNote, NoteKey, open_note
from audit.witness_protocol import (
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    BadRequest,
    Unprocessable,
    check_consistent,
    cosign,
    parse_add_checkpoint,
    witness_key,
)

logger = logging.getLogger(__name__)
STATE = "state.json"
FORMAT = "certsvc-witness/1"
TEXT = "text/plain; charset=utf-8"


class WitnessKeyError(ValueError):
    """The witness's key file is missing, unreadable, open to others or not Ed25519."""


def make_key(path: Path) -> Ed25519PrivateKey:
    """A new witness key in `path` (PKCS#8 PEM, created 0600; an existing file is kept)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        if path.stat().st_mode & 0o077:
            raise WitnessKeyError(f"witness key {path}: must be readable by its owner only")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise WitnessKeyError(
            f"witness key {path}: cannot read it ({type(exc).__name__})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise WitnessKeyError(f"witness key {path}: not an Ed25519 key")
    return key


@dataclass
class WitnessState:
    """The last cosigned checkpoint per origin (its note, with the cosignature), on disk."""

    directory: Path

    def load(self) -> dict[str, str]:
        try:
            data = json.loads((self.directory / STATE).read_text())
        except FileNotFoundError:
            return {}
        if data.get("format") != FORMAT or not isinstance(data.get("logs"), dict):
            raise ValueError(f"{self.directory / STATE}: not a witness state file")
        return {str(origin): str(note) for origin, note in data["logs"].items()}

    def save(self, logs: dict[str, str]) -> None:
        """Written to a temporary file, synced, then renamed over the old one."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.directory / f".{STATE}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"format": FORMAT, "logs": logs}, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.directory / STATE)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class Refused(Exception):
    """A request the witness answers with `status` and `body` (no cosignature)."""

    def __init__(self, status: int, body: str, media_type: str = TEXT) -> None:
        super().__init__(body)
        self.status, self.body, self.media_type = status, body, media_type


class Witness:
    """The witness `name` with `key`, cosigning the logs of `log_keys` (origin = key name)."""

    def __init__(
        self, name: str, key: Ed25519PrivateKey, log_keys: Iterable[NoteKey], state: WitnessState
    ) -> None:
        self.name, self._key, self._state = name, key, state
        self.public = witness_key(name, key.public_key())
        self._logs: dict[str, list[NoteKey]] = {}
        for log_key in log_keys:
            self._logs.setdefault(log_key.name, []).append(log_key)
        self._notes = state.load()
        self._lock = asyncio.Lock()

    def known(self, origin: str) -> Checkpoint | None:
        note = self._notes.get(origin)
        return None if note is None else parse_checkpoint(note[: note.rfind("\n\n") + 1])

    async def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line for a good request; `Refused` with the spec's status else."""
        try:
            request = parse_add_checkpoint(body)
        except BadRequest as exc:
            raise Refused(400, f"{exc}\n") from None
        origin = request.checkpoint.origin
        trusted = self._logs.get(origin)
        if trusted is None:
            raise Refused(404, "unknown log\n")
        try:
            open_note(request.note, trusted)
        except InvalidNote as exc:
            raise Refused(403, f"{exc}\n") from None
        async with self._lock:
            return self._cosign_locked(request)

    def _cosign_locked(self, request: AddCheckpoint) -> str:
        origin = request.checkpoint.origin
        known = self.known(origin)
        known_size = known.size if known is not None else 0
        if request.old_size != known_size:
            raise Refused(409, f"{known_size}\n", SIZE_CONTENT_TYPE)
        try:
            check_consistent(request, known)
        except Unprocessable as exc:
            logger.warning("witness: refused a checkpoint of %s: %s", origin, exc)
            raise Refused(422, f"{exc}\n") from None
        text = request.note[: request.note.rfind("\n\n") + 1]
        line = cosign(self.name, self._key, text, int(time.time()))
        notes = dict(self._notes)
        notes[origin] = request.note + line
        self._state.save(notes)  # persisted before answering
        self._notes = notes
        return line

    def latest(self, origin_hash: str) -> str | None:
        """The last cosigned note of the log whose origin hashes (SHA-256, hex) to this."""
        for origin, note in self._notes.items():
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash:
                return note
        return None


def create_witness_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="certsvc witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        try:
            line = await witness.add_checkpoint(await request.body())
        except Refused as refused:
            # Exactly the spec's type: Starlette would add a charset to a text/* media type.
            return Response(refused.body, refused.status, {"content-type": refused.media_type})
        return PlainTextResponse(line, media_type=TEXT)

    @app.get("/{origin_hash}/checkpoint")
    async def checkpoint(origin_hash: str) -> Response:
        note = witness.latest(origin_hash)
        if note is None:
            return PlainTextResponse("never cosigned\n", 404, media_type=TEXT)
        return PlainTextResponse(note, media_type=TEXT)

    return app
