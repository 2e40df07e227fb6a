"""`certsvc audit verify-tiles`: the log checked from its tiles over HTTP with nothing but the
log's vkeys — no database, no token: what an outside auditor or a mirror runs."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from audit.checkpoints import parse_checkpoint
from audit.merkle import leaf_hash, verify_inclusion
from audit.note import NoteKey, open_note
from audit.tiles import WIDTH, TileError, TileReader


def check_tiles(base: str, keys: Sequence[NoteKey], event: int | None) -> str:
    """A one-line summary when the tiles at `base` hold a log signed by `keys`; `TileError`
    (or `InvalidNote`) naming the first thing that differs, `httpx.HTTPError` when a file
    cannot be fetched."""
    with httpx.Client(timeout=30, headers={"Accept-Encoding": "gzip, identity"}) as http:

        def fetch(path: str) -> bytes:
            response = http.get(f"{base}/{path}")
            if response.status_code != 200:
                raise TileError(f"{path}: answered {response.status_code}")
            return response.content

        note = fetch("checkpoint").decode()
        checkpoint = parse_checkpoint(open_note(note, keys).text)
        reader = TileReader(checkpoint.size, fetch)
        if event is not None:
            if event >= checkpoint.size:
                raise TileError(f"event {event}: outside the checkpoint of {checkpoint.size}")
            entry = reader.entries(event // WIDTH)[event % WIDTH]
            proof = reader.inclusion_proof(event)
            if not verify_inclusion(
                leaf_hash(entry), event, checkpoint.size, proof, checkpoint.root_hash
            ):
                raise TileError(f"event {event}: its inclusion proof from the tiles fails")
            return f"event {event} is in the signed checkpoint at {checkpoint.size}"
        if checkpoint.size and reader.root() != checkpoint.root_hash:
            raise TileError("the tiles do not make the signed checkpoint's root")
        count = sum(1 for _ in reader.all_entries())
        return (
            f"audit tiles intact: {count} entries make the signed checkpoint at {checkpoint.size}"
        )
