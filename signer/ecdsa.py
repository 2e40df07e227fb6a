"""ECDSA P-256 signature encodings. Signatures themselves are made only through
`signer.gate` (the raw token operation is private to it)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

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
