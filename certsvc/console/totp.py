"""The console's second factor: TOTP (RFC 6238, 30-second steps, 6 digits) with pyotp.

Each account's secret is drawn at enrolment, shown to its holder once (as an `otpauth://` URI
and as text), and stored only sealed: AES-256-GCM under a key kept in `CERTSVC_HOME` beside the
service PIN file (`Settings.console_key_file`, owner-only), not in the database, with the
account's id and username as associated data. A database dump reveals no secret, and a row
copied to another account does not open. A code is accepted once: the step it was made for
must be newer than the last one accepted.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import time
from pathlib import Path

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

from audit.trail import record
from certsvc.accounts import StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.console.enrolments import enrolled_since_reset
from certsvc.console.models import ConsoleTotp
from common.dbtypes import utcnow
from common.errors import Conflict, ServiceFault

ISSUER = "certsvc"
STEP_SECONDS = 30
ENROL_ACTION = "console.totp.enrol"


def _key(path: Path) -> bytes:
    """The sealing key, made on first use: written to a private temporary file, then linked
    into place (atomic, and a second worker racing here reads the winner's key)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, ValueError) as exc:
        reason = type(exc).__name__
        raise ServiceFault(f"console key file {path.name}: unreadable ({reason})") from None
    if len(key) != 32:
        raise ServiceFault(f"console key file {path.name}: not a 256-bit key")
    return key


def _bound(account: StaffAccount) -> bytes:
    return f"console-totp:{account.id}:{account.username}".encode()


def enrolled(db: Session, account: StaffAccount) -> ConsoleTotp | None:
    """The account's confirmed secret's row, if any."""
    row = db.get(ConsoleTotp, account.id)
    return row if row is not None and row.confirmed_at is not None else None


def ever_enrolled(db: Session, account: StaffAccount) -> bool:
    """Whether the log holds an enrolment for the account since its last reset: then a missing
    row was deleted, and enrolling again after a password alone would hand the account to
    whoever knows it."""
    return enrolled_since_reset(db, account.username, ENROL_ACTION)


def begin_enrolment(db: Session, account: StaffAccount, key_file: Path) -> tuple[str, str]:
    """A new secret for an account that has none confirmed, sealed and stored unconfirmed:
    (secret, otpauth URI), to show the holder once."""
    if enrolled(db, account) is not None or ever_enrolled(db, account):
        raise Conflict("second factor: already enrolled for this account")
    secret = pyotp.random_base32()
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key(key_file)).encrypt(nonce, secret.encode(), _bound(account))
    row = db.get(ConsoleTotp, account.id)
    if row is None:
        row = ConsoleTotp(account_id=account.id, last_step=0)
        db.add(row)
    row.nonce, row.ciphertext, row.confirmed_at, row.last_step = nonce, sealed, None, 0
    db.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=account.username, issuer_name=ISSUER)
    return secret, uri


def check_code(
    db: Session, account: StaffAccount, code: str, key_file: Path, now: float | None = None
) -> bool:
    """Whether `code` is the account's current code (one step of drift either way), not used
    before; a first good code confirms a pending enrolment (audited)."""
    row = db.get(ConsoleTotp, account.id)
    if row is None or not (len(code) == 6 and code.isascii() and code.isdigit()):
        return False
    try:
        secret = AESGCM(_key(key_file)).decrypt(row.nonce, row.ciphertext, _bound(account))
    except InvalidTag:  # not sealed for this account, or changed
        return False
    totp = pyotp.TOTP(secret.decode())
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if step > row.last_step and hmac.compare_digest(totp.generate_otp(step), code):
            row.last_step = step
            if row.confirmed_at is None:
                row.confirmed_at = utcnow()
                record(db, actor_of(account), ENROL_ACTION, account.username)
            return True
    return False
