"""The custody register's tables (R6): tokens, who holds them and on which workstations, the keys
on them, handovers, revocation approvals, and the documents the keys signed."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base
from common.dbtypes import UTCDateTime, utcnow


class KeyPurpose(enum.StrEnum):
    """What a key may sign; a key signs for one purpose only."""

    ROOT = "root"
    CERTIFICATE = "certificate"
    DECISION = "decision"
    REVOCATION = "revocation"
    AUDIT_CHECKPOINT = "audit-checkpoint"


# What a key signs with (`SigningKey.algorithm`): ECDSA P-256 with SHA-256 for documents,
# certificates and lists; Ed25519 for audit checkpoints, beside a P-256 key.
ES256 = "ES256"
ED25519 = "Ed25519"


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
    # The audit event that gave the token to its custodian (`signer.custody.custody_backed`).
    custody_idx: Mapped[int | None] = mapped_column(BigInteger)
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
    algorithm: Mapped[str] = mapped_column(String(16), default=ES256)
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
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The key's X.509 certificate revoked by the body: the key never signs again, and its
    # signatures from before stay verifiable against the stored certificate.
    certificate_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(200))


class TokenWorkstation(Base):
    """A workstation on which a token may be used: registered per token, in its custodian's
    custody (the service checks that), and dropped when the token changes hands."""

    __tablename__ = "hsm_token_workstations"
    __table_args__ = (UniqueConstraint("token_serial", "workstation_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_serial: Mapped[str] = mapped_column(ForeignKey("hsm_tokens.serial"))
    workstation_name: Mapped[str] = mapped_column(ForeignKey("workstations.name"))
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HandoverStatus(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class TokenHandover(Base):
    """A token passing from one custodian to another: the outgoing one offers, the incoming one
    accepts; until then the token stays with the outgoing custodian."""

    __tablename__ = "hsm_token_handovers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_serial: Mapped[str] = mapped_column(ForeignKey("hsm_tokens.serial"), index=True)
    from_custodian_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    to_custodian_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    status: Mapped[str] = mapped_column(String(16), default=HandoverStatus.PENDING.value)
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    offered_from: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_from: Mapped[str | None] = mapped_column(String(64))


class RevocationApproval(Base):
    """One officer's approval of a revocation document: dual control needs two distinct ones."""

    __tablename__ = "signing_approvals"
    __table_args__ = (UniqueConstraint("document_id", "officer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[str] = mapped_column(String(128), index=True)
    # Approvals made before digests were recorded have none, and count for no content.
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    officer: Mapped[str] = mapped_column(String(64))
    officer_role: Mapped[str] = mapped_column(String(32))
    # The natural person behind the officer's account: dual control needs two persons.
    person: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignedDocumentRow(Base):
    """A document as signed: its COSE_Sign1, the key (and so the certificate) that signed it,
    and the audit leaf that recorded the signing. One per (kind, document id), ever."""

    __tablename__ = "signed_documents"
    __table_args__ = (UniqueConstraint("kind", "document_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    document_id: Mapped[str] = mapped_column(String(128))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    cose: Mapped[bytes] = mapped_column(LargeBinary)
    signing_key_id: Mapped[int] = mapped_column(ForeignKey("signing_keys.id"), index=True)
    kid: Mapped[bytes] = mapped_column(LargeBinary(8))
    audit_index: Mapped[int] = mapped_column(BigInteger)
    signed_by: Mapped[str] = mapped_column(String(64))
    workstation: Mapped[str] = mapped_column(String(64))
    batch: Mapped[str | None] = mapped_column(String(64), index=True)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
