"""Per-value cryptography with unwrapped data keys: AES-256-GCM for values, HMAC-SHA256 for
blind indexes. Runs in process so that the token is needed per key, not per value."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.kinds import Kind

NONCE_BYTES = 12
KEY_BYTES = 32
VALUES_PURPOSE = "values"
AAD_PREFIX = b"certsvc-vault/1"


def index_purpose(kind: Kind) -> str:
    return f"index:{kind.value}"


PURPOSES = (VALUES_PURPOSE, *(index_purpose(kind) for kind in Kind))


def value_aad(kind: Kind, token: str, version: int) -> bytes:
    """Associated data binding a ciphertext to its kind, token and key version: a ciphertext
    copied to another row, kind or version no longer decrypts."""
    head, tail = _value_aad_around_token(kind, version)
    return head + token.encode() + tail


def _value_aad_around_token(kind: Kind, version: int) -> tuple[bytes, bytes]:
    """`prefix|kind|` and `|version`: the value AAD is these around the token."""
    return b"|".join((AAD_PREFIX, kind.value.encode(), b"")), b"|" + str(version).encode()


def key_aad(version: int, purpose: str) -> bytes:
    """Associated data for a data key wrapped by the KEK: a wrapped key moved to another
    version or purpose no longer unwraps."""
    return b"|".join((AAD_PREFIX, b"key", str(version).encode(), purpose.encode()))


def new_key_material() -> dict[str, bytes]:
    """Fresh random keys for every purpose of one version."""
    return {purpose: secrets.token_bytes(KEY_BYTES) for purpose in PURPOSES}


@dataclass(frozen=True)
class KeySet:
    """One version's keys, unwrapped: held in memory only."""

    version: int
    values: AESGCM
    index_keys: dict[Kind, bytes]
    # HMAC state with each index key already absorbed; copied per value.
    _index_macs: dict[Kind, hmac.HMAC] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        macs = {
            kind: hmac.new(key, digestmod=hashlib.sha256) for kind, key in self.index_keys.items()
        }
        object.__setattr__(self, "_index_macs", macs)

    @classmethod
    def from_material(cls, version: int, material: dict[str, bytes]) -> KeySet:
        return cls(
            version=version,
            values=AESGCM(material[VALUES_PURPOSE]),
            index_keys={kind: material[index_purpose(kind)] for kind in Kind},
        )

    def blind_index(self, kind: Kind, value: str) -> bytes:
        mac = self._index_macs[kind].copy()
        mac.update(value.encode())
        return mac.digest()

    def seal(self, kind: Kind, token: str, value: str) -> bytes:
        """nonce ‖ ciphertext ‖ tag."""
        return self.seal_many(kind, [token], [value])[0]

    def seal_many(self, kind: Kind, tokens: Sequence[str], values: Sequence[str]) -> list[bytes]:
        """`seal` of each (token, value) pair; the nonces come from one draw of the CSPRNG."""
        nonces = secrets.token_bytes(NONCE_BYTES * len(values))
        head, tail = _value_aad_around_token(kind, self.version)
        encrypt = self.values.encrypt
        sealed = []
        for start, token, value in zip(
            range(0, len(nonces), NONCE_BYTES), tokens, values, strict=True
        ):
            nonce = nonces[start : start + NONCE_BYTES]
            sealed.append(nonce + encrypt(nonce, value.encode(), head + token.encode() + tail))
        return sealed

    def open(self, kind: Kind, token: str, sealed: bytes) -> str:
        aad = value_aad(kind, token, self.version)
        return self.values.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad).decode()
