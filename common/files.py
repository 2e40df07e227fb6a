"""Files the service writes: owner-only, and never through a symbolic link someone planted.

`restrict_new_files` sets the process umask once at start (CLI and server), so everything
written later — database, WAL, PDFs, backups, exports, keys — is created without group or
other access whatever the library that creates it asks for. `open_for_writing` opens a path a
user gave without following a symlink at its last component: a planted link cannot send the
service's output onto another file.
"""

from __future__ import annotations

import errno
import os
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
