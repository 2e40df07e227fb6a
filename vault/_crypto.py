"""The vault's key material and ciphers, private to the package: data keys wrapped and
unwrapped by the KEK on the token, AES-256-GCM for values, HMAC-SHA256 for blind indexes. Runs
in process so that the token is needed per key, not per value.

Private because what decrypts here yields plaintext or key material: only `vault` imports this
module (`tests/test_vault/test_plaintext_gate.py` checks every package and bench/).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import VaultUnavailable
from vault.kinds import Kind

if TYPE_CHECKING:
    from vault.keyring import KekSession

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

    def decrypt(self, kind: Kind, token: str, sealed: bytes) -> str:
        """The value `seal` sealed; `InvalidTag` when the bytes, kind, token or version differ."""
        aad = value_aad(kind, token, self.version)
        return self.values.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad).decode()


def wrap_key(kek: KekSession, label: str, version: int, purpose: str, material: bytes) -> bytes:
    """A data key encrypted on the token by the KEK `label`: nonce ‖ ciphertext ‖ tag."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + kek.aes_gcm_encrypt(label, nonce, key_aad(version, purpose), material)


def _unwrap_key(kek: KekSession, label: str, version: int, purpose: str, wrapped: bytes) -> bytes:
    nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    return kek.aes_gcm_decrypt(label, nonce, key_aad(version, purpose), body)


def unwrap_version(
    kek: KekSession, version: int, label: str, wrapped: Mapping[str, bytes]
) -> dict[str, bytes]:
    """Every key of one version, unwrapped; a missing purpose means a damaged key table."""
    missing = [purpose for purpose in PURPOSES if purpose not in wrapped]
    if missing:
        raise VaultUnavailable(f"vault key version {version} lacks its {missing[0]} key")
    return {p: _unwrap_key(kek, label, version, p, wrapped[p]) for p in PURPOSES}
