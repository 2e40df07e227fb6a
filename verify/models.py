"""The public register: everything a public verification node knows, and nothing else.

`certify` writes it through `register.py` at issue and revoke time; these tables can live in a
database of their own, replicated to public nodes that hold no private data at all.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base
from common.dbtypes import UTCDateTime


class PublicCertificate(Base):
    """One certificate's allow-listed public fields and its signed offline payload."""

    __tablename__ = "public_certificates"

    verification_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[str] = mapped_column(String(17), unique=True)
    qualification: Mapped[str] = mapped_column(String(4))
    subject: Mapped[str] = mapped_column(String(4))
    body_code: Mapped[str] = mapped_column(String(6))
    issue_date: Mapped[date] = mapped_column(Date)
    masked_name: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(8))
    revoked_on: Mapped[date | None] = mapped_column(Date)
    revocation_category: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrustedBody(Base):
    __tablename__ = "public_bodies"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    root_certificate: Mapped[bytes] = mapped_column(LargeBinary)


class TrustedKey(Base):
    """An issuing key's certificate as verifiers see it; `kid` = SHA-256(cert DER)[:8]."""

    __tablename__ = "public_keys"

    kid: Mapped[str] = mapped_column(String(16), primary_key=True)
    body_code: Mapped[str] = mapped_column(String(6))
    purpose: Mapped[str] = mapped_column(String(32))
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignedTrustList(Base):
    """The trust list as published: canonical JSON and the body root's signature over it."""

    __tablename__ = "public_trust_lists"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignedRevocationList(Base):
    """The revoked certificates as published: canonical JSON, versioned (each revocation makes
    the next version), signed by the body's revocation key."""

    __tablename__ = "public_revocation_lists"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PublicNotice(Base):
    """A certificate's delivery notice on the applicant channel (二(二)3): how it reaches its
    holder — collected at a named place from a day, or mailed — and nothing about the holder.
    The tracking number stays inside: a courier's lookup shows the recipient."""

    __tablename__ = "public_notices"

    number: Mapped[str] = mapped_column(String(17), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    place: Mapped[str | None] = mapped_column(String(100))
    available_from: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Everything a public database holds; the relay writes these and nothing else.
PUBLIC_MODELS: tuple[type[Base], ...] = (
    PublicCertificate,
    TrustedBody,
    TrustedKey,
    SignedTrustList,
    SignedRevocationList,
    PublicNotice,
)
