"""What a USBKey remembers that SoftHSM does not: PIN failures, lockout, presence, faults.

Kept in one JSON file beside the token directory, locked with `flock`, so every process on the
machine (service workers, CLI, tests) sees the same keys plugged in and the same retry counters —
as they would see one physical token.

Every token operation asks whether the state changed, so the question must cost no system call
(a `stat` per signature was a tenth of a signature's time): each edit also counts itself in a
small stamp file, written in place, which every reader maps into memory. A reader sees an edit
of any process the moment it is made, by reading eight bytes of its own memory.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_NAME = "usbkeys.json"
STAMP_NAME = STATE_NAME + ".stamp"
STAMP_SIZE = 8

# The pkcs11 exception names a fault may raise: the ones a real module answers when a
# USB token misbehaves.
FAULTS = (
    "DeviceRemoved",
    "DeviceError",
    "SessionHandleInvalid",
    "TokenNotPresent",
    "FunctionFailed",
    "PinLocked",
    "UserAlreadyLoggedIn",
)


@dataclass
class Fault:
    """One armed fault: after `skip` matching operations, the next raises `error`."""

    operation: str
    error: str
    skip: int = 0
    unplug: bool = False


@dataclass
class UsbKey:
    failures: int = 0
    locked: bool = False
    plugged: bool = True
    generation: int = 0
    latency_ms: float | None = None
    faults: list[Fault] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> UsbKey:
        faults = [Fault(**f) for f in raw.get("faults", [])]
        return cls(**{**raw, "faults": faults})


class UsbKeyStates:
    """The shared state file; reads are cached until an edit (of any process) changes it."""

    def __init__(self, hsm_dir: Path) -> None:
        self.path = hsm_dir / STATE_NAME
        self._lock_path = hsm_dir / (STATE_NAME + ".lock")
        self._stamp_path = hsm_dir / STAMP_NAME
        self._stamp: mmap.mmap | None = None
        self._cache: tuple[object, dict[str, UsbKey]] | None = None

    def get(self, serial: str) -> UsbKey:
        return self._read().get(serial, UsbKey())

    @contextmanager
    def edit(self, serial: str) -> Iterator[UsbKey]:
        """Read-modify-write one key's state under an exclusive lock."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                states = self._read(fresh=True)
                key = states.setdefault(serial, UsbKey())
                yield key
                self._write(states)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, fresh: bool = False) -> dict[str, UsbKey]:
        stamp: object = self._edits()
        if stamp is None:  # no token directory yet: fall back to the file's own stamp
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                return {}
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if not fresh and self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            raw = json.loads(self.path.read_text() or "{}")
        except FileNotFoundError:
            raw = {}
        states = {serial: UsbKey.from_json(value) for serial, value in raw.items()}
        if not fresh:
            self._cache = (stamp, states)
        return states

    def _edits(self) -> bytes | None:
        """How many edits the state has seen, from the stamp mapped into memory (mapped on
        first use, made if missing); None while the token directory does not exist."""
        if self._stamp is None:
            try:
                fd = os.open(self._stamp_path, os.O_RDWR | os.O_CREAT, 0o600)
            except FileNotFoundError:
                return None
            try:
                if os.fstat(fd).st_size < STAMP_SIZE:
                    os.ftruncate(fd, STAMP_SIZE)
                self._stamp = mmap.mmap(fd, STAMP_SIZE, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
        return self._stamp[:STAMP_SIZE]

    def _write(self, states: dict[str, UsbKey]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({s: asdict(k) for s, k in states.items()}, indent=1))
        os.replace(tmp, self.path)
        self._cache = None
        fd = os.open(self._stamp_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            count = int.from_bytes(os.pread(fd, STAMP_SIZE, 0).ljust(STAMP_SIZE, b"\0"), "big")
            os.pwrite(fd, ((count + 1) % 2 ** (8 * STAMP_SIZE)).to_bytes(STAMP_SIZE, "big"), 0)
        finally:
            os.close(fd)
