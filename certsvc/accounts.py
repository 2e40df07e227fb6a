"""Staff accounts, their passwords and their API tokens.

One role per account: a person with two duties holds two accounts, so that every action names
the duty it was done under (separation of duties, R9 of the design).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import BigInteger, Boolean, Enum, ForeignKey, Integer, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from audit.grants import GRANT_ADOPT, grant_backed, grant_digest
from audit.trail import Attributed, record
from certsvc.settings import Settings, get_settings
from common.db import Base
from common.dbtypes import UTCDateTime, utcnow
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor

logger = logging.getLogger(__name__)


class Role(enum.StrEnum):
    """A staff duty. Admins provision but never sign or reveal; security officers only audit."""

    REGISTRAR = "registrar"
    OFFICER = "officer"
    CUSTODIAN = "custodian"
    SECURITY_OFFICER = "security_officer"
    VAULT_REVEALER = "vault_revealer"
    ADMIN = "admin"


USERNAME_RE = re.compile(r"[a-z0-9._-]{3,32}")
USERNAME_RULE = "username: 3–32 characters of a-z, 0-9, . _ -"
PERSON_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PERSON_RULE = "person: the personnel number, 1–64 characters of A-Z, a-z, 0-9, . _ -"
DISPLAY_NAME_MAX = 100
PASSWORD_MIN = 12
PASSWORD_MAX = 1024
TOKEN_PREFIX = "cst"  # noqa: S105 (a public marker, not a secret)
TOKEN_ID_RE = re.compile(r"[0-9a-f]{16}")
TOKEN_MAX_DAYS = 366
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The events that bind an account's password hash (`password_backed`): made when an account is
# created, when its holder sets their own, when a login upgrades the hash's parameters, and by
# `certsvc init` for accounts older than the binding. Any staff role or the service's own.
PASSWORD_BIND = "service.account.password"  # noqa: S105 (audit action names)
PASSWORD_SET = "service.account.password_set"  # noqa: S105
_SERVICE_ROLE = "system"  # certsvc.audit_trail.SYSTEM_ROLE
_BINDERS = frozenset({role.value for role in Role} | {_SERVICE_ROLE})
_PASSWORD_EVENTS = {
    PASSWORD_BIND: _BINDERS,
    PASSWORD_SET: _BINDERS,
    GRANT_ADOPT: frozenset({_SERVICE_ROLE}),
}
# Who creates an account when the caller names nobody.
SERVICE = Actor("certsvc", 0, _SERVICE_ROLE)

TEST_ARGON2 = dataclasses.replace(RFC_9106_LOW_MEMORY, time_cost=1, memory_cost=256, parallelism=1)


class StaffAccount(Base):
    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX))
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            name="staff_role",
            native_enum=False,
            create_constraint=True,
            length=32,
            values_callable=lambda roles: [role.value for role in roles],
        )
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The natural person holding the account (the body's personnel number, no personal value):
    # limits and dual control count persons, not accounts.
    person: Mapped[str] = mapped_column(String(64), index=True)
    # The audit event granting the account its role (`certsvc.grants`); None while proposed.
    grant_idx: Mapped[int | None] = mapped_column(BigInteger)
    # The audit event that bound `password_hash` (`password_backed`).
    password_idx: Mapped[int | None] = mapped_column(BigInteger)
    proposed_by: Mapped[str | None] = mapped_column(String(64))
    # The password was set by someone else (the admin): it only lets the holder set their own.
    must_set_password: Mapped[bool] = mapped_column(Boolean, default=False)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="account")


class ApiToken(Base):
    """A bearer token, stored only as the SHA-256 of its text.

    A token carries 256 random bits, so a fast unsalted hash is enough to make a stolen table
    useless: nobody can search a 2^256 space. A slow password hash would only slow every request.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    token_id: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the service revoked the token because it was seen where it leaks (a URL); the
    # holder is told at their next login, then `exposure_told_at` is set.
    exposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exposure_told_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The audit event that issued the token, carrying `token_grant_digest` of it.
    grant_idx: Mapped[int | None] = mapped_column(BigInteger)

    account: Mapped[StaffAccount] = relationship(back_populates="tokens")

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired (the account's own state is checked apart)."""
        return self.revoked_at is None and now < self.expires_at


_hashers: dict[Literal["production", "test"], PasswordHasher] = {
    "production": PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY),
    "test": PasswordHasher.from_parameters(TEST_ARGON2),
}


def password_hasher(settings: Settings | None = None) -> PasswordHasher:
    """The Argon2id hasher for the configured profile (RFC 9106 low-memory in production)."""
    profile = (settings or get_settings()).password_hash_profile
    return _hashers[profile]


_dummy_hashes: dict[tuple[int, int, int], str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash to verify against when the user is unknown, so that both cases take as long."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hashes[key]


def validate_username(username: str) -> str:
    """`username` if it is well formed; it ends up in logs and audit records, so keep it plain."""
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(USERNAME_RULE)
    return username


def _validate_display_name(display_name: str) -> str:
    cleaned = display_name.strip()
    if not 1 <= len(cleaned) <= DISPLAY_NAME_MAX or not cleaned.isprintable():
        raise InvalidInput(f"display_name: 1–{DISPLAY_NAME_MAX} printable characters")
    return cleaned


def validate_person(person: str) -> str:
    """`person` if it is a well-formed personnel number (never a personal value such as an ID
    number: it lands in the audit log)."""
    if not PERSON_RE.fullmatch(person) or _looks_personal(person):
        raise InvalidInput(PERSON_RULE + ", not an ID or phone number")
    return person


def _looks_personal(text: str) -> bool:
    return re.fullmatch(r"\d{17}[\dXx]|1[3-9]\d{9}", text) is not None


def validate_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(f"password: at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(f"password: at most {PASSWORD_MAX} characters")


def create_account(
    session: Session,
    username: str,
    role: Role | str,
    password: str,
    display_name: str | None = None,
    *,
    hasher: PasswordHasher | None = None,
    person: str | None = None,
    must_set_password: bool = False,
    by: Attributed = SERVICE,
) -> StaffAccount:
    """Add an active account; the password is kept only as its Argon2id hash, bound by an
    event of `by`'s. It grants nothing until its grant event is recorded (`certsvc.grants`)."""
    validate_username(username)
    person = validate_person(person if person is not None else username)
    name = _validate_display_name(display_name if display_name is not None else username)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"role: one of {', '.join(r.value for r in Role)}") from None
    validate_password(password)
    if account_exists(session, username):
        raise Conflict(f"username: {username!r} is already taken")
    account = StaffAccount(
        username=username,
        display_name=name,
        role=role,
        password_hash=(hasher or password_hasher()).hash(password),
        active=True,
        person=person,
        must_set_password=must_set_password,
    )
    try:
        with session.begin_nested():
            session.add(account)
    except IntegrityError:
        raise Conflict(f"username: {username!r} is already taken") from None
    bind_password(session, account, by)
    return account


def password_digest(account: StaffAccount) -> str:
    """What a password event binds: the account and its hash as stored (salt included)."""
    return grant_digest("password", {"username": account.username, "hash": account.password_hash})


def bind_password(
    session: Session, account: StaffAccount, by: Attributed, action: str = PASSWORD_BIND
) -> None:
    """Record the event that binds the account's current hash, in `session`'s transaction."""
    account.password_idx = record(
        session, by, action, account.username, details={"grant": password_digest(account)}
    )


def password_backed(session: Session, account: StaffAccount) -> bool:
    """Whether the stored hash is the one an intact password event bound: a hash written
    around the service (someone's own password on another's account) is not."""
    return grant_backed(session, account.password_idx, _PASSWORD_EVENTS, password_digest(account))


def get_account(session: Session, username: str) -> StaffAccount:
    """The account named `username`, active or not; `NotFound` otherwise."""
    validate_username(username)
    account = session.scalar(select(StaffAccount).where(StaffAccount.username == username))
    if account is None:
        raise NotFound(f"username: no account {username!r}")
    return account


def account_exists(session: Session, username: str) -> bool:
    """Whether `username` names an account (so that it may be logged: it is no typo'd secret)."""
    query = select(StaffAccount.id).where(StaffAccount.username == username)
    return session.scalar(query) is not None


def list_accounts(session: Session) -> list[StaffAccount]:
    """Every account, disabled ones included, by username."""
    return list(session.scalars(select(StaffAccount).order_by(StaffAccount.username)))


def authenticate(
    session: Session, username: str, password: str, *, hasher: PasswordHasher | None = None
) -> StaffAccount | None:
    """The active account with this username and password, or None.

    An unknown or disabled user costs one Argon2 verification all the same, so timing does not
    tell which usernames exist. A hash made with older parameters is replaced on success.
    """
    hasher = hasher or password_hasher()
    account = session.scalar(select(StaffAccount).where(StaffAccount.username == username))
    if account is None or not account.active:
        with contextlib.suppress(VerificationError):
            hasher.verify(_dummy_hash(hasher), password)
        return None
    try:
        hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if not password_backed(session, account):
        logger.warning(
            "login refused: the password hash of account %s is not the one its audit event "
            "bound (written around the service?)",
            account.username,
        )
        return None
    if hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hasher.hash(password)
        holder = Actor(account.username, account.id, account.role.value, person=account.person)
        bind_password(session, account, holder)
    return account


def disable_account(session: Session, username: str) -> StaffAccount:
    """Disable the account and revoke its tokens, so re-enabling could never revive them."""
    account = get_account(session, username)
    account.active = False
    now = utcnow()
    for token in account.tokens:
        if token.revoked_at is None:
            token.revoked_at = now
    return account


def _hash_token(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def issue_api_token(session: Session, account: StaffAccount, days: int) -> tuple[str, ApiToken]:
    """A new token for `account`: its text (show it once, it is stored nowhere) and its record."""
    if not 1 <= days <= TOKEN_MAX_DAYS:
        raise InvalidInput(f"days: 1–{TOKEN_MAX_DAYS}")
    if not account.active:
        raise Conflict(f"username: account {account.username!r} is disabled")
    token_id = secrets.token_hex(8)
    text = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    record = ApiToken(
        account=account,
        token_id=token_id,
        token_hash=_hash_token(text),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(record)
    session.flush()
    return text, record


def find_api_token(session: Session, text: str) -> ApiToken | None:
    """The record of the well-formed token with exactly this text, usable or not."""
    prefix, _, rest = text.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not TOKEN_ID_RE.fullmatch(token_id) or not secret:
        return None
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(text)))
    return record if record is not None and record.token_id == token_id else None


def resolve_api_token(
    session: Session, text: str, *, now: datetime | None = None
) -> StaffAccount | None:
    """The active account holding this unexpired, unrevoked token, or None."""
    record = find_api_token(session, text)
    now = now or utcnow()
    if record is None or not record.usable(now):
        return None
    if not record.account.active:
        return None
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
        record.last_used_at = now
    return record.account


def revoke_exposed_token(session: Session, text: str) -> ApiToken | None:
    """Revoke the token with this exact text, if there is one: it was seen in a URL, so it is
    in someone's browser history, proxy log or Referer header — leaked, whoever sent it."""
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(text)))
    if record is None:
        return None
    now = utcnow()
    record.exposed_at = record.exposed_at or now
    record.revoked_at = record.revoked_at or now
    return record


def exposure_notices(session: Session, account: StaffAccount) -> list[str]:
    """What the holder must hear at login: each of their tokens revoked because it was seen in
    a URL, told once."""
    exposed = session.scalars(
        select(ApiToken).where(
            ApiToken.account_id == account.id,
            ApiToken.exposed_at.is_not(None),
            ApiToken.exposure_told_at.is_(None),
        )
    )
    now = utcnow()
    notices = []
    for token in exposed:
        assert token.exposed_at is not None
        notices.append(
            f"token {token.token_id} was revoked on {token.exposed_at:%Y-%m-%d %H:%M} UTC: it "
            "was sent in a URL, where it leaks; use the Authorization header only"
        )
        token.exposure_told_at = now
    return notices


def list_api_tokens(session: Session, account: StaffAccount) -> list[ApiToken]:
    """The account's token records, oldest first, revoked and expired ones included."""
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.account_id == account.id).order_by(ApiToken.id)
        )
    )


def revoke_api_token(
    session: Session, token_id: str, *, account: StaffAccount | None = None
) -> ApiToken:
    """Revoke a token by its public id; with `account`, only one of that account's own."""
    query = select(ApiToken).where(ApiToken.token_id == token_id)
    if account is not None:
        query = query.where(ApiToken.account_id == account.id)
    record = session.scalar(query)
    if record is None:
        raise NotFound("token_id: no such token")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record
