"""ECDSA P-256 with SHA-256 on a token: hash here, sign the digest there, verify before use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from signer.errors import SignatureInvalid
from signer.tokens import TokenSession

P256_COORDINATE_BYTES = 32


@dataclass(frozen=True)
class EcdsaSignature:
    """One signature in both encodings: DER for X.509 and CMS, raw r‖s for COSE (RFC 9053)."""

    der: bytes
    raw: bytes


def raw_to_der(raw: bytes) -> bytes:
    if len(raw) != 2 * P256_COORDINATE_BYTES:
        raise ValueError("raw P-256 signature: must be 64 bytes")
    r = int.from_bytes(raw[:P256_COORDINATE_BYTES], "big")
    s = int.from_bytes(raw[P256_COORDINATE_BYTES:], "big")
    return encode_dss_signature(r, s)


def der_to_raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(P256_COORDINATE_BYTES, "big") + s.to_bytes(P256_COORDINATE_BYTES, "big")


def sign_p256(
    session: TokenSession,
    key_label: str,
    data: bytes,
    public_key: ec.EllipticCurvePublicKey | None = None,
) -> EcdsaSignature:
    """Sign `data` with the token key `key_label`; the signature is checked against
    `public_key` (default: the token's public key of the same label) before it is returned."""
    digest = hashlib.sha256(data).digest()
    raw = session.sign_digest(key_label, digest)
    signature = EcdsaSignature(der=raw_to_der(raw), raw=raw)
    check_key = public_key or session.public_key(key_label)
    try:
        check_key.verify(signature.der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise SignatureInvalid(session.name, key_label) from None
    return signature
