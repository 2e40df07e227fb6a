"""Registered workstations (R6: designated computers have a named custodian) and the signed
requests by which a workstation proves that a request comes from it.

A request from a workstation carries four headers::

    Certsvc-Workstation: <name>
    Certsvc-Timestamp:   <unix seconds>
    Certsvc-Nonce:       <16–64 url-safe characters, never reused>
    Certsvc-Signature:   <base64url without padding of the signature>

over the UTF-8 bytes of ``"certsvc-request-v1\\n" + METHOD + "\\n" + path_with_query + "\\n" +
timestamp + "\\n" + nonce + "\\n" + workstation + "\\n" + sha256hex(body) + "\\n" +
sha256hex(Authorization header value)``. Hashing the Authorization value ties the signature to
one bearer token: nobody can pair a captured signature with another person's token.

A workstation key is Ed25519 (the CLI's) or ECDSA P-256 with SHA-256 (a browser's WebCrypto
key: `certsvc.console`). An ECDSA signature is accepted in WebCrypto's IEEE P1363 form (r || s,
32 bytes each) or DER; both are checked as DER after conversion.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    delete,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from certsvc.accounts import Role, StaffAccount, get_account
from common.db import Base
from common.dbtypes import UTCDateTime, utcnow
from common.errors import CertsvcError, Conflict, InvalidInput, NotFound
from common.unit_of_work import keep

SIGNATURE_CONTEXT = "certsvc-request-v1"
# Whose requests must come from a registered computer: those who sign, and those who reveal.
WORKSTATION_ROLES = frozenset({Role.CUSTODIAN, Role.VAULT_REVEALER})
HEADER_WORKSTATION = "Certsvc-Workstation"
HEADER_TIMESTAMP = "Certsvc-Timestamp"
HEADER_NONCE = "Certsvc-Nonce"
HEADER_SIGNATURE = "Certsvc-Signature"

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
NAME_RULE = "name: 2–64 characters of a-z, 0-9, . _ -, starting with a letter or digit"
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# 64 bytes (Ed25519, or ECDSA P-256 as r || s) to 72 (ECDSA P-256 in DER), base64url.
SIGNATURE_RE = re.compile(r"[A-Za-z0-9_-]{86,96}")
P256_POINT_BYTES = 65  # X9.62 uncompressed: 0x04 || x || y
P256_HALF = 32

WorkstationPublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
WorkstationPrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")


class RequestSignatureError(CertsvcError):
    """A request's workstation proof is missing or wrong; the message says which part."""

    status_code = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Certsvc-Signature"}


class Workstation(Base):
    __tablename__ = "workstations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    custodian_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The audit event registering it, carrying the digest of name, holder and key.
    grant_idx: Mapped[int | None] = mapped_column(BigInteger)

    custodian: Mapped[StaffAccount] = relationship()

    @property
    def fingerprint(self) -> str:
        """A short, stable label of the public key, for listings and comparison by eye."""
        return hashlib.sha256(self.public_key).hexdigest()[:16]


class WorkstationNonce(Base):
    """A nonce already seen from a workstation. Rows live as long as a replay could pass the
    timestamp check (twice the allowed skew) and are purged after."""

    __tablename__ = "workstation_nonces"
    __table_args__ = (UniqueConstraint("workstation_id", "nonce"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workstation_id: Mapped[int] = mapped_column(ForeignKey("workstations.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def validate_name(name: str) -> str:
    """`name` if well formed: it travels in a header and lands in logs, so keep it plain."""
    if not NAME_RE.fullmatch(name):
        raise InvalidInput(NAME_RULE)
    return name


def parse_public_key(value: str | bytes) -> WorkstationPublicKey:
    """An Ed25519 or ECDSA P-256 public key from PEM (SubjectPublicKeyInfo), or an Ed25519
    key's raw 32 bytes."""
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) == 32 and not raw.startswith(b"-----"):
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError:
        raise InvalidInput("public_key: not a PEM public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("public_key: neither an Ed25519 nor an ECDSA P-256 key")
    return key


def _stored_key(key: WorkstationPublicKey) -> bytes:
    """Ed25519 as its raw 32 bytes (as ever), P-256 as its 65-byte uncompressed point: the
    length tells them apart."""
    if isinstance(key, Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _verify_signature(stored: bytes, signature: bytes, message: bytes) -> None:
    """`InvalidSignature` unless `signature` over `message` verifies with the stored key."""
    if len(stored) != P256_POINT_BYTES:
        Ed25519PublicKey.from_public_bytes(stored).verify(signature, message)
        return
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), stored)
    if len(signature) == 2 * P256_HALF:  # WebCrypto's r || s
        r = int.from_bytes(signature[:P256_HALF], "big")
        s = int.from_bytes(signature[P256_HALF:], "big")
        signature = encode_dss_signature(r, s)
    key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def generate_workstation_key(path: Path | str) -> Ed25519PublicKey:
    """Create a workstation key pair; the private key goes to `path` (PEM, mode 0600, never
    overwriting a file) and the public key is returned for registration."""
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"key_out: {path} already exists; it is never overwritten") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return private_key.public_key()


def load_workstation_key(path: Path | str) -> Ed25519PrivateKey:
    """The private key written by `generate_workstation_key`."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"key: {path} does not hold an Ed25519 private key")
    return key


def register_workstation(
    session: Session,
    name: str,
    custodian_username: str,
    public_key: WorkstationPublicKey | str | bytes,
) -> Workstation:
    """Register a computer and the person answering for it: a custodian (tokens are used
    there) or a vault revealer (personal values are revealed there)."""
    validate_name(name)
    custodian = get_account(session, custodian_username)
    if custodian.role not in WORKSTATION_ROLES:
        raise InvalidInput(
            f"custodian: {custodian_username!r} must have the custodian or vault_revealer role"
        )
    if not custodian.active:
        raise InvalidInput(f"custodian: {custodian_username!r} is disabled")
    key = public_key if not isinstance(public_key, str | bytes) else parse_public_key(public_key)
    if session.scalar(select(Workstation.id).where(Workstation.name == name)):
        raise Conflict(f"name: workstation {name!r} is already registered")
    workstation = Workstation(
        name=name,
        custodian=custodian,
        public_key=_stored_key(key),
        active=True,
    )
    try:
        with session.begin_nested():
            session.add(workstation)
    except IntegrityError:
        raise Conflict(f"name: workstation {name!r} is already registered") from None
    return workstation


def get_workstation(session: Session, name: str) -> Workstation:
    """The workstation called `name`, active or not; `NotFound` otherwise."""
    validate_name(name)
    workstation = session.scalar(select(Workstation).where(Workstation.name == name))
    if workstation is None:
        raise NotFound(f"name: no workstation {name!r}")
    return workstation


def list_workstations(session: Session) -> list[Workstation]:
    """Every registered workstation, disabled ones included, by name."""
    return list(session.scalars(select(Workstation).order_by(Workstation.name)))


def disable_workstation(session: Session, name: str) -> Workstation:
    """Refuse the workstation's signed requests from now on; the record stays for the audit."""
    workstation = get_workstation(session, name)
    workstation.active = False
    return workstation


def _sha256hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _signed_message(
    method: str,
    path: str,
    timestamp: str,
    nonce: str,
    workstation: str,
    body: bytes,
    authorization: str,
) -> bytes:
    return "\n".join(
        (
            SIGNATURE_CONTEXT,
            method.upper(),
            path,
            timestamp,
            nonce,
            workstation,
            _sha256hex(body),
            _sha256hex(authorization.encode()),
        )
    ).encode()


def sign_request(
    private_key: WorkstationPrivateKey,
    workstation: str,
    method: str,
    path: str,
    body: bytes,
    authorization: str,
    now: float | None = None,
) -> dict[str, str]:
    """The four headers proving that this request comes from `workstation`.

    `path` is the request target exactly as sent, query string included; `authorization` the
    exact Authorization header value ("" when there is none). An ECDSA key signs as WebCrypto
    does (r || s).
    """
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(18)
    message = _signed_message(method, path, timestamp, nonce, workstation, body, authorization)
    if isinstance(private_key, Ed25519PrivateKey):
        raw = private_key.sign(message)
    else:
        r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
        raw = r.to_bytes(P256_HALF, "big") + s.to_bytes(P256_HALF, "big")
    signature = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {
        HEADER_WORKSTATION: workstation,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature,
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise RequestSignatureError(f"missing header {name}")
    return value


def verify_request(
    session: Session,
    *,
    account: StaffAccount,
    method: str,
    path: str,
    body: bytes,
    authorization: str,
    headers: Mapping[str, str],
    max_skew_seconds: int,
    now: datetime | None = None,
) -> Workstation:
    """The workstation that signed this request on behalf of `account`, its nonce recorded.

    Checks, each with its own message: headers well formed; the workstation registered, active
    and in `account`'s custody; the timestamp within `max_skew_seconds`; the signature; the nonce
    never seen. The nonce is recorded only after the signature verifies, so forged requests
    cannot fill the table, and it stays used although the request fails (`keep`): a refused
    request is not replayed later.
    """
    name = _header(headers, HEADER_WORKSTATION)
    timestamp = _header(headers, HEADER_TIMESTAMP)
    nonce = _header(headers, HEADER_NONCE)
    signature = _header(headers, HEADER_SIGNATURE)
    if not NAME_RE.fullmatch(name):
        raise RequestSignatureError(f"{HEADER_WORKSTATION}: not a valid workstation name")
    if not TIMESTAMP_RE.fullmatch(timestamp):
        raise RequestSignatureError(f"{HEADER_TIMESTAMP}: not a whole number of unix seconds")
    if not NONCE_RE.fullmatch(nonce):
        raise RequestSignatureError(f"{HEADER_NONCE}: 16–64 characters of A-Z a-z 0-9 _ -")
    if not SIGNATURE_RE.fullmatch(signature):
        raise RequestSignatureError(
            f"{HEADER_SIGNATURE}: not a base64url signature without padding"
        )

    workstation = session.scalar(select(Workstation).where(Workstation.name == name))
    if workstation is None:
        raise RequestSignatureError(f"workstation {name!r} is not registered")
    if not workstation.active:
        raise RequestSignatureError(f"workstation {name!r} is disabled")
    if workstation.custodian_id != account.id:
        raise RequestSignatureError(f"workstation {name!r} is not in your custody")

    now = now or utcnow()
    if abs(now.timestamp() - int(timestamp)) > max_skew_seconds:
        raise RequestSignatureError(
            f"{HEADER_TIMESTAMP}: more than {max_skew_seconds} s away from the server's clock"
        )

    message = _signed_message(method, path, timestamp, nonce, name, body, authorization)
    try:
        raw_signature = base64.urlsafe_b64decode(signature + "==")
        _verify_signature(workstation.public_key, raw_signature, message)
    except (InvalidSignature, binascii.Error, ValueError):
        raise RequestSignatureError(
            f"{HEADER_SIGNATURE}: does not verify with the key of workstation {name!r}"
        ) from None

    session.execute(
        delete(WorkstationNonce).where(
            WorkstationNonce.seen_at < now - timedelta(seconds=2 * max_skew_seconds)
        )
    )
    workstation_id = workstation.id

    def use_nonce(db: Session) -> None:
        with db.begin_nested():
            db.add(WorkstationNonce(workstation_id=workstation_id, nonce=nonce, seen_at=now))

    try:
        keep(session, use_nonce)
    except IntegrityError:
        raise RequestSignatureError(f"{HEADER_NONCE}: already used (a replayed request)") from None
    return workstation
