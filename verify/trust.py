"""The trust list: issuing bodies, their roots, their keys' certificates and the code tables,
signed as a whole by each body's root key and opened only under a pinned root
(`verify.anchors`); and the revocation list: versioned, each version signed by the body's
revocation key when a certificate is revoked.

Both are kept in the public register, so a public node can serve and check them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.dbtypes import utcnow
from verify.anchors import fingerprint
from verify.codes import QUALIFICATIONS, REVOCATION_CATEGORIES, SUBJECTS
from verify.models import SignedRevocationList, SignedTrustList, TrustedBody, TrustedKey
from verify.outbox import record_change

FORMAT = "certsvc-trust-list/1"
REVOCATIONS_FORMAT = "certsvc-revocation-list/1"
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
    record_change(db, signed)
    return signed


def latest_trust_list(db: Session) -> SignedTrustList | None:
    return db.scalars(select(SignedTrustList).order_by(SignedTrustList.version.desc())).first()


def published(signed: SignedTrustList) -> dict[str, Any]:
    """As served: the document, and the root's signature over its exact canonical bytes."""
    return {
        "trust_list": json.loads(signed.document),
        "signature": base64.b64encode(signed.signature).decode(),
    }


def open_trust_list(served: dict[str, Any], anchors: frozenset[str]) -> dict[str, Any]:
    """The trust list if every body's root is pinned in `anchors` (`verify.anchors`) and the
    signature verifies with one of them; `TrustListInvalid` otherwise (also when nothing is
    pinned: an unpinned list proves only that someone signed it)."""
    try:
        document = served["trust_list"]
        signature = base64.b64decode(served["signature"])
        if document.get("format") != FORMAT:
            raise TrustListInvalid("trust list: unknown format")
        roots = [
            x509.load_pem_x509_certificate(body["root_certificate"].encode())
            for body in document["bodies"]
        ]
        if not roots:
            raise TrustListInvalid("trust list: names no body")
        unpinned = [
            r
            for r in roots
            if fingerprint(r.public_bytes(serialization.Encoding.DER)) not in anchors
        ]
        if unpinned:
            raise TrustListInvalid(
                "trust list: signed under a root that is not pinned (CERTSVC_TRUST_ANCHORS, or "
                "trust-anchors.json written by `certsvc init`)"
            )
        if not any(_verifies(root, signature, canonical(document)) for root in roots):
            raise InvalidSignature
    except InvalidSignature:
        raise TrustListInvalid("trust list: the signature does not verify") from None
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, TrustListInvalid):
            raise
        raise TrustListInvalid("trust list: malformed") from None
    return dict(document)


def _verifies(certificate: x509.Certificate, signature: bytes, data: bytes) -> bool:
    public = certificate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def revoked_entry(salt: bytes, verification_id: str) -> str:
    """A truncated keyed hash: a verifier holding an id can look it up, nobody can list ids."""
    digest = hmac.new(salt, verification_id.encode(), hashlib.sha256).digest()
    return digest[:REVOKED_ENTRY_BYTES].hex()


@dataclass(frozen=True)
class Revoked:
    """One entry of a revocation list: when, and in which category."""

    on: date
    category: str


@dataclass(frozen=True)
class RevocationList:
    """A revocation list whose signature verified: its version and entries."""

    version: int
    salt: bytes
    entries: Mapping[str, Revoked]
    document: dict[str, Any]

    def find(self, verification_id: str) -> Revoked | None:
        return self.entries.get(revoked_entry(self.salt, verification_id))


def latest_revocation_list(db: Session) -> SignedRevocationList | None:
    return db.scalars(
        select(SignedRevocationList).order_by(SignedRevocationList.version.desc())
    ).first()


def published_revocations(signed: SignedRevocationList) -> dict[str, Any]:
    """As served: the document and the revocation key's signature over its canonical bytes."""
    return {
        "revocation_list": json.loads(signed.document),
        "signature": base64.b64encode(signed.signature).decode(),
    }


def open_revocation_list(served: dict[str, Any], trust: dict[str, Any]) -> RevocationList:
    """The list if it is signed by a revocation key of an opened trust list (`open_trust_list`)
    whose certificate the body's root issued; `TrustListInvalid` otherwise."""
    try:
        document = served["revocation_list"]
        signature = base64.b64decode(served["signature"])
        if document.get("format") != REVOCATIONS_FORMAT:
            raise TrustListInvalid("revocation list: unknown format")
        key = next(k for k in trust["keys"] if k["kid"] == document["kid"])
        body = next(b for b in trust["bodies"] if b["code"] == key["body"])
        certificate = x509.load_pem_x509_certificate(key["certificate"].encode())
        root = x509.load_pem_x509_certificate(body["root_certificate"].encode())
        certificate.verify_directly_issued_by(root)
        if key["purpose"] != "revocation" or document["body"] != key["body"]:
            raise TrustListInvalid("revocation list: not signed by the body's revocation key")
        if not _verifies(certificate, signature, canonical(document)):
            raise TrustListInvalid("revocation list: the signature does not verify")
        entries = {
            str(entry): Revoked(date.fromisoformat(value["on"]), str(value["category"]))
            for entry, value in document["revoked"].items()
        }
        return RevocationList(
            int(document["version"]), base64.b64decode(document["salt"]), entries, document
        )
    except StopIteration:
        raise TrustListInvalid("revocation list: signed by a key not in the trust list") from None
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, InvalidSignature) as exc:
        if isinstance(exc, TrustListInvalid):
            raise
        raise TrustListInvalid("revocation list: malformed") from None


def verified_revocations(db: Session, anchors: frozenset[str]) -> RevocationList | None:
    """The newest signed revocation list, opened under the trust list the pinned `anchors`
    open; None when none is on file, `TrustListInvalid` when it does not verify."""
    latest = latest_revocation_list(db)
    if latest is None:
        return None
    signed_trust = latest_trust_list(db)
    if signed_trust is None:
        raise TrustListInvalid("trust list: none published")
    trust = open_trust_list(published(signed_trust), anchors)
    return open_revocation_list(published_revocations(latest), trust)


def next_revocation_list(
    previous: RevocationList | None,
    body_code: str,
    kid: str,
    verification_id: str,
    revoked: Revoked,
) -> dict[str, Any]:
    """The next version: the previous (verified) list's entries, plus one."""
    return revocation_list_adding(previous, body_code, kid, {verification_id: revoked})


def revocation_list_adding(
    previous: RevocationList | None,
    body_code: str,
    kid: str,
    added: Mapping[str, Revoked],
) -> dict[str, Any]:
    """The next version: the previous (verified) list's entries, plus `added` (by verification
    id; none makes an empty version 1). Built from the signed list and never from register
    rows, so a row edited back to valid stays listed."""
    salt = previous.salt if previous is not None else secrets.token_bytes(16)
    entries = {
        entry: {"on": r.on.isoformat(), "category": r.category}
        for entry, r in (previous.entries.items() if previous is not None else ())
    }
    for verification_id, revoked in added.items():
        entries[revoked_entry(salt, verification_id)] = {
            "on": revoked.on.isoformat(),
            "category": revoked.category,
        }
    return {
        "format": REVOCATIONS_FORMAT,
        "version": 1 if previous is None else previous.version + 1,
        "body": body_code,
        "kid": kid,
        "issued_at": utcnow().isoformat(),
        "salt": base64.b64encode(salt).decode(),
        "revoked": entries,
    }


def store_revocation_list(db: Session, document: dict[str, Any], signature: bytes) -> None:
    """Add a signed version, in the caller's transaction (the version is the primary key: two
    writers of one version cannot both commit)."""
    signed = SignedRevocationList(
        version=document["version"],
        document=canonical(document).decode(),
        signature=signature,
        signed_at=utcnow(),
    )
    db.add(signed)
    db.flush()
    record_change(db, signed)
