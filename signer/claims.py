"""Which process holds each USBKey's signing session, across the service's worker processes.

A USBKey is plugged into one machine; every worker there could log in to it, and without a
claim two custodians' sessions could be open on one token at once, one per worker. A claim is
an exclusive `flock` on `<directory>/<serial>.lock`, held while the session is open. The kernel
drops it when the process exits, however it exits, so a crash never leaves a token claimed.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from common.errors import InvalidInput
from signer.errors import SignerError

_SERIAL = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")  # never a path, never hidden


class TokenClaimedElsewhere(SignerError):
    """Another worker process holds the signing session on this USBKey."""

    status_code = 409

    def __init__(self, token: str) -> None:
        super().__init__(
            f"USBKey {token} has a signing session open in another worker process of the "
            "service: close it there (or let it expire) before opening another"
        )


class SessionElsewhere(SignerError):
    """The caller's session lives in another worker: this one cannot sign with it (and it is
    not lost: the worker that has it still can)."""

    status_code = 409

    def __init__(self, token: str) -> None:
        super().__init__(
            f"the signing session on USBKey {token} is open in another worker process of the "
            "service: send signing requests on the connection that opened it, or run the "
            "service with one worker for signing",
        )


class SessionClaims:
    """Claims on USBKeys by this process; one file lock per claimed token."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._held: dict[str, int] = {}

    def claim(self, serial: str) -> bool:
        """Claim `serial` for this process or raise `TokenClaimedElsewhere`; whether the claim
        is new (False: this process held it already)."""
        if serial in self._held:
            return False
        descriptor = self._open(serial)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise TokenClaimedElsewhere(serial) from None
        self._held[serial] = descriptor
        return True

    def release(self, serial: str) -> None:
        descriptor = self._held.pop(serial, None)
        if descriptor is not None:
            os.close(descriptor)  # closing the descriptor drops the lock

    def held_elsewhere(self, serial: str) -> bool:
        """Whether another process holds `serial` (never true for this process's claims)."""
        if serial in self._held or not _SERIAL.fullmatch(serial):
            return False  # a name no token has cannot be claimed
        descriptor = self._open(serial)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)
        return False

    def _open(self, serial: str) -> int:
        if not _SERIAL.fullmatch(serial):
            raise InvalidInput("token_serial: not a USBKey serial number")
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(self._directory / f"{serial}.lock", os.O_RDWR | os.O_CREAT, 0o600)
