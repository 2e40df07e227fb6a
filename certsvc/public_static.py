"""The public side's signed objects as static files in `CERTSVC_PUBLIC_STATIC_DIR`, written by
the register relay, so that nginx or a CDN serves them without Python: the trust list, the
revocation list (current, and each version by number), the audit checkpoint and the audit
log's tiles. Paths are the service's URL paths, bytes the service's (`verify.published`).

Only what the public routes would serve is written: a trust list that opens under the pinned
anchors, revocation lists whose signatures hold under it, the published checkpoint note and
tiles that make it. Each file appears whole (`common.files.write_published`); a current file is
never replaced by an older version (a restored database offers one), whatever this process
remembers. One writer at a time per directory (a lock file), as several workers each run a
relay."""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from audit.anchor import Anchor
from certsvc.audit_keys import public_note, publish_published_tiles
from certsvc.settings import Settings
from certsvc.witness_client import WitnessClient
from common.errors import ServiceFault
from common.files import published_dir, write_published
from verify.proof import RegisterProof
from verify.published import (
    AUDIT_CHECKPOINT_PATH,
    CHECKPOINT_CACHE,
    CURRENT,
    IMMUTABLE,
    REVOCATIONS_PATH,
    TEXT,
    TILES_PATH,
    TRUST_LIST_PATH,
    WELL_KNOWN,
    revocation_list_bytes,
    revocation_list_version,
    revocations_version_path,
    served_revocation_list,
    served_trust_list,
    trust_list_bytes,
)

log = logging.getLogger("certsvc.public_static")
LOCK = ".certsvc-static.lock"


class StaticFilesRefused(ServiceFault):
    """A current file would go back to an older version: nothing replaced."""


class StaticFiles:
    """The static files of one directory; `refresh()` brings them up to date (cheap when
    nothing changed: it compares with what it wrote last)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], directory: Path):
        self.directory = directory
        self._settings = settings
        self._sessions = sessions
        self._proof = RegisterProof(sessions, settings.pinned_anchors())
        self._anchor = Anchor(settings.audit_anchor_path)
        self._witnesses = WitnessClient.from_settings(
            settings.audit_witnesses, settings.audit_witness_quorum
        )
        self._last: dict[str, bytes] = {}
        self._versions_written = 0  # every revocation list version up to it is on disk
        self._refused: set[int] = set()
        self._cleaned = False

    def refresh(self) -> list[str]:
        """Write what changed; the URL paths written."""
        written: list[str] = []
        published_dir(self.directory)
        with self._locked():
            if not self._cleaned:
                for left in self.directory.rglob(".*.tmp"):  # by a writer killed mid-write
                    left.unlink(missing_ok=True)
                self._cleaned = True
            with self._sessions() as db:
                trust = served_trust_list(self._proof, db)
                if trust is not None:
                    self._current(TRUST_LIST_PATH, "trust_list", trust_list_bytes(trust), written)
                current = served_revocation_list(self._proof, db)
                if current is not None:
                    self._versions(db, current.version, written)
                    content = revocation_list_bytes(current)
                    self._current(REVOCATIONS_PATH, "revocation_list", content, written)
            note = public_note(self._settings, self._sessions, self._anchor, self._witnesses)
            if note is not None:
                tiles = self._file(TILES_PATH)
                if publish_published_tiles(note, self._sessions, tiles) is not None:
                    written.append(TILES_PATH + "/")
                self._write(AUDIT_CHECKPOINT_PATH, note.encode(), written)
        return written

    def _file(self, url_path: str) -> Path:
        return self.directory / url_path.lstrip("/")

    def _write(self, url_path: str, content: bytes, written: list[str]) -> None:
        if self._last.get(url_path) == content:
            return
        path = self._file(url_path)
        if not path.exists() or path.read_bytes() != content:
            write_published(path, content)
            written.append(url_path)
        self._last[url_path] = content

    def _current(self, url_path: str, key: str, content: bytes, written: list[str]) -> None:
        if self._last.get(url_path) == content:
            return
        version = json.loads(content)[key]["version"]
        try:
            on_disk = json.loads(self._file(url_path).read_bytes())[key]["version"]
        except FileNotFoundError:
            on_disk = 0
        except (OSError, ValueError, KeyError, TypeError):
            on_disk = 0  # not ours (or damaged): replaced by the signed one
        if int(on_disk) > int(version):
            raise StaticFilesRefused(
                f"{url_path}: version {on_disk} is published, the database offers {version} "
                "(restored from a backup?); not replaced"
            )
        self._write(url_path, content, written)

    def _versions(self, db: Session, upto: int, written: list[str]) -> None:
        for version in range(self._versions_written + 1, upto + 1):
            url_path = revocations_version_path(version)
            if self._file(url_path).exists():
                continue
            signed = revocation_list_version(self._proof, db, version)
            if signed is None:
                if version not in self._refused:
                    log.warning("revocation list version %d does not verify: not written", version)
                self._refused.add(version)
                return
            self._write(url_path, revocation_list_bytes(signed), written)
        self._versions_written = max(self._versions_written, upto)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def static_files(settings: Settings, sessions: sessionmaker[Session]) -> StaticFiles | None:
    """The relay's static files when `CERTSVC_PUBLIC_STATIC_DIR` is set."""
    if settings.public_static_dir is None:
        return None
    return StaticFiles(settings, sessions, settings.public_static_dir)


def _served(media_type: str, cache_control: str) -> str:
    return (
        f'types {{ }} default_type "{media_type}"; '
        f'add_header Cache-Control "{cache_control}" always; '
        'add_header X-Content-Type-Options "nosniff" always; '
        'add_header Referrer-Policy "no-referrer" always;'
    )


def nginx_locations(directory: Path) -> str:
    """nginx `location` blocks serving `directory` (a `server` block includes them) with the
    service's media types and Cache-Control. nginx's own ETag (modification time and size,
    which `write_published` changes with every new content) and its 304 answers apply; a
    writer's temporary file and the lock are never served. Plain prefix locations, so the
    regular expression refusing temporary files is matched before them."""
    root = str(directory.resolve())
    json_type = "application/json"
    text_type = TEXT
    lines = [
        f"# certsvc public static files, written by the register relay into {root}",
        r"location ~ /\.[^/]*\.tmp$ { return 404; }",
        f"location = /{LOCK} {{ return 404; }}",
        f"location = {TRUST_LIST_PATH} {{ root {root}; {_served(json_type, CURRENT)} }}",
        f"location = {REVOCATIONS_PATH} {{ root {root}; {_served(json_type, CURRENT)} }}",
        f"location {WELL_KNOWN}/revocations/ {{ root {root}; {_served(json_type, IMMUTABLE)} }}",
        f"location = {AUDIT_CHECKPOINT_PATH} {{ root {root}; "
        f"{_served(text_type, CHECKPOINT_CACHE)} }}",
        f"location = {TILES_PATH}/checkpoint {{ root {root}; "
        f"{_served(text_type, CHECKPOINT_CACHE)} }}",
        f"location {TILES_PATH}/ {{ root {root}; "
        f"{_served('application/octet-stream', IMMUTABLE)} }}",
    ]
    return "\n".join(lines) + "\n"
