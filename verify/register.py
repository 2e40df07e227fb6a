"""The public register's write side, called by `certify` at issue and revoke time (so certify
depends on verify, never the reverse) and by provisioning when keys change."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.cose import kid_of
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from verify.codes import QUALIFICATIONS, REVOCATION_CATEGORIES, SUBJECTS
from verify.models import PublicCertificate, PublicNotice, TrustedBody, TrustedKey
from verify.outbox import record_change
from verify.payload import is_verification_id

NUMBER_RE = re.compile(r"^[0-9]{17}$")
VALID, REVOKED = "valid", "revoked"
PICKUP, MAIL = "pickup", "mail"
PLACE_MAX = 100


@dataclass(frozen=True)
class PublicFields:
    """The allow-list: nothing else about a certificate is ever public (R8)."""

    verification_id: str
    number: str
    qualification: str
    subject: str
    body_code: str
    issue_date: date
    masked_name: str

    def check(self) -> None:
        if not is_verification_id(self.verification_id):
            raise InvalidInput("verification_id: 26 characters of A-Z and 2-7")
        if not NUMBER_RE.match(self.number):
            raise InvalidInput("number: 17 digits")
        if self.qualification not in QUALIFICATIONS:
            raise InvalidInput("qualification: not a known qualification code")
        if self.subject not in SUBJECTS:
            raise InvalidInput("subject: not a known subject code")
        if "*" not in self.masked_name or not 2 <= len(self.masked_name) <= 32:
            raise InvalidInput("masked_name: must be masked (contain '*'), 2–32 characters")


def publish_certificate(db: Session, fields: PublicFields, payload: bytes) -> PublicCertificate:
    """Add an issued certificate with its signed offline payload, in the caller's transaction."""
    fields.check()
    if db.get(TrustedBody, fields.body_code) is None:
        raise InvalidInput(f"body_code: body {fields.body_code} is not in the trust list")
    if db.scalar(select(PublicCertificate.number).where(PublicCertificate.number == fields.number)):
        raise Conflict(f"number: certificate {fields.number} is already published")
    record = PublicCertificate(
        verification_id=fields.verification_id,
        number=fields.number,
        qualification=fields.qualification,
        subject=fields.subject,
        body_code=fields.body_code,
        issue_date=fields.issue_date,
        masked_name=fields.masked_name,
        status=VALID,
        revoked_on=None,
        revocation_category=None,
        payload=payload,
        updated_at=utcnow(),
    )
    db.add(record)
    db.flush()
    record_change(db, record)
    return record


def revoke_certificate(
    db: Session, verification_id: str, revoked_on: date, category: str
) -> PublicCertificate:
    """Mark a certificate revoked, in the caller's transaction: visible at the next request."""
    if category not in REVOCATION_CATEGORIES:
        raise InvalidInput(f"category: one of {', '.join(REVOCATION_CATEGORIES)}")
    record = db.get(PublicCertificate, verification_id, with_for_update=True)
    if record is None:
        raise NotFound("verification_id: no such certificate in the public register")
    if record.status == REVOKED:
        raise Conflict(f"certificate {record.number} is already revoked")
    record.status = REVOKED
    record.revoked_on = revoked_on
    record.revocation_category = category
    record.updated_at = utcnow()
    db.flush()
    record_change(db, record)
    return record


def publish_notice(
    db: Session, number: str, method: str, place: str | None, available_from: date | None
) -> PublicNotice:
    """Publish (or change) how a valid certificate reaches its holder, in the caller's
    transaction: a pickup names its place and first day, a mailing nothing more. The caller has
    checked the place as an announcement (`certify.delivery`)."""
    if not NUMBER_RE.match(number):
        raise InvalidInput("number: 17 digits")
    if method == PICKUP:
        if not place or not place.strip() or len(place) > PLACE_MAX or available_from is None:
            raise InvalidInput(f"place, available_from: a pickup names both (place ≤{PLACE_MAX})")
    elif method == MAIL:
        if place is not None or available_from is not None:
            raise InvalidInput("place, available_from: only for a pickup")
    else:
        raise InvalidInput(f"method: {PICKUP} or {MAIL}")
    status = db.scalar(select(PublicCertificate.status).where(PublicCertificate.number == number))
    if status != VALID:
        raise NotFound(f"number: no valid certificate {number} in the public register")
    notice = db.get(PublicNotice, number)
    if notice is None:
        notice = PublicNotice(number=number)
        db.add(notice)
    notice.method, notice.place, notice.available_from = method, place, available_from
    notice.updated_at = utcnow()
    db.flush()
    record_change(db, notice)
    return notice


def publish_body(db: Session, code: str, name: str, root: x509.Certificate) -> None:
    der = root.public_bytes(serialization.Encoding.DER)
    body = db.get(TrustedBody, code)
    if body is None:
        body = TrustedBody(code=code, name=name, root_certificate=der)
        db.add(body)
    else:
        body.name, body.root_certificate = name, der
    db.flush()
    record_change(db, body)


def publish_key(db: Session, body_code: str, purpose: str, certificate: x509.Certificate) -> str:
    """Add an issuing key's certificate to the trust list; returns its kid (hex)."""
    kid = kid_of(certificate).hex()
    if db.get(TrustedKey, kid) is None:
        key = TrustedKey(
            kid=kid,
            body_code=body_code,
            purpose=purpose,
            certificate=certificate.public_bytes(serialization.Encoding.DER),
            retired_at=None,
        )
        db.add(key)
        db.flush()
        record_change(db, key)
    return kid


def retire_key(db: Session, kid: str, at: datetime) -> None:
    """A retired key signs nothing new; what it signed before stays verifiable."""
    key = db.get(TrustedKey, kid)
    if key is None:
        raise NotFound(f"kid: no published key {kid}")
    key.retired_at = at
    db.flush()
    record_change(db, key)
