"""Signing on a token, verified before use: ECDSA P-256 with SHA-256 (hash here, sign the
digest there) and Ed25519 (the token signs the message itself).

Private: call it through `signer.gate`, which checks the policy, counts the key's usage and
records the audit event around it.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from signer.ecdsa import EcdsaSignature, raw_to_der
from signer.errors import SignatureInvalid
from signer.tokens import TokenSession


def sign_p256(
    session: TokenSession,
    key_label: str,
    data: bytes,
    public_key: ec.EllipticCurvePublicKey,
) -> EcdsaSignature:
    """Sign `data` with the token key `key_label`; the signature is checked against
    `public_key` (the key's registered certificate, or the token's own public key when the key
    is not registered yet) before it is returned: a token that signs wrongly is never trusted."""
    digest = hashlib.sha256(data).digest()
    raw = session.sign_digest(key_label, digest)
    signature = EcdsaSignature(der=raw_to_der(raw), raw=raw)
    try:
        public_key.verify(signature.der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise SignatureInvalid(session.name, key_label) from None
    return signature


def sign_ed25519(
    session: TokenSession, key_label: str, data: bytes, public_key: Ed25519PublicKey
) -> bytes:
    """Ed25519 signature (64 bytes) over `data` with the token key `key_label`, checked against
    the key's registered certificate before it is returned."""
    signature = session.sign_eddsa(key_label, data)
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise SignatureInvalid(session.name, key_label) from None
    return signature
