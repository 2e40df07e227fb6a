"""Certificate numbers in the national 17-digit style: year (4), body code (6: province 2 and
body 4), sequence (7). The sequence is a row-locked counter per (year, body) bumped in the
issuing transaction, so concurrent issuers never share a number (and `number` is unique)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from certify.models import CertificateSequence
from common.errors import Conflict

SEQUENCE_MAX = 9_999_999


def next_number(db: Session, body_code: str, year: int) -> str:
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    db.execute(
        dialect.insert(CertificateSequence)
        .values(year=year, body_code=body_code, last=0)
        .on_conflict_do_nothing()
    )
    sequence = db.execute(
        update(CertificateSequence)
        .where(CertificateSequence.year == year, CertificateSequence.body_code == body_code)
        .values(last=CertificateSequence.last + 1)
        .returning(CertificateSequence.last)
    ).scalar_one()
    if sequence > SEQUENCE_MAX:
        raise Conflict(f"number: body {body_code} has used every sequence number of {year}")
    return f"{year:04d}{body_code}{sequence:07d}"
