"""A throwaway certificate for checkpoint keys held in software by tests."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test audit key")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def append_events(url: str, worker: int, count: int) -> None:
    """A separate process appending `count` events, one transaction each, as a worker would."""
    from audit.events import AuditEvent
    from audit.log import append
    from certsvc.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        for n in range(count):
            with sessions.begin() as db:
                append(db, AuditEvent(f"worker{worker}", "custodian", "signer.sign", str(n), "ok"))
    finally:
        engine.dispose()
