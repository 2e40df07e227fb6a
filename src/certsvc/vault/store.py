"""Tokenise, look up and decrypt values: the vault's only read and write paths.

Writes go into the caller's transaction, so an applicant and its tokens commit together. Values
come in as text and are normalised (and checked) here, whatever the caller did before, so that
the same value always meets the same blind index.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar, cast

from cryptography.exceptions import InvalidTag
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certsvc.vault.errors import VaultUnavailable
from certsvc.vault.keyring import KeyRing, Keys
from certsvc.vault.kinds import TOKEN_PREFIX, Kind
from certsvc.vault.masking import mask
from certsvc.vault.models import VaultEntry
from certsvc.vault.validation import normalise

TOKEN_RANDOM_BYTES = 16
CHUNK = 1000
INSERT_ATTEMPTS = 3
T = TypeVar("T")
# Core inserts: the ORM's bulk path costs more per row than the crypto does.
ENTRIES = cast(Table, VaultEntry.__table__)


@dataclass(frozen=True)
class Tokenised:
    token: str
    created: bool


@dataclass(frozen=True)
class Opened:
    kind: Kind
    value: str


def new_token(kind: Kind) -> str:
    """Random and opaque (128 bits), URL-safe, typed by its prefix; never derived from a value."""
    return TOKEN_PREFIX[kind] + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class Vault:
    """The vault over one key ring; shared by every request of a process."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    def tokenise(
        self,
        db: Session,
        kind: Kind,
        values: Sequence[str],
        fields: Sequence[str] | None = None,
    ) -> list[Tokenised]:
        """A token per value, the existing one for a value already held (convergent)."""
        today = date.today()
        normalised = [
            normalise(kind, value, fields[i] if fields else None, today)
            for i, value in enumerate(values)
        ]
        for attempt in range(1, INSERT_ATTEMPTS + 1):
            keys = self.keyring.current(db)
            known = self._known(db, keys, kind, set(normalised))
            fresh: dict[str, str] = {}
            rows = []
            newest = keys.newest
            for value in normalised:
                if value in known or value in fresh:
                    continue
                token = new_token(kind)
                fresh[value] = token
                rows.append(
                    {
                        "token": token,
                        "kind": kind.value,
                        "key_version": newest.version,
                        "blind_index": newest.blind_index(kind, value),
                        "ciphertext": newest.seal(kind, token, value),
                    }
                )
            try:
                if rows:
                    with db.begin_nested():
                        db.execute(insert(ENTRIES), rows)
            except IntegrityError:
                # Another writer stored one of these values meanwhile: look again.
                if attempt == INSERT_ATTEMPTS:
                    raise
                continue
            return _answers(normalised, known, fresh)
        raise AssertionError("unreachable")

    def lookup(
        self,
        db: Session,
        kind: Kind,
        values: Sequence[str],
        fields: Sequence[str] | None = None,
    ) -> list[str | None]:
        """The token of each value if the vault holds it, found by blind index alone."""
        normalised = [
            normalise(kind, value, fields[i] if fields else None) for i, value in enumerate(values)
        ]
        known = self._known(db, self.keyring.current(db), kind, set(normalised))
        return [known.get(value) for value in normalised]

    def open(self, db: Session, tokens: Sequence[str]) -> dict[str, Opened]:
        """Decrypt the entries of `tokens` (unknown ones are absent from the result). Callers
        decide what may leave: a mask for most staff, the value only through an audited reveal."""
        keys = self.keyring.current(db)
        opened: dict[str, Opened] = {}
        for chunk in _chunks(tokens):
            rows = db.execute(
                select(
                    VaultEntry.token, VaultEntry.kind, VaultEntry.key_version, VaultEntry.ciphertext
                ).where(VaultEntry.token.in_(chunk))
            )
            for token, kind_name, version, ciphertext in rows:
                kind = Kind(kind_name)
                opened[token] = Opened(kind, decrypt(keys, kind, token, version, ciphertext))
        return opened

    def masked(self, db: Session, tokens: Sequence[str]) -> dict[str, tuple[Kind, str]]:
        """The masked form of each known token's value."""
        return {
            token: (entry.kind, mask(entry.kind, entry.value))
            for token, entry in self.open(db, tokens).items()
        }

    @staticmethod
    def _known(db: Session, keys: Keys, kind: Kind, values: set[str]) -> dict[str, str]:
        """value → token for the values already held, under any key version in use."""
        by_index: dict[bytes, str] = {}
        for key_set in keys.sets.values():
            for value in values:
                by_index[key_set.blind_index(kind, value)] = value
        found: dict[str, str] = {}
        for chunk in _chunks(list(by_index)):
            rows = db.execute(
                select(VaultEntry.blind_index, VaultEntry.token).where(
                    VaultEntry.kind == kind.value, VaultEntry.blind_index.in_(chunk)
                )
            )
            for blind_index, token in rows:
                found[by_index[bytes(blind_index)]] = token
        return found


def _answers(values: list[str], known: dict[str, str], fresh: dict[str, str]) -> list[Tokenised]:
    """A token per value in order; `created` only at a new value's first occurrence."""
    answers = []
    for value in values:
        if value in known:
            answers.append(Tokenised(known[value], False))
        else:
            answers.append(Tokenised(fresh[value], True))
            known[value] = fresh[value]
    return answers


def decrypt(keys: Keys, kind: Kind, token: str, version: int, ciphertext: bytes) -> str:
    key_set = keys.sets.get(version)
    if key_set is None:
        raise VaultUnavailable(f"vault entry {token}: key version {version} is not available")
    try:
        return key_set.open(kind, token, bytes(ciphertext))
    except InvalidTag:
        raise VaultUnavailable(
            f"vault entry {token} fails its integrity check: report it to the security officer"
        ) from None
