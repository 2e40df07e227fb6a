"""Data keys unwrapped by the token's key-encryption key and kept in this process's memory.

The token is needed when a key version appears or is re-wrapped, and again after
`cache_seconds` (so a process stops using keys soon after the token is withdrawn), never per
value. Every operation first reads the small version table, so a worker picks up a rotation
made by another process at its next call.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.crypto import NONCE_BYTES, PURPOSES, KeySet, key_aad
from vault.errors import VaultUnavailable
from vault.models import VaultKey, VaultKeyVersion

KEK_LABEL_PREFIX = "vault-kek-"


class KekSession(Protocol):
    """What the vault needs from a logged-in session on its key token."""

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


def wrap_key(kek: KekSession, label: str, version: int, purpose: str, material: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + kek.aes_gcm_encrypt(label, nonce, key_aad(version, purpose), material)


def unwrap_key(kek: KekSession, label: str, version: int, purpose: str, wrapped: bytes) -> bytes:
    nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    return kek.aes_gcm_decrypt(label, nonce, key_aad(version, purpose), body)


def unwrap_version(
    kek: KekSession, version: int, label: str, wrapped: Mapping[str, bytes]
) -> dict[str, bytes]:
    """Every key of one version, unwrapped; a missing purpose means a damaged key table."""
    missing = [purpose for purpose in PURPOSES if purpose not in wrapped]
    if missing:
        raise VaultUnavailable(f"vault key version {version} lacks its {missing[0]} key")
    return {p: unwrap_key(kek, label, version, p, wrapped[p]) for p in PURPOSES}


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
