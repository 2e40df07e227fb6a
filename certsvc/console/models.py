"""The console's tables: each account's TOTP secret (encrypted), its security keys' public
keys, and the browser sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base
from common.dbtypes import UTCDateTime, utcnow


class ConsoleTotp(Base):
    """An account's TOTP secret, AES-256-GCM under the console key file (never in the database
    in the clear), bound to the account by the associated data: a database administrator can
    neither read it nor move it to another account. Unconfirmed until the holder entered a
    code from it once."""

    __tablename__ = "console_totp"

    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The newest time step accepted: a code is good once (no replay within its window).
    last_step: Mapped[int] = mapped_column(Integer, default=0)


class ConsoleSession(Base):
    """A browser's session, known by the SHA-256 of its cookie's random text. `verified` once
    the second factor passed; until then it reaches the second-factor page only."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The WebAuthn challenge this session was last given ("<purpose>:<base64url>"): used once,
    # cleared when a response is checked, right or wrong.
    challenge: Mapped[str | None] = mapped_column(String(128))


class ConsoleSecurityKey(Base):
    """A security key / passkey (WebAuthn credential) of an account: its public key only, the
    relying party it was made for, and the authenticator's signature counter (a cloned key
    shows as a counter that fails to grow)."""

    __tablename__ = "console_security_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1024), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    rp_id: Mapped[str] = mapped_column(String(253))
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
