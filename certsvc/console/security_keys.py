"""The console's security keys and passkeys (WebAuthn, with the `webauthn` package).

An account that has one signs in with it, never with TOTP; TOTP stays the factor of accounts
without one. A key is enrolled by a signed-in holder who also gives a fresh TOTP code, so a
stolen session cookie alone enrols nothing. The relying party is the host the console was
opened by (a domain name: browsers refuse WebAuthn on an IP address) and is stored with the
key: an assertion counts only for the party its key was made for, and the authenticator signs
that party's hash, so a look-alike host gets nothing usable. Challenges are kept on the
browser's own console session, one at a time, and cleared by the first response checked,
right or wrong: a response cannot be replayed, nor answered from another session. A signature
counter that does not grow (a cloned authenticator) is refused.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from audit.trail import record
from certsvc.accounts import StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.console.enrolments import enrolled_since_reset
from certsvc.console.models import ConsoleSecurityKey, ConsoleSession
from common.dbtypes import utcnow
from common.errors import InvalidInput

RP_NAME = "certsvc"
REGISTER = "register"
SIGN_IN = "sign-in"
ENROL_ACTION = "console.security_key.enrol"
MAX_KEYS = 10


@dataclass(frozen=True)
class Party:
    """The relying party a request speaks for: its id (the host name) and origin."""

    rp_id: str
    origin: str


def party_of(url: str) -> Party | None:
    """The relying party of the console opened at `url`; None on an IP address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if not host:
        return None
    return Party(host, f"{parts.scheme}://{parts.netloc}")


def keys_of(db: Session, account: StaffAccount) -> list[ConsoleSecurityKey]:
    query = select(ConsoleSecurityKey).where(ConsoleSecurityKey.account_id == account.id)
    return list(db.scalars(query.order_by(ConsoleSecurityKey.id)))


def ever_enrolled(db: Session, account: StaffAccount) -> bool:
    """Whether the log holds a key enrolment for the account since its last reset: if its keys
    are gone from the database, falling back to TOTP would let whoever deleted them choose the
    weaker factor."""
    return enrolled_since_reset(db, account.username, ENROL_ACTION)


def _issue(row: ConsoleSession, purpose: str) -> bytes:
    challenge = secrets.token_bytes(32)
    row.challenge = f"{purpose}:{bytes_to_base64url(challenge)}"
    return challenge


def _take(row: ConsoleSession, purpose: str) -> bytes | None:
    """The session's pending challenge for `purpose`, cleared whatever happens next."""
    stored, row.challenge = row.challenge, None
    if stored is None or not stored.startswith(f"{purpose}:"):
        return None
    return base64url_to_bytes(stored.split(":", 1)[1])


def _descriptors(keys: list[ConsoleSecurityKey]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=key.credential_id) for key in keys]


def registration_options(
    db: Session, row: ConsoleSession, account: StaffAccount, party: Party
) -> str:
    """The options (JSON) for the browser's `navigator.credentials.create`."""
    options = generate_registration_options(
        rp_id=party.rp_id,
        rp_name=RP_NAME,
        user_id=f"certsvc-account-{account.id}".encode(),
        user_name=account.username,
        user_display_name=account.display_name,
        challenge=_issue(row, REGISTER),
        exclude_credentials=_descriptors(keys_of(db, account)),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return options_to_json(options)


def register(
    db: Session,
    row: ConsoleSession,
    account: StaffAccount,
    party: Party,
    response: str,
    name: str,
) -> ConsoleSecurityKey:
    """Check the browser's new credential against this session's challenge and keep its
    public key (audited). InvalidInput naming the field when it does not hold."""
    challenge = _take(row, REGISTER)
    if not name.strip():
        raise InvalidInput("name: give the key a name (up to 64 characters)")
    if len(keys_of(db, account)) >= MAX_KEYS:
        raise InvalidInput(f"credential: at most {MAX_KEYS} security keys per account")
    if challenge is None:
        raise InvalidInput("credential: no enrolment was started in this session")
    try:
        verified = verify_registration_response(
            credential=response,
            expected_challenge=challenge,
            expected_rp_id=party.rp_id,
            expected_origin=party.origin,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError):
        raise InvalidInput("credential: the security key's answer did not verify") from None
    taken = select(ConsoleSecurityKey.id).where(
        ConsoleSecurityKey.credential_id == verified.credential_id
    )
    if db.scalar(taken) is not None:
        raise InvalidInput("credential: this security key is enrolled already")
    key = ConsoleSecurityKey(
        account_id=account.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        rp_id=party.rp_id,
        sign_count=verified.sign_count,
        name=name.strip(),
        created_at=utcnow(),
    )
    db.add(key)
    db.flush()
    details = {"name": key.name, "rp_id": key.rp_id, "credential": fingerprint(key)}
    record(db, actor_of(account), ENROL_ACTION, account.username, details=details)
    return key


def fingerprint(key: ConsoleSecurityKey) -> str:
    """A short name for a credential in the log and on pages (its id's SHA-256, 16 hex)."""
    return hashlib.sha256(key.credential_id).hexdigest()[:16]


def sign_in_options(db: Session, row: ConsoleSession, account: StaffAccount, party: Party) -> str:
    """The options (JSON) for `navigator.credentials.get`: this party's keys of the account."""
    keys = [key for key in keys_of(db, account) if key.rp_id == party.rp_id]
    options = generate_authentication_options(
        rp_id=party.rp_id,
        challenge=_issue(row, SIGN_IN),
        allow_credentials=_descriptors(keys),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json(options)


def check_assertion(
    db: Session, row: ConsoleSession, account: StaffAccount, party: Party, response: str
) -> str | None:
    """None when `response` is a fresh assertion by one of the account's keys for this
    session's challenge (its counter then kept); else why not, for the refusal's event."""
    challenge = _take(row, SIGN_IN)
    if challenge is None:
        return "no security key challenge pending"
    try:
        raw_id = base64url_to_bytes(_raw_id(response))
    except ValueError:
        return "malformed security key answer"
    key = db.scalar(
        select(ConsoleSecurityKey).where(
            ConsoleSecurityKey.account_id == account.id,
            ConsoleSecurityKey.credential_id == raw_id,
        )
    )
    if key is None or key.rp_id != party.rp_id:
        return "unknown security key"
    try:
        verified = verify_authentication_response(
            credential=response,
            expected_challenge=challenge,
            expected_rp_id=key.rp_id,
            expected_origin=party.origin,
            credential_public_key=key.public_key,
            credential_current_sign_count=key.sign_count,
        )
    except InvalidAuthenticationResponse as exc:
        return "security key counter did not grow" if "sign count" in str(exc) else "bad assertion"
    except (ValueError, KeyError, TypeError):
        return "malformed security key answer"
    key.sign_count, key.last_used_at = verified.new_sign_count, utcnow()
    return None


def _raw_id(response: str) -> str:
    parsed = json.loads(response)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("rawId"), str):
        raise ValueError("rawId")
    return str(parsed["rawId"])
