"""COSE_Sign1 with ES256 (RFC 9052 §4.2, RFC 9053 §2.1): building the bytes to be signed, and
verifying any such structure against a certificate or public key.

Neutral on purpose: `signer` builds what its tokens sign with it and `verify` checks signatures
with it, without knowing our payload schema, so it imports neither and depends on `cbor2` and
`cryptography` only. Signing itself happens on a token (see `signer.documents`); this module
never holds a private key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from common.errors import CertsvcError

COSE_SIGN1_TAG = 18
HEADER_ALG = 1
HEADER_CRIT = 2
HEADER_KID = 4
ALG_ES256 = -7
KID_BYTES = 8
P256_SIGNATURE_BYTES = 64


class CoseInvalid(CertsvcError):
    """A COSE_Sign1 that is malformed, uses another algorithm, or does not verify."""

    status_code = 422


@dataclass(frozen=True)
class VerifiedSign1:
    """What a verified COSE_Sign1 says: its payload bytes and the headers that were signed."""

    payload: bytes
    kid: bytes | None
    protected: dict[Any, Any]


def kid_of(certificate: x509.Certificate) -> bytes:
    """The key id naming a signing certificate: the first 8 bytes of SHA-256 of its DER (as
    the EU DCC does); a verifier tries every key sharing a kid."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).digest()[:KID_BYTES]


def protected_header(kid: bytes) -> bytes:
    """The protected header, deterministic CBOR: algorithm ES256 and the kid (signed, so the
    kid cannot be swapped to point a verifier at another key)."""
    return cbor2.dumps({HEADER_ALG: ALG_ES256, HEADER_KID: kid}, canonical=True)


def to_be_signed(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """Sig_structure for COSE_Sign1 (RFC 9052 §4.4): the exact bytes the signature covers."""
    return cbor2.dumps(["Signature1", protected, external_aad, payload], canonical=True)


def encode_sign1(protected: bytes, payload: bytes, signature: bytes) -> bytes:
    """The tagged COSE_Sign1 message; `signature` is raw r‖s (64 bytes for P-256)."""
    if len(signature) != P256_SIGNATURE_BYTES:
        raise ValueError("signature: ES256 needs 64 bytes r‖s")
    return cbor2.dumps(
        cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]), canonical=True
    )


def verify_sign1(
    message: bytes,
    key: x509.Certificate | ec.EllipticCurvePublicKey,
    external_aad: bytes = b"",
) -> VerifiedSign1:
    """Check a COSE_Sign1 (tagged or not) signed with ES256 by `key`; its payload on success.

    Any payload is accepted: this checks the signature, not what was signed. With a
    certificate, a kid in the message must be that certificate's `kid_of`.
    """
    protected_bytes, unprotected, payload, signature = _decode(message)
    protected = _header_map(protected_bytes)
    if protected.get(HEADER_ALG) != ALG_ES256:
        raise CoseInvalid("COSE_Sign1: algorithm must be ES256 (-7) in the protected header")
    if HEADER_CRIT in protected:
        raise CoseInvalid("COSE_Sign1: critical header parameters are not supported")
    kid = protected.get(HEADER_KID, unprotected.get(HEADER_KID))
    if kid is not None and not isinstance(kid, bytes):
        raise CoseInvalid("COSE_Sign1: kid must be a byte string")
    if isinstance(key, x509.Certificate):
        if kid is not None and kid != kid_of(key):
            raise CoseInvalid("COSE_Sign1: kid does not name the given certificate")
        public_key = key.public_key()
    else:
        public_key = key
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise CoseInvalid("COSE_Sign1: ES256 needs a P-256 public key")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        public_key.verify(
            encode_dss_signature(r, s),
            to_be_signed(protected_bytes, payload, external_aad),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        raise CoseInvalid("COSE_Sign1: the signature does not verify with this key") from None
    return VerifiedSign1(payload=payload, kid=kid, protected=protected)


def _decode(message: bytes) -> tuple[bytes, dict[Any, Any], bytes, bytes]:
    try:
        decoded = cbor2.loads(message)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError):
        raise CoseInvalid("COSE_Sign1: not well-formed CBOR") from None
    if isinstance(decoded, cbor2.CBORTag):
        if decoded.tag != COSE_SIGN1_TAG:
            raise CoseInvalid(f"COSE_Sign1: tag {decoded.tag}, expected {COSE_SIGN1_TAG}")
        decoded = decoded.value
    # cbor2 decodes a tag's content as immutable: a tuple, maps as frozendict.
    if not isinstance(decoded, list | tuple) or len(decoded) != 4:
        raise CoseInvalid("COSE_Sign1: must be an array of four items")
    protected, unprotected, payload, signature = decoded
    if not isinstance(protected, bytes) or not isinstance(unprotected, Mapping):
        raise CoseInvalid("COSE_Sign1: headers must be a byte string and a map")
    if not isinstance(payload, bytes):
        raise CoseInvalid("COSE_Sign1: detached or non-byte-string payloads are not supported")
    if not isinstance(signature, bytes) or len(signature) != P256_SIGNATURE_BYTES:
        raise CoseInvalid("COSE_Sign1: an ES256 signature is 64 bytes")
    return protected, dict(unprotected), payload, signature


def _header_map(protected: bytes) -> dict[Any, Any]:
    if not protected:
        return {}
    try:
        header = cbor2.loads(protected)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError):
        raise CoseInvalid("COSE_Sign1: protected header is not well-formed CBOR") from None
    if not isinstance(header, Mapping):
        raise CoseInvalid("COSE_Sign1: protected header must be a map")
    return dict(header)
