"""Checking a scanned QR against a trust list, with no network: the signature, the key's
place in the body's chain, and whether the key was valid when the certificate was issued.

Both the QR and the trust list come from outside: whatever they hold, the answer is a verdict,
never an exception."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from common.cose import CoseInvalid, verify_sign1
from verify.payload import Claims, MalformedQr, decode_claims, parse_qr_text


@dataclass(frozen=True)
class OfflineVerdict:
    valid: bool
    reason: str
    verification_id: str | None = None
    claims: Claims | None = None
    kid: str | None = None
    key_valid_at_issue: bool | None = None


CWT_TAG, COSE_SIGN1_TAG = 61, 18
BARE_NOT_VERIFIED = (
    "bare payload: it verifies for no certificate on file; scan the whole QR code (its URL part "
    "is signed too)"
)
# What a malformed trust list or certificate raises on the way to a verdict.
_MALFORMED = (
    AttributeError,
    InvalidSignature,
    KeyError,
    OSError,
    OverflowError,
    TypeError,
    UnsupportedAlgorithm,
    ValueError,
)
_UNDECODABLE = (
    cbor2.CBORDecodeError,
    AttributeError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ValueError,
)


def _unwrap_cwt(cose: bytes) -> bytes:
    """A COSE_Sign1 inside a CWT tag (61), as some EU DCC issuers write it, as the bare
    COSE_Sign1 the generic verifier reads; anything else as it is."""
    try:
        message = cbor2.loads(cose)
    except _UNDECODABLE:
        return cose
    if isinstance(message, cbor2.CBORTag) and message.tag == CWT_TAG:
        inner = message.value
        if isinstance(inner, cbor2.CBORTag) and inner.tag == COSE_SIGN1_TAG:
            return bytes(cbor2.dumps(inner))
    return cose


def _sign1_items(cose: bytes) -> list[object] | None:
    """The four items of a COSE_Sign1, tagged or not; None for anything else."""
    try:
        message = cbor2.loads(cose)
    except _UNDECODABLE:
        return None
    items = message.value if isinstance(message, cbor2.CBORTag) else message
    return list(items) if isinstance(items, list | tuple) and len(items) == 4 else None


def _kid(items: list[object]) -> bytes | None:
    try:
        header = cbor2.loads(items[0]) if isinstance(items[0], bytes) else None
    except _UNDECODABLE:
        return None
    kid = header.get(4) if isinstance(header, dict) else None
    return kid if isinstance(kid, bytes) else None


def verify_offline(
    text: str,
    trust: dict[str, Any],
    id_for_number: Callable[[str], str | None] | None = None,
) -> OfflineVerdict:
    """Verdict on a QR's text (whole URL, or bare `TC1:` payload when `id_for_number` can find
    the verification id the signature is bound to)."""
    try:
        verification_id, cose = parse_qr_text(text)
    except MalformedQr as exc:
        return OfflineVerdict(False, str(exc))
    try:
        return _verify(verification_id, _unwrap_cwt(cose), trust, id_for_number)
    except _MALFORMED:
        return OfflineVerdict(False, "trust list: malformed; fetch it again from the body")


def verify_signed_payload(
    verification_id: str, cose: bytes, trust: dict[str, Any]
) -> OfflineVerdict:
    """Verdict on a stored COSE payload bound to `verification_id` (a register row's proof)."""
    try:
        return _verify(verification_id, _unwrap_cwt(cose), trust, None)
    except _MALFORMED:
        return OfflineVerdict(False, "trust list: malformed")


def _verify(
    verification_id: str | None,
    cose: bytes,
    trust: dict[str, Any],
    id_for_number: Callable[[str], str | None] | None,
) -> OfflineVerdict:
    bare = verification_id is None
    items = _sign1_items(cose)
    kid = _kid(items) if items is not None else None
    if items is None or kid is None:
        return OfflineVerdict(False, "payload: not a COSE_Sign1 with a key id")
    candidates = [k for k in trust.get("keys", []) if k.get("kid") == kid.hex()]
    if not candidates:
        return OfflineVerdict(False, "signed by a key that is not in the trust list", kid=kid.hex())
    if verification_id is None:
        payload = items[2]
        try:
            number = decode_claims(payload if isinstance(payload, bytes) else b"").number
        except MalformedQr:
            return OfflineVerdict(False, "payload: not a certificate claim set")
        verification_id = id_for_number(number) if id_for_number else None
        if verification_id is None:  # the same answer as a failed signature below
            return OfflineVerdict(False, BARE_NOT_VERIFIED, kid=kid.hex())
    for key in candidates:
        try:
            certificate = x509.load_pem_x509_certificate(str(key["certificate"]).encode())
            verified = verify_sign1(cose, certificate, external_aad=verification_id.encode())
            claims = decode_claims(verified.payload)
        except (CoseInvalid, MalformedQr, *_MALFORMED):
            continue
        return _judge(claims, key, certificate, trust, verification_id)
    if bare:  # whether the number is on file must not show
        return OfflineVerdict(False, BARE_NOT_VERIFIED, kid=kid.hex())
    return OfflineVerdict(
        False,
        "the signature does not verify (altered, or moved to another id)",
        verification_id=verification_id,
        kid=kid.hex(),
    )


def _judge(
    claims: Claims,
    key: dict[str, Any],
    certificate: x509.Certificate,
    trust: dict[str, Any],
    verification_id: str,
) -> OfflineVerdict:
    def verdict(valid: bool, reason: str, in_time: bool | None = None) -> OfflineVerdict:
        return OfflineVerdict(valid, reason, verification_id, claims, key["kid"], in_time)

    body = next((b for b in trust.get("bodies", []) if b.get("code") == key.get("body")), None)
    if body is None or claims.body != key.get("body"):
        return verdict(False, "the signing key does not belong to the issuing body")
    if key.get("purpose") != "certificate":
        return verdict(False, "the signing key is not a certificate-signing key")
    root = x509.load_pem_x509_certificate(body["root_certificate"].encode())
    try:
        certificate.verify_directly_issued_by(root)
    except _MALFORMED:
        return verdict(False, "the signing key's certificate is not issued by the body's root")
    issued = datetime.fromtimestamp(claims.issued_at, UTC)
    retired = datetime.fromisoformat(key["retired_at"]) if key.get("retired_at") else None
    in_time = certificate.not_valid_before_utc <= issued <= certificate.not_valid_after_utc and (
        retired is None or issued < retired
    )
    if not in_time:
        return verdict(False, "the signing key was not valid when this was issued", False)
    return verdict(True, "signature valid", True)
