"""The vault's tables. `vault_entries.ciphertext` is the only column holding personal data, and
only encrypted; the blind index is a keyed HMAC, useless without a key that exists unwrapped
only in the service's memory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base
from common.dbtypes import UTCDateTime, utcnow

CHUNK = 1000  # parameters per statement on these tables, well under every driver's limit
T = TypeVar("T")


def chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    """`items` in slices of at most `CHUNK`, one statement each."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class VaultKeyVersion(Base):
    """One generation of data keys; the newest encrypts new values, older ones still decrypt
    until a rotation has moved every value off them and deleted them."""

    __tablename__ = "vault_key_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kek_label: Mapped[str] = mapped_column(String(64), doc="the token key wrapping this set")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VaultKey(Base):
    """A data key (`values`, or `index:<kind>` for a blind-index key) wrapped by the KEK:
    12-byte nonce ‖ AES-GCM ciphertext ‖ tag, done on the token."""

    __tablename__ = "vault_keys"

    version: Mapped[int] = mapped_column(
        ForeignKey("vault_key_versions.version", ondelete="CASCADE"), primary_key=True
    )
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)


class VaultEntry(Base):
    """One tokenised value: AES-256-GCM under the version's data key, AAD binding kind, token
    and version; found again by value through the blind index of its kind."""

    __tablename__ = "vault_entries"
    __table_args__ = (UniqueConstraint("kind", "blind_index"),)

    token: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    key_version: Mapped[int] = mapped_column(ForeignKey("vault_key_versions.version"))
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class VaultReveal(Base):
    """One value revealed, kept for the per-person rate limit (the audit log is the record)."""

    __tablename__ = "vault_reveals"
    __table_args__ = (
        Index("ix_vault_reveals_actor_at", "actor", "revealed_at"),
        Index("ix_vault_reveals_person_at", "person", "revealed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(32))
    # The natural person behind the account: the limit counts persons, not accounts.
    person: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(40))
    revealed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VaultLookup(Base):
    """One exact-match lookup batch, kept for the per-person limit and the miss alert."""

    __tablename__ = "vault_lookups"
    __table_args__ = (Index("ix_vault_lookups_person_at", "person", "looked_up_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(32))
    values: Mapped[int] = mapped_column(Integer)
    misses: Mapped[int] = mapped_column(Integer)
    looked_up_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
