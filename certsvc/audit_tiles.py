"""Writes the audit log up to its published checkpoint as C2SP tlog-tiles files, for any static
web server or CDN (and `verify.tiles`): hash tiles, entry bundles, then `checkpoint`.

Only a history that makes the published checkpoint is written (the entries are re-hashed from
their bytes), and a full tile or bundle already there is never replaced: were the database's
history to differ from what was published before, writing stops at the first tile that would
change, naming it. Each file is written to a temporary name and renamed into place
(`write_published`), the checkpoint last, so a reader never sees a checkpoint whose tiles are
missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.checkpoints import Checkpoint
from audit.merkle import CompactRange, leaf_hash
from audit.models import AuditEventRow
from audit.tiles import WIDTH, bundle, levels, tile_content, tiles_for
from common.errors import ServiceFault
from common.files import write_published

CHECKPOINT = "checkpoint"


class TilesRefused(ServiceFault):
    """The tiles cannot be written without contradicting the checkpoint or earlier tiles."""


@dataclass(frozen=True)
class TilesWritten:
    size: int
    written: int
    kept: int


def publish_tiles(db: Session, note: str, checkpoint: Checkpoint, directory: Path) -> TilesWritten:
    """Write the tiles of the tree `checkpoint` names (signed as `note`) into `directory`."""
    query = (
        select(AuditEventRow.leaf)
        .where(AuditEventRow.idx < checkpoint.size)
        .order_by(AuditEventRow.idx)
    )
    leaves = [bytes(leaf) for leaf in db.scalars(query)]
    if len(leaves) != checkpoint.size:
        raise TilesRefused(f"audit log entries below {checkpoint.size} are missing")
    hashes = [leaf_hash(leaf) for leaf in leaves]
    tree = CompactRange()
    for digest in hashes:
        tree.append(digest)
    if tree.root() != checkpoint.root_hash:
        raise TilesRefused(
            f"the database's entries do not make the published checkpoint at {checkpoint.size}: "
            "nothing written; run `certsvc audit verify`"
        )
    by_level = levels(hashes)
    written = kept = 0
    for tile in tiles_for(checkpoint.size):
        if tile.level is None:
            start = tile.index * WIDTH
            content = bundle(leaves[start : start + tile.width])
        else:
            content = tile_content(tile, by_level)
        path = directory / tile.path
        if path.exists():
            if path.read_bytes() != content:
                raise TilesRefused(
                    f"{tile.path} in {directory} holds other content: tiles never change, so "
                    "another history was published there; nothing more written"
                )
            kept += 1
            continue
        write_published(path, content)
        written += 1
    write_published(directory / CHECKPOINT, note.encode())
    return TilesWritten(checkpoint.size, written, kept)
