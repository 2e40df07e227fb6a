"""The custody register: which tokens exist, who holds each, which keys each carries (R6)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from certsvc.errors import Conflict
from certsvc.signer.models import HsmToken, KeyPurpose, KeyStatus, SigningKey


def register_token(
    db: Session,
    serial: str,
    label: str,
    model: str,
    manufacturer: str,
    custodian_id: int | None,
) -> HsmToken:
    if db.get(HsmToken, serial) is not None:
        raise Conflict(f"token: serial {serial} is already registered")
    token = HsmToken(
        serial=serial,
        label=label,
        model=model,
        manufacturer=manufacturer,
        custodian_id=custodian_id,
        pin_failures=0,
    )
    db.add(token)
    db.flush()
    return token


def register_key(
    db: Session,
    token_serial: str,
    label: str,
    purpose: KeyPurpose,
    body_code: str,
    certificate: x509.Certificate,
    issuer_key_id: int | None = None,
    usage_limit: int | None = None,
) -> SigningKey:
    key = SigningKey(
        token_serial=token_serial,
        label=label,
        purpose=purpose,
        algorithm="ES256",
        body_code=body_code,
        certificate_der=certificate.public_bytes(serialization.Encoding.DER),
        issuer_key_id=issuer_key_id,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        usage_count=0,
        usage_limit=usage_limit,
        status=KeyStatus.ACTIVE,
    )
    db.add(key)
    db.flush()
    return key


def active_key(db: Session, body_code: str, purpose: KeyPurpose) -> SigningKey | None:
    """The body's newest active key for a purpose."""
    return db.scalars(
        select(SigningKey)
        .where(
            SigningKey.body_code == body_code,
            SigningKey.purpose == purpose,
            SigningKey.status == KeyStatus.ACTIVE,
        )
        .order_by(SigningKey.id.desc())
    ).first()


def list_tokens(db: Session) -> list[HsmToken]:
    return list(db.scalars(select(HsmToken).order_by(HsmToken.label)))


def certificate_of(key: SigningKey) -> x509.Certificate:
    return x509.load_der_x509_certificate(key.certificate_der)


class DbPinCounter:
    """Wrong PINs counted in the database, so every worker and the CLI agree on tries left."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def failed(self, serial: str) -> int | None:
        with self._sessions.begin() as db:
            db.execute(
                update(HsmToken)
                .where(HsmToken.serial == serial)
                .values(pin_failures=HsmToken.pin_failures + 1)
            )
            return db.scalar(select(HsmToken.pin_failures).where(HsmToken.serial == serial))

    def succeeded(self, serial: str) -> None:
        with self._sessions.begin() as db:
            db.execute(
                update(HsmToken)
                .where(HsmToken.serial == serial, HsmToken.pin_failures != 0)
                .values(pin_failures=0)
            )
