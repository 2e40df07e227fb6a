"""Stored entries back to their values: the vault's only decrypting path, private to the package.

What leaves the vault in the clear leaves through `vault.reveal.reveal` (purpose, per-person
limit, one audit event and one `VaultReveal` row per value). The other users of this module stay
inside the vault and hand out no identifier: masking, the facts an ID number states, rotation.
Only `vault` imports it (`tests/test_vault/test_plaintext_gate.py` checks every package and
bench/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.errors import StoredValueCorrupt, VaultUnavailable
from vault.keyring import Keys
from vault.kinds import Kind
from vault.models import VaultEntry, chunks


@dataclass(frozen=True)
class Opened:
    kind: Kind
    value: str


def open_entries(db: Session, keys: Keys, tokens: Sequence[str]) -> dict[str, Opened]:
    """The kind and value of each token's entry; unknown tokens are absent from the result."""
    opened: dict[str, Opened] = {}
    for chunk in chunks(tokens):
        rows = db.execute(
            select(
                VaultEntry.token, VaultEntry.kind, VaultEntry.key_version, VaultEntry.ciphertext
            ).where(VaultEntry.token.in_(chunk))
        )
        for token, kind_name, version, ciphertext in rows:
            kind = Kind(kind_name)
            opened[token] = Opened(kind, decrypt_entry(keys, kind, token, version, ciphertext))
    return opened


def decrypt_entry(keys: Keys, kind: Kind, token: str, version: int, ciphertext: bytes) -> str:
    """One entry's value. A key version not in use is the vault's fault (`VaultUnavailable`);
    a failed tag is the row's (`StoredValueCorrupt`): it was changed or moved in the database."""
    key_set = keys.sets.get(version)
    if key_set is None:
        raise VaultUnavailable(f"vault entry {token}: key version {version} is not available")
    try:
        return key_set.decrypt(kind, token, bytes(ciphertext))
    except InvalidTag:
        raise StoredValueCorrupt(token) from None
