"""A certifying body with software keys that writes the public register the way `certify` does
(signed payloads, a signed trust list, a new signed revocation list per revocation), for
benchmarks that need many register changes fast and no USBKey: its writes go through
`verify.register` and so into the outbox too, when the database has one."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from common.cose import kid_of
from verify.anchors import fingerprint
from verify.payload import Claims, new_verification_id, sign_claims
from verify.register import (
    PublicFields,
    publish_body,
    publish_certificate,
    publish_key,
    revoke_certificate,
)
from verify.trust import (
    RevocationList,
    Revoked,
    canonical,
    latest_revocation_list,
    next_revocation_list,
    open_revocation_list,
    open_trust_list,
    published,
    published_revocations,
    sign_trust_list,
    store_revocation_list,
)

BODY = "410000"


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(issuer[1], hashes.SHA256())
    )


class SoftwareBody:
    """Root, certificate and revocation keys in memory; `anchor` is the root's fingerprint
    (CERTSVC_TRUST_ANCHORS for the nodes)."""

    def __init__(self) -> None:
        self._root_key, self._key, self._revocation_key = (
            ec.generate_private_key(ec.SECP256R1()) for _ in range(3)
        )
        self._root = _certificate("bench root", self._root_key, ("bench root", self._root_key))
        self._certificate = _certificate(
            "bench certificates", self._key, ("bench root", self._root_key)
        )
        self._revocation_certificate = _certificate(
            "bench revocations", self._revocation_key, ("bench root", self._root_key)
        )
        self.anchor = fingerprint(self._root.public_bytes(serialization.Encoding.DER))
        self._trust: dict[str, Any] | None = None
        self._revocation_kid = ""
        self._listing: RevocationList | None = None
        self._issued = 0

    def publish(self, db: Session) -> None:
        """The body, its keys and its signed trust list, in the caller's transaction."""
        publish_body(db, BODY, "河南省教育厅", self._root)
        publish_key(db, BODY, "certificate", self._certificate)
        self._revocation_kid = publish_key(db, BODY, "revocation", self._revocation_certificate)
        signed = sign_trust_list(
            db, lambda data: self._root_key.sign(data, ec.ECDSA(hashes.SHA256()))
        )
        self._trust = open_trust_list(published(signed), frozenset({self.anchor}))

    def issue(self, db: Session) -> str:
        """One certificate with its signed payload; its verification id."""
        number = f"2020410000{self._issued:07d}"
        self._issued += 1
        vid = new_verification_id()
        claims = Claims(BODY, number, "SS", "02", "张*", date(2020, 1, 1), int(time.time()))
        fields = PublicFields(vid, number, "SS", "02", BODY, date(2020, 1, 1), "张*")

        def sign_raw(data: bytes) -> bytes:
            r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        publish_certificate(
            db, fields, sign_claims(claims, vid, kid_of(self._certificate), sign_raw)
        )
        return vid

    def revoke(self, db: Session, vid: str) -> None:
        """Revoke `vid` and publish the next signed revocation list, in one transaction."""
        assert self._trust is not None, "publish() first"
        revoked = Revoked(date(2021, 1, 1), "error")
        revoke_certificate(db, vid, revoked.on, revoked.category)
        document = next_revocation_list(self._listing, BODY, self._revocation_kid, vid, revoked)
        signature = self._revocation_key.sign(canonical(document), ec.ECDSA(hashes.SHA256()))
        store_revocation_list(db, document, signature)
        latest = latest_revocation_list(db)
        assert latest is not None
        self._listing = open_revocation_list(published_revocations(latest), self._trust)
