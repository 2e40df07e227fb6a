"""The last signed checkpoint, kept where the database's administrator cannot reach it.

A directory owned by the service user (0700, its files 0600), outside the database:

- `anchor.json`: the newest checkpoint note the log signed, and the perfect-subtree hashes of
  its tree (its compact range), so that the next head is proved an extension of it from the
  new entries alone;
- `leaves`: the hash of every entry that checkpoint covers, 32 bytes each, in log order, so that
  `audit verify` names the first entry a rewritten database changed, not just that one did;
- `published`: the checkpoint the service publishes — the newest anchored one that met the
  witness quorum, with its cosignatures (`certsvc.witness_client`); with no quorum, each
  anchored checkpoint as it is signed.

The log signs a head only if it extends the anchor (`audit.publish`), and the anchor moves
forward only after the checkpoint is committed. Writes happen under an exclusive lock: new
hashes are appended and synced first, then `anchor.json` is replaced atomically (rename), so a
crash between the two leaves hashes past the anchored size, which are ignored and overwritten.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit.checkpoints import Checkpoint, parse_checkpoint
from audit.merkle import CompactRange
from audit.note import InvalidNote, NoteKey, open_note
from common.errors import ServiceFault

FORMAT = "certsvc-audit-anchor/1"
HASH = 32
STATE = "anchor.json"
LEAVES = "leaves"
PUBLISHED = "published"
LOCK = "lock"
CHUNK = 32 * 1024


class AnchorDamaged(ServiceFault):
    """The anchor directory cannot be trusted as it is: unreadable, open to other users, or
    not matching its own signed checkpoint."""


@dataclass(frozen=True)
class Anchored:
    """What the anchor holds: the signed note, its checkpoint, the compact range of its tree."""

    note: str
    checkpoint: Checkpoint
    subtrees: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return self.checkpoint.size

    def compact(self) -> CompactRange:
        return CompactRange.restore(self.size, self.subtrees)


class Anchor:
    """The anchor directory at `directory` (made on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def exists(self) -> bool:
        """Whether anything was anchored here (without reading it)."""
        return (self.directory / STATE).exists()

    def read(self, keys: Iterable[NoteKey]) -> Anchored | None:
        """The anchored checkpoint, its note opened with `keys`; None when nothing is anchored
        yet. `AnchorDamaged` when the directory is not as this module leaves it."""
        anchored = self._load()
        if anchored is not None:
            try:
                open_note(anchored.note, keys)
            except InvalidNote as exc:
                raise AnchorDamaged(f"audit anchor {self.directory}: {exc}") from None
        return anchored

    def leaves(self, size: int) -> Iterator[bytes]:
        """The first `size` anchored leaf hashes, in order."""
        with (self.directory / LEAVES).open("rb") as stream:
            left = size * HASH
            while left:
                chunk = stream.read(min(CHUNK, left))
                if not chunk or len(chunk) % HASH:
                    raise AnchorDamaged(f"audit anchor {self.directory}: leaf hashes cut short")
                left -= len(chunk)
                for offset in range(0, len(chunk), HASH):
                    yield chunk[offset : offset + HASH]

    def advance(
        self, note: str, checkpoint: Checkpoint, start: int, hashes: Sequence[bytes]
    ) -> bool:
        """Move the anchor to `checkpoint` (signed as `note`), whose leaves from `start` on have
        `hashes`; False when it is there or further already (another worker moved it). The new
        root must be the anchored tree extended by the new hashes."""
        with self._locked():
            current = self._load()
            have = current.size if current is not None else 0
            if checkpoint.size <= have:
                return False
            if not start <= have <= start + len(hashes) or start + len(hashes) != checkpoint.size:
                raise AnchorDamaged(
                    f"audit anchor at {have}: the new checkpoint's hashes cover {start} to "
                    f"{start + len(hashes)}, not {have} to {checkpoint.size}"
                )
            added = hashes[have - start :]
            tree = current.compact() if current is not None else CompactRange()
            for digest in added:
                tree.append(digest)
            if tree.root() != checkpoint.root_hash:
                raise AnchorDamaged(
                    f"the checkpoint at {checkpoint.size} does not extend the anchored one at "
                    f"{have}: not anchored"
                )
            self._append_leaves(have, added)
            self._write_state(note, tree)
        return True

    def start(self, note: str, checkpoint: Checkpoint, hashes: Sequence[bytes]) -> Path | None:
        """Anchor `checkpoint` afresh, from entry 0 (`hashes` holds every leaf hash): for a log
        anchored for the first time, or re-anchored on purpose. Whatever was anchored before is
        moved aside, never deleted; its new place is returned."""
        if len(hashes) != checkpoint.size:
            raise AnchorDamaged(f"a fresh anchor at {checkpoint.size} needs that many hashes")
        tree = CompactRange()
        for digest in hashes:
            tree.append(digest)
        if tree.root() != checkpoint.root_hash:
            raise AnchorDamaged(f"the hashes given do not make the checkpoint at {checkpoint.size}")
        with self._locked():
            kept: Path | None = None
            if (self.directory / STATE).exists():
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
                kept = self.directory / f"replaced-{stamp}"
                kept.mkdir(mode=0o700)
                for name in (STATE, LEAVES, PUBLISHED):
                    if (self.directory / name).exists():
                        os.replace(self.directory / name, kept / name)
            self._append_leaves(0, hashes)
            self._write_state(note, tree)
        return kept

    def published(self, keys: Iterable[NoteKey]) -> str | None:
        """The published note, opened with `keys`; None when nothing was published here (an
        anchor made before publication was kept apart from it)."""
        try:
            self._owner_only(self.directory / PUBLISHED)
            note = (self.directory / PUBLISHED).read_text()
            open_note(note, keys)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise AnchorDamaged(f"audit anchor {self.directory}: published note ({exc})") from None
        return note

    def publish(self, note: str, checkpoint: Checkpoint) -> bool:
        """Publish `note` (the anchored checkpoint `checkpoint`, perhaps with cosignatures);
        False when a checkpoint at least as large is published already (another worker)."""
        with self._locked():
            current = self._load()
            if current is None or current.checkpoint.size < checkpoint.size:
                raise AnchorDamaged(f"the checkpoint at {checkpoint.size} is not anchored yet")
            if checkpoint.size < current.size:
                leaves = list(self.leaves(checkpoint.size))
                tree = CompactRange()
                for digest in leaves:
                    tree.append(digest)
                if tree.root() != checkpoint.root_hash:
                    raise AnchorDamaged(f"the checkpoint at {checkpoint.size} is not anchored")
            elif current.checkpoint != checkpoint:
                raise AnchorDamaged(f"the checkpoint at {checkpoint.size} is not the anchored one")
            path = self.directory / PUBLISHED
            if path.exists():
                text = path.read_text()
                if parse_checkpoint(text[: text.rfind("\n\n") + 1]).size >= checkpoint.size:
                    return False
            self._replace(PUBLISHED, note.encode())
        return True

    # --- files ------------------------------------------------------------------------------

    def _load(self) -> Anchored | None:
        path = self.directory / STATE
        try:
            self._owner_only(self.directory)
            self._owner_only(path)
            data: Any = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError("unknown format")
            note = str(data["note"])
            text = note[: note.rfind("\n\n") + 1]
            checkpoint = parse_checkpoint(text)
            subtrees = tuple(base64.b64decode(h, validate=True) for h in data["subtrees"])
            tree = CompactRange.restore(checkpoint.size, subtrees)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise AnchorDamaged(f"audit anchor {self.directory}: unreadable ({exc})") from None
        if tree.root() != checkpoint.root_hash:
            raise AnchorDamaged(f"audit anchor {self.directory}: its tree is not its checkpoint's")
        leaves = self.directory / LEAVES
        if not leaves.exists() or leaves.stat().st_size < checkpoint.size * HASH:
            raise AnchorDamaged(f"audit anchor {self.directory}: leaf hashes cut short")
        return Anchored(note, checkpoint, subtrees)

    def _owner_only(self, path: Path) -> None:
        found = path.stat()
        if stat.S_IMODE(found.st_mode) & 0o077 or found.st_uid != os.geteuid():
            raise ValueError(f"{path.name} must belong to the service user and be private to it")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _append_leaves(self, at: int, hashes: Sequence[bytes]) -> None:
        fd = os.open(self.directory / LEAVES, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, at * HASH)
            os.lseek(fd, at * HASH, os.SEEK_SET)
            pending = memoryview(b"".join(hashes))
            while pending:
                pending = pending[os.write(fd, pending) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_state(self, note: str, tree: CompactRange) -> None:
        state = {
            "format": FORMAT,
            "note": note,
            "subtrees": [base64.b64encode(h).decode() for h in tree.subtrees],
        }
        self._replace(STATE, json.dumps(state, indent=1).encode())

    def _replace(self, name: str, content: bytes) -> None:
        """Write a temporary file, sync it, rename it over `name`, sync the directory."""
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.directory / name)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
