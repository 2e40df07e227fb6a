"""Data keys unwrapped by the token's key-encryption key and kept in this process's memory.

The token is needed when a key version appears or is re-wrapped, and again after
`cache_seconds` (so a process stops using keys soon after the token is withdrawn), never per
value. Every operation first reads the small version table, so a worker picks up a rotation
made by another process at its next call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault._crypto import KeySet, unwrap_version
from vault.errors import VaultUnavailable
from vault.models import VaultKey, VaultKeyVersion

KEK_LABEL_PREFIX = "vault-kek-"


class KekSession(Protocol):
    """What the vault needs from a logged-in session on its key token. `aes_gcm_decrypt`
    unwraps data keys, in `vault._crypto` only: nothing outside the vault calls it."""

    def generate_aes_key(self, label: str) -> None: ...
    def secret_key_labels(self) -> list[str]: ...
    def aes_gcm_encrypt(self, label: str, nonce: bytes, aad: bytes, data: bytes) -> bytes: ...
    def aes_gcm_decrypt(self, label: str, nonce: bytes, aad: bytes, data: bytes) -> bytes: ...
    def destroy_secret_key(self, label: str) -> None: ...


# Opens a session on the key token; raises `VaultUnavailable` (on entry or inside) when the
# token cannot be used.
KekOpener = Callable[[], AbstractContextManager[KekSession]]


def kek_label(version: int) -> str:
    return f"{KEK_LABEL_PREFIX}{version}"


@dataclass(frozen=True)
class Keys:
    """The key versions in use: the newest encrypts, every one decrypts and is searched."""

    sets: Mapping[int, KeySet]

    @property
    def newest(self) -> KeySet:
        return self.sets[max(self.sets)]


class KeyRing:
    """The process's cache of unwrapped key versions; thread-safe."""

    def __init__(self, open_kek: KekOpener, cache_seconds: float) -> None:
        self.open_kek = open_kek
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[int, str], ...] = ()
        self._keys: Keys | None = None
        self._loaded_at = 0.0

    def current(self, db: Session) -> Keys:
        """The key versions the database lists now, unwrapping them when they changed."""
        rows = db.execute(select(VaultKeyVersion.version, VaultKeyVersion.kek_label)).all()
        stamp = tuple(sorted((int(version), str(label)) for version, label in rows))
        if not stamp:
            raise VaultUnavailable(
                "the vault has no keys yet: run `certsvc init` (demo) or `certsvc vault rotate`"
            )
        with self._lock:
            fresh = time.monotonic() - self._loaded_at < self._cache_seconds
            if self._keys is not None and stamp == self._stamp and fresh:
                return self._keys
            wrapped: dict[int, dict[str, bytes]] = {}
            for version, purpose, blob in db.execute(
                select(VaultKey.version, VaultKey.purpose, VaultKey.wrapped)
            ):
                wrapped.setdefault(int(version), {})[str(purpose)] = bytes(blob)
            with self.open_kek() as kek:
                sets = {
                    version: KeySet.from_material(
                        version, unwrap_version(kek, version, label, wrapped.get(version, {}))
                    )
                    for version, label in stamp
                }
            self._keys = Keys(sets)
            self._stamp = stamp
            self._loaded_at = time.monotonic()
            return self._keys

    def forget(self) -> None:
        """Drop the unwrapped keys, e.g. after a rotation finished in this process."""
        with self._lock:
            self._keys = None
            self._stamp = ()
