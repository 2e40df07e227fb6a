"""The trust list: issuing bodies, their roots, their keys' certificates and the code tables,
signed as a whole by each body's root key; and the revocation list for offline verifiers.

Both are built from the public register only, so a public node can serve them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.dbtypes import utcnow
from verify.codes import QUALIFICATIONS, REVOCATION_CATEGORIES, SUBJECTS
from verify.models import PublicCertificate, SignedTrustList, TrustedBody, TrustedKey

FORMAT = "certsvc-trust-list/1"
REVOKED_ENTRY_BYTES = 8


class TrustListInvalid(ValueError):
    """A trust list whose signature or shape does not hold."""


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def build_trust_list(db: Session, version: int, issued_at: datetime) -> dict[str, Any]:
    bodies = list(db.scalars(select(TrustedBody).order_by(TrustedBody.code)))
    keys = list(db.scalars(select(TrustedKey).order_by(TrustedKey.kid)))
    return {
        "format": FORMAT,
        "version": version,
        "issued_at": issued_at.isoformat(),
        "bodies": [
            {"code": b.code, "name": b.name, "root_certificate": _pem(b.root_certificate)}
            for b in bodies
        ],
        "keys": [
            {
                "kid": k.kid,
                "body": k.body_code,
                "purpose": k.purpose,
                "certificate": _pem(k.certificate),
                "retired_at": k.retired_at.isoformat() if k.retired_at else None,
            }
            for k in keys
        ],
        "codes": {
            "qualification": {code: list(names) for code, names in QUALIFICATIONS.items()},
            "subject": {code: list(names) for code, names in SUBJECTS.items()},
            "revocation_category": {
                code: list(names) for code, names in REVOCATION_CATEGORIES.items()
            },
        },
    }


def sign_trust_list(db: Session, sign_der: Callable[[bytes], bytes]) -> SignedTrustList:
    """A new version of the trust list, signed by the root key (`sign_der` signs on its token)."""
    latest = latest_trust_list(db)
    version = 1 if latest is None else latest.version + 1
    now = utcnow()
    document = canonical(build_trust_list(db, version, now)).decode()
    signed = SignedTrustList(
        version=version, document=document, signature=sign_der(document.encode()), signed_at=now
    )
    db.add(signed)
    db.flush()
    return signed


def latest_trust_list(db: Session) -> SignedTrustList | None:
    return db.scalars(select(SignedTrustList).order_by(SignedTrustList.version.desc())).first()


def published(signed: SignedTrustList) -> dict[str, Any]:
    """As served: the document, and the root's signature over its exact canonical bytes."""
    return {
        "trust_list": json.loads(signed.document),
        "signature": base64.b64encode(signed.signature).decode(),
    }


def open_trust_list(served: dict[str, Any], root: x509.Certificate | None = None) -> dict[str, Any]:
    """The trust list if its signature verifies with `root` (default: the root it names for its
    first body — pin a root fingerprint out of band to make that meaningful)."""
    try:
        document = served["trust_list"]
        signature = base64.b64decode(served["signature"])
        if document.get("format") != FORMAT:
            raise TrustListInvalid("trust list: unknown format")
        if root is None:
            root = x509.load_pem_x509_certificate(
                document["bodies"][0]["root_certificate"].encode()
            )
        public = root.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise TrustListInvalid("trust list: the root is not an EC key")
        public.verify(signature, canonical(document), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise TrustListInvalid("trust list: the signature does not verify") from None
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, TrustListInvalid):
            raise
        raise TrustListInvalid("trust list: malformed") from None
    return dict(document)


def revocation_salt(document: dict[str, Any]) -> bytes:
    return hashlib.sha256(b"certsvc-revocations\n" + canonical(document)).digest()[:16]


def revoked_entry(salt: bytes, verification_id: str) -> str:
    """A truncated keyed hash: a verifier holding an id can look it up, nobody can list ids."""
    digest = hmac.new(salt, verification_id.encode(), hashlib.sha256).digest()
    return digest[:REVOKED_ENTRY_BYTES].hex()


def revocation_list(db: Session, document: dict[str, Any]) -> dict[str, Any]:
    salt = revocation_salt(document)
    ids = db.scalars(
        select(PublicCertificate.verification_id).where(PublicCertificate.status == "revoked")
    )
    return {
        "trust_list_version": document["version"],
        "salt": base64.b64encode(salt).decode(),
        "generated_at": utcnow().isoformat(),
        "revoked": sorted(revoked_entry(salt, vid) for vid in ids),
    }
