"""Files the service writes: owner-only, and never through a symbolic link someone planted.

`restrict_new_files` sets the process umask once at start (CLI and server), so everything
written later — database, WAL, PDFs, backups, exports, keys — is created without group or
other access whatever the library that creates it asks for. `open_for_writing` opens a path a
user gave without following a symlink at its last component: a planted link cannot send the
service's output onto another file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from common.errors import InvalidInput

PRIVATE_UMASK = 0o077


def restrict_new_files() -> None:
    """New files and directories of this process: owner-only."""
    os.umask(PRIVATE_UMASK)


def refuse_symlink(path: Path, field: str) -> None:
    """Refuse (naming `field`) a path that is a symbolic link, before any work whose output
    would go there; `open_for_writing` checks again when it opens."""
    if path.is_symlink():
        raise InvalidInput(f"{field}: {path} is a symbolic link; name the file itself")


def open_for_writing(path: Path, field: str, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """`path` created (0600) or truncated for writing, refused (naming `field`) when it is a
    symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidInput(
                f"{field}: {path} is a symbolic link; name the file itself"
            ) from None
        raise
    return os.fdopen(fd, mode, **kwargs)


def write_published(path: Path, content: bytes) -> None:
    """`path` replaced by `content` at once, for a web server to serve: written to a temporary
    name beside it, flushed to disk, then renamed into place, so a reader sees the old file or
    the new one and never part of one (`.<name>.<random>.tmp` is never served: see
    docs/operators.md). Readable by all (it is published) despite the owner-only umask. A file
    replaced within the second it was last written gets a later modification time, so a web
    server's own ETag (nginx: modification time and size) changes whenever the content does."""
    published_dir(path.parent)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        try:
            before = path.stat().st_mtime
        except FileNotFoundError:
            before = None
        if before is not None and int(before) >= int(time.time()):
            later = int(before) + 1
            os.utime(temporary, (later, later))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def published_dir(directory: Path) -> None:
    """`directory` made (with its missing parents) for a web server to read, despite the umask."""
    if directory.is_dir():
        return
    published_dir(directory.parent)
    with contextlib.suppress(FileExistsError):
        directory.mkdir()
        directory.chmod(0o755)
