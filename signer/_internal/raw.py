"""Signing on a token, verified before use: ECDSA P-256 with SHA-256 (hash here, sign the
digest there) and Ed25519 (the token signs the message itself). `DigestSigner` signs a batch's
digests on a thread of its own while the caller verifies and stores the ones already back:
python-pkcs11's sign and `cryptography`'s verify both release the GIL, so the two overlap.

Private: call it through `signer.gate`, which checks the policy, counts the key's usage and
records the audit event around it.
"""

from __future__ import annotations

import hashlib
import threading
from queue import SimpleQueue
from typing import Self

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
    return checked_p256(
        session, key_label, digest, session.sign_digest(key_label, digest), public_key
    )


def checked_p256(
    session: TokenSession,
    key_label: str,
    digest: bytes,
    raw: bytes,
    public_key: ec.EllipticCurvePublicKey,
) -> EcdsaSignature:
    """The token's raw r‖s over `digest`, once it verifies against `public_key`."""
    signature = EcdsaSignature(der=raw_to_der(raw), raw=raw)
    try:
        public_key.verify(signature.der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise SignatureInvalid(session.name, key_label) from None
    return signature


class DigestSigner:
    """A thread of its own signing P-256 digests with one token key, in the order submitted;
    `result` answers them in that order, each raw (r‖s) and not yet verified — the caller
    checks each with `checked_p256` before using it. After the token's first error the
    thread signs nothing more: `result` raises that error where its signature would be.
    Use as a context manager: leaving it stops the thread, discarding what was not taken."""

    def __init__(self, session: TokenSession, key_label: str) -> None:
        self._session = session
        self._label = key_label
        self._digests: SimpleQueue[bytes | None] = SimpleQueue()
        self._results: SimpleQueue[bytes | BaseException] = SimpleQueue()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="token-signer", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        self._digests.put(None)
        self._thread.join()

    def submit(self, digest: bytes) -> None:
        self._digests.put(digest)

    def ready(self) -> bool:
        """Whether the oldest signature not yet taken is back."""
        return not self._results.empty()

    def result(self) -> bytes:
        """The oldest signature not yet taken, waiting for it; the token's error instead."""
        answer = self._results.get()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _run(self) -> None:
        while (digest := self._digests.get()) is not None:
            if self._stopping:
                continue
            try:
                self._results.put(self._session.sign_digest(self._label, digest))
            except BaseException as exc:  # raised again in the caller's thread, by `result`
                self._results.put(exc)
                self._stopping = True


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
