"""Tokenise, look up, check and mask values: the vault's read and write paths, none of which
hands out a value. Values leave the vault only through `vault.reveal` (see `vault._plaintext`).

Writes go into the caller's transaction, so an applicant and its tokens commit together. Values
come in as text and are normalised (and checked) here, whatever the caller did before, so that
the same value always meets the same blind index.
"""

from __future__ import annotations

import secrets
from base64 import urlsafe_b64encode
from collections.abc import Sequence
from datetime import date
from itertools import repeat
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.errors import NotFound
from vault._crypto import KeySet
from vault._plaintext import open_entries
from vault.errors import InvalidValue, VaultUnavailable
from vault.gb11643 import IdFacts
from vault.keyring import KeyRing, Keys
from vault.kinds import TOKEN_PREFIX, Kind
from vault.masking import mask
from vault.models import VaultEntry, chunks
from vault.validation import normalise, resident_id

TOKEN_RANDOM_BYTES = 16
INSERT_ATTEMPTS = 3
# From this many distinct values a call inserts without looking first: in bulk most values are
# new, and the insert's conflict check on the blind index is the lookup, done once instead of
# twice; held values cost a wasted encryption and a read-back. Smaller calls (one person's
# values, often held already) look first and write only what is new. During a rotation every
# call looks first: a value may be held under an older version's index, which the conflict
# check cannot see.
INSERT_FIRST = 64
# The bulk path's statements go to the driver as SQL text: measured on SQLite, SQLAlchemy's
# per-row parameter handling (a dict per row, a memoryview per LargeBinary) cost more per value
# than the insert itself. Only placeholders are ever put into the text, never a value.
# SQLite (sqlite3): a parameter tuple per row, sent with executemany.
_INSERT_ROWS = (
    "INSERT INTO vault_entries (token, kind, key_version, blind_index, ciphertext)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (kind, blind_index) DO NOTHING"
)
# PostgreSQL (psycopg): one statement with the columns as arrays; a statement per row costs the
# server a round of its executor per value.
_INSERT_ARRAYS = (
    "INSERT INTO vault_entries (token, kind, key_version, blind_index, ciphertext)"
    " SELECT token, %s, %s, blind_index, ciphertext"
    " FROM unnest(%s::text[], %s::bytea[], %s::bytea[]) AS new (token, blind_index, ciphertext)"
    " ON CONFLICT (kind, blind_index) DO NOTHING"
)
_SELECT_BY_INDEX = "SELECT blind_index, token FROM vault_entries WHERE kind = {p} AND blind_index"


class Tokenised(NamedTuple):
    token: str
    created: bool


def new_tokens(kind: Kind, count: int) -> list[str]:
    """`count` tokens, each random and opaque (128 bits), URL-safe, typed by its prefix; never
    derived from a value. One draw of the CSPRNG for all of them."""
    prefix = TOKEN_PREFIX[kind]
    drawn = secrets.token_bytes(TOKEN_RANDOM_BYTES * count)
    return [
        prefix + urlsafe_b64encode(drawn[start : start + TOKEN_RANDOM_BYTES]).rstrip(b"=").decode()
        for start in range(0, len(drawn), TOKEN_RANDOM_BYTES)
    ]


def _placeholder(db: Session) -> str:
    """The driver's positional placeholder: `?` for sqlite3, `%s` for psycopg."""
    return "?" if db.get_bind().dialect.paramstyle == "qmark" else "%s"


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
        """A token per value, the existing one for a value already held (convergent).

        New values are inserted together with `ON CONFLICT (kind, blind_index) DO NOTHING`: a
        value another writer stored meanwhile is skipped by the database and the other
        writer's token is read back, so two writers of the same new value get the same token
        whichever commits first. Values already held are found by one query per chunk before
        inserting, except in bulk on a vault with a single key version (see `INSERT_FIRST`).
        """
        today = date.today()
        normalised = [
            normalise(kind, value, fields[i] if fields else None, today)
            for i, value in enumerate(values)
        ]
        tokens: dict[str, str] = {}
        created: set[str] = set()
        pending = list(dict.fromkeys(normalised))  # each value once, in order
        for attempt in range(1, INSERT_ATTEMPTS + 1):
            keys = self.keyring.current(db)
            newest = keys.newest
            indexes = [newest.blind_index(kind, value) for value in pending]
            if len(pending) < INSERT_FIRST or len(keys.sets) > 1:
                tokens.update(self._known(db, keys, kind, pending, indexes))
                new = [i for i, value in enumerate(pending) if value not in tokens]
                pending, indexes = [pending[i] for i in new], [indexes[i] for i in new]
            if pending:
                try:
                    stored, held = _store(db, newest, kind, pending, indexes)
                except IntegrityError:
                    # Not a value held (that conflict is skipped): a token drawn twice, or
                    # the key version retired meanwhile. Nothing of this insert stays.
                    if attempt == INSERT_ATTEMPTS:
                        raise
                    continue
                tokens.update(stored)
                tokens.update(held)
                created.update(stored)
                pending = [value for value in pending if value not in tokens]
            if not pending:
                return _answers(normalised, tokens, created)
        # Skipped as held, yet not found under the newest index: a rotation moved it meanwhile.
        raise VaultUnavailable("the vault changed under this request; try again")

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
        known = self._known(db, self.keyring.current(db), kind, list(dict.fromkeys(normalised)))
        return [known.get(value) for value in normalised]

    @staticmethod
    def known(db: Session, tokens: Sequence[str]) -> dict[str, Kind]:
        """The kind of each token the vault holds (unknown ones are absent), read from the
        entries without decrypting anything and without the keys."""
        held: dict[str, Kind] = {}
        for chunk in chunks(tokens):
            rows = db.execute(
                select(VaultEntry.token, VaultEntry.kind).where(VaultEntry.token.in_(chunk))
            )
            held.update((token, Kind(kind)) for token, kind in rows)
        return held

    def masked(self, db: Session, tokens: Sequence[str]) -> dict[str, tuple[Kind, str]]:
        """The masked form of each known token's value: the vault's own view, decrypted and
        masked here, for staff who may see a hint but not the value."""
        return {
            token: (entry.kind, mask(entry.kind, entry.value))
            for token, entry in open_entries(db, self.keyring.current(db), tokens).items()
        }

    def id_facts(self, db: Session, token: str, field: str = "id_number") -> IdFacts:
        """Birth date, sex and region as the ID number behind `token` states them.

        Not a reveal: the number is decrypted here and goes no further; what comes out
        identifies no one (many people share each combination) and is what the registrar was
        answered when tokenising the number. The case keeps these facts so that age rules and
        reports never need a reveal. Errors name `field`, never a value.
        """
        kind = self.known(db, [token]).get(token)
        if kind is None:
            raise NotFound(f"{field}: the vault holds no such token")
        if kind is not Kind.ID_NUMBER:
            raise InvalidValue(field, f"not a vault token of kind {Kind.ID_NUMBER.value}")
        number = open_entries(db, self.keyring.current(db), [token])[token].value
        return resident_id(number, field).facts()

    @staticmethod
    def _known(
        db: Session,
        keys: Keys,
        kind: Kind,
        values: Sequence[str],
        newest_indexes: Sequence[bytes] | None = None,
    ) -> dict[str, str]:
        """value → token for the values already held, under any key version in use
        (`newest_indexes`: the values' blind indexes under the newest version, if known)."""
        newest = keys.newest
        if newest_indexes is None:
            newest_indexes = [newest.blind_index(kind, value) for value in values]
        by_index = dict(zip(newest_indexes, values, strict=True))
        for key_set in keys.sets.values():
            if key_set is not newest:  # a rotation is moving values off this version
                by_index.update((key_set.blind_index(kind, value), value) for value in values)
        return {by_index[index]: token for index, token in _held(db, kind, list(by_index))}


def _held(db: Session, kind: Kind, indexes: Sequence[bytes]) -> list[tuple[bytes, str]]:
    """(blind index, token) of the entries of `kind` under any of `indexes`."""
    mark = _placeholder(db)
    select_by_index = _SELECT_BY_INDEX.format(p=mark)
    connection = db.connection()
    found: list[tuple[bytes, str]] = []
    for chunk in chunks(indexes):
        if mark == "?":  # SQLite: a placeholder per index
            rows = connection.exec_driver_sql(
                f"{select_by_index} IN ({', '.join([mark] * len(chunk))})", (kind.value, *chunk)
            )
        else:  # PostgreSQL: one array (psycopg parses a long query again at every call)
            rows = connection.exec_driver_sql(
                f"{select_by_index} = ANY({mark})", (kind.value, list(chunk))
            )
        found.extend((bytes(index), token) for index, token in rows)
    return found


def _store(
    db: Session, key_set: KeySet, kind: Kind, values: Sequence[str], indexes: Sequence[bytes]
) -> tuple[dict[str, str], dict[str, str]]:
    """Insert `values` (not held when last looked up) under fresh tokens: (value → token stored
    now, value → token another writer stored meanwhile). A value in neither was skipped but
    its entry is not found under `indexes` (it moved to a newer key version)."""
    tokens = new_tokens(kind, len(values))
    sealed = key_set.seal_many(kind, tokens, values)
    with db.begin_nested():  # SAVEPOINT, emitted when the connection is asked for inside
        connection = db.connection()
        if _placeholder(db) == "?":
            rows = zip(
                tokens,
                repeat(kind.value),
                repeat(key_set.version),
                indexes,
                sealed,
                strict=False,  # the repeats are endless
            )
            inserted = connection.exec_driver_sql(_INSERT_ROWS, list(rows)).rowcount
        else:
            arrays = (kind.value, key_set.version, tokens, list(indexes), sealed)
            inserted = connection.exec_driver_sql(_INSERT_ARRAYS, arrays).rowcount
    if inserted == len(values):
        return dict(zip(values, tokens, strict=True)), {}
    # Some were skipped: the entry under each index is either ours or the other writer's.
    holder = dict(_held(db, kind, indexes))
    stored: dict[str, str] = {}
    held: dict[str, str] = {}
    for value, token, index in zip(values, tokens, indexes, strict=True):
        winner = holder.get(index)
        if winner == token:
            stored[value] = token
        elif winner is not None:
            held[value] = winner
    return stored, held


def _answers(values: list[str], tokens: dict[str, str], created: set[str]) -> list[Tokenised]:
    """A token per value in order; `created` only at a new value's first occurrence."""
    answers = []
    for value in values:
        if value in created:
            answers.append(Tokenised(tokens[value], True))
            created.discard(value)
        else:
            answers.append(Tokenised(tokens[value], False))
    return answers
