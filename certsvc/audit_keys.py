"""The audit log's checkpoint key: on its own token, unlocked unattended with a service PIN.

Also where the service learns the public half that verifiers need (from the custody register),
so `certsvc audit verify` needs no token at all.
"""

from __future__ import annotations

import threading

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.publish import CheckpointSigner
from certsvc.service_pins import service_pin
from certsvc.settings import Settings
from common.errors import CertsvcError
from signer.custody import active_key, certificate_of
from signer.ecdsa import sign_p256
from signer.models import HsmToken, KeyPurpose, SigningKey
from signer.tokens import Pkcs11Tokens, TokenSession


class NoCheckpointKey(CertsvcError):
    """No active audit-checkpoint key is registered for the body."""


def checkpoint_key(db: Session, settings: Settings) -> tuple[SigningKey, x509.Certificate]:
    key = active_key(db, settings.body_code, KeyPurpose.AUDIT_CHECKPOINT)
    if key is None:
        raise NoCheckpointKey(
            f"no active audit-checkpoint key for body {settings.body_code}: run `certsvc init`"
        )
    return key, certificate_of(key)


def checkpoint_public_key(db: Session, settings: Settings) -> ec.EllipticCurvePublicKey:
    _, certificate = checkpoint_key(db, settings)
    public = certificate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise NoCheckpointKey("the audit-checkpoint key is not an EC key")
    return public


class CheckpointKeyHolder:
    """Keeps the audit token logged in for this process and signs checkpoint notes with it."""

    def __init__(
        self, settings: Settings, tokens: Pkcs11Tokens, sessions: sessionmaker[Session]
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._sessions = sessions
        self._lock = threading.Lock()
        self._session: TokenSession | None = None

    def signer(self) -> CheckpointSigner:
        """A signer with the audit token already unlocked.

        Call it before opening the transaction that publishes: logging in writes the PIN
        counter, which must not wait on the log's own lock (SQLite has one lock per file).
        """
        with self._sessions() as db:
            key, certificate = checkpoint_key(db, self._settings)
            label = db.scalar(select(HsmToken.label).where(HsmToken.serial == key.token_serial))
        public = certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or label is None:
            raise NoCheckpointKey("the audit-checkpoint key is not a registered EC key")
        with self._lock:
            if self._session is None or not self._session.is_open:
                pin = service_pin(self._settings.service_pins_file, label)
                self._session = self._tokens.login(key.token_serial, pin)
            session = self._session
        key_label = key.label

        def sign_der(data: bytes) -> bytes:
            with self._lock:
                return sign_p256(session, key_label, data, public).der

        return CheckpointSigner(self._settings.audit_origin, public, sign_der)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
