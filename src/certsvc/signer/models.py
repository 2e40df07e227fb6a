"""The custody register's tables: tokens, who holds them, and the keys on them (R6)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from certsvc._db import Base
from certsvc._dbtypes import UTCDateTime, utcnow


class KeyPurpose(enum.StrEnum):
    """What a key may sign; a key signs for one purpose only."""

    ROOT = "root"
    CERTIFICATE = "certificate"
    DECISION = "decision"
    REVOCATION = "revocation"
    AUDIT_CHECKPOINT = "audit-checkpoint"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class HsmToken(Base):
    """A USBKey: identified by the serial its module reports, held by one named custodian."""

    __tablename__ = "hsm_tokens"

    serial: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(32), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    manufacturer: Mapped[str] = mapped_column(String(64))
    custodian_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    # Consecutive wrong user PINs seen by any worker, for "tries left"; the token itself
    # enforces the lockout.
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SigningKey(Base):
    """A key pair generated on a token, with the certificate that names its body and purpose."""

    __tablename__ = "signing_keys"
    __table_args__ = (UniqueConstraint("token_serial", "label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_serial: Mapped[str] = mapped_column(ForeignKey("hsm_tokens.serial"))
    label: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[KeyPurpose] = mapped_column(
        Enum(
            KeyPurpose,
            name="key_purpose",
            native_enum=False,
            create_constraint=True,
            length=32,
            values_callable=lambda members: [m.value for m in members],
        )
    )
    algorithm: Mapped[str] = mapped_column(String(16), default="ES256")
    body_code: Mapped[str] = mapped_column(String(16))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    issuer_key_id: Mapped[int | None] = mapped_column(ForeignKey("signing_keys.id"))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    usage_count: Mapped[int] = mapped_column(Integer, default=0)
    usage_limit: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[KeyStatus] = mapped_column(
        Enum(
            KeyStatus,
            name="key_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda members: [m.value for m in members],
        ),
        default=KeyStatus.ACTIVE,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
