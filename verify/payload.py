"""What the QR code says: `<BASE>/V/<ID>#TC1:<base45(zlib(COSE_Sign1))>`.

The COSE_Sign1 (ES256, `kid` = SHA-256(cert DER)[:8]) covers a CWT-style CBOR map of the public
fields only, with codes instead of names to fit QR version 10. The verification id stays in the
URL and is bound into the signature as external data, so a payload cannot be moved to another
id. The fragment after `#` never reaches a server.
"""

from __future__ import annotations

import base64
import re
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

import base45
import cbor2

from common.cose import encode_sign1, protected_header, to_be_signed

PREFIX = "TC1:"
ID_BYTES = 16
ID_RE = re.compile(r"^[A-Z2-7]{26}$")
# CWT registered claims (RFC 8392) and private ones, all small integers to stay compact.
CLAIM_ISSUER, CLAIM_ISSUED_AT = 1, 6
CLAIM_NUMBER, CLAIM_QUALIFICATION, CLAIM_SUBJECT, CLAIM_NAME, CLAIM_DATE = -1, -2, -3, -4, -5
MAX_QR_TEXT = 2000


class MalformedQr(ValueError):
    """Text that is not one of our QR payloads; says which part is wrong, not its content."""


@dataclass(frozen=True)
class Claims:
    """The public fields as signed: codes, the masked name, the dates."""

    body: str
    number: str
    qualification: str
    subject: str
    masked_name: str
    issue_date: date
    issued_at: int


def new_verification_id() -> str:
    """128 random bits in upper-case base32: QR alphanumeric, unguessable, not the number."""
    return base64.b32encode(secrets.token_bytes(ID_BYTES)).decode().rstrip("=")


def is_verification_id(text: str) -> bool:
    return bool(ID_RE.match(text))


def encode_claims(claims: Claims) -> bytes:
    return cbor2.dumps(
        {
            CLAIM_ISSUER: claims.body,
            CLAIM_ISSUED_AT: claims.issued_at,
            CLAIM_NUMBER: claims.number,
            CLAIM_QUALIFICATION: claims.qualification,
            CLAIM_SUBJECT: claims.subject,
            CLAIM_NAME: claims.masked_name,
            CLAIM_DATE: int(claims.issue_date.strftime("%Y%m%d")),
        },
        canonical=True,
    )


def decode_claims(payload: bytes) -> Claims:
    try:
        raw = cbor2.loads(payload)
        stamp = raw[CLAIM_DATE]
        claims = Claims(
            body=raw[CLAIM_ISSUER],
            number=raw[CLAIM_NUMBER],
            qualification=raw[CLAIM_QUALIFICATION],
            subject=raw[CLAIM_SUBJECT],
            masked_name=raw[CLAIM_NAME],
            issue_date=date(stamp // 10000, stamp // 100 % 100, stamp % 100),
            issued_at=raw[CLAIM_ISSUED_AT],
        )
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError, EOFError):
        raise MalformedQr("payload: not a certificate claim set") from None
    texts = (claims.body, claims.number, claims.qualification, claims.subject, claims.masked_name)
    if not all(isinstance(t, str) for t in texts) or not isinstance(claims.issued_at, int):
        raise MalformedQr("payload: claim of the wrong type")
    return claims


def sign_claims(
    claims: Claims, verification_id: str, kid: bytes, sign_raw: Callable[[bytes], bytes]
) -> bytes:
    """COSE_Sign1 over the claims, the verification id as external data; `sign_raw` returns
    ES256 r‖s over the bytes it is given (made on the token)."""
    protected = protected_header(kid)
    payload = encode_claims(claims)
    signature = sign_raw(to_be_signed(protected, payload, verification_id.encode()))
    return encode_sign1(protected, payload, signature)


def offline_text(cose: bytes) -> str:
    compressed = zlib.compress(cose, 9)
    data = compressed if len(compressed) < len(cose) else cose
    return PREFIX + str(base45.b45encode(data).decode())


def verification_url(public_base_url: str, verification_id: str) -> str:
    """Upper case so the QR stays in alphanumeric mode; the server accepts /V/ and /v/."""
    return f"{public_base_url.rstrip('/').upper()}/V/{verification_id}"


def qr_text(public_base_url: str, verification_id: str, cose: bytes) -> str:
    return f"{verification_url(public_base_url, verification_id)}#{offline_text(cose)}"


def parse_qr_text(text: str) -> tuple[str | None, bytes]:
    """(verification id or None for a bare payload, COSE bytes) from what a scanner read."""
    text = text.strip()
    if len(text) > MAX_QR_TEXT:
        raise MalformedQr("qr: longer than any certificate QR")
    verification_id = None
    if not text.upper().startswith(PREFIX):
        url, hash_sign, fragment = text.partition("#")
        if not hash_sign:
            raise MalformedQr("qr: no offline payload after '#'")
        path = urlsplit(url).path.rstrip("/").split("/")
        if len(path) < 2 or path[-2].upper() != "V" or not is_verification_id(path[-1].upper()):
            raise MalformedQr("qr: the URL does not end in /V/<verification id>")
        verification_id = path[-1].upper()
        text = fragment
    if not text.upper().startswith(PREFIX):
        raise MalformedQr(f"qr: the payload does not start with {PREFIX}")
    try:
        data = base45.b45decode(text[len(PREFIX) :].upper())
    except ValueError:
        raise MalformedQr("qr: the payload is not base45") from None
    if data[:1] == b"\x78":
        try:
            data = zlib.decompressobj().decompress(data, 4096)
        except zlib.error:
            raise MalformedQr("qr: the payload does not decompress") from None
    return verification_id, data
