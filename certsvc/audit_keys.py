"""The audit log's checkpoint key: on its own token, unlocked unattended with a service PIN.

Also where the service learns the public half that verifiers need (from the custody register),
so `certsvc audit verify` needs no token at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.log import size
from audit.publish import CheckpointSigner
from certsvc.audit_trail import SYSTEM_ROLE
from certsvc.service_pins import service_pin
from certsvc.settings import Settings
from common.errors import ServiceFault
from signer.actor import Actor
from signer.custody import certificate_of
from signer.gate import GateTransaction, Subject, authorise_service
from signer.models import HsmToken, KeyPurpose, SigningKey
from signer.policy import SignPurpose
from signer.tokens import Pkcs11Tokens, TokenSession

# Who signs the checkpoints the service makes on its own (`Checkpointer`).
CHECKPOINTER = Actor("certsvc-checkpointer", 0, SYSTEM_ROLE)


class NoCheckpointKey(ServiceFault):
    """No audit-checkpoint key is registered for the body."""


def checkpoint_key(db: Session, settings: Settings) -> tuple[SigningKey, x509.Certificate]:
    """The body's newest audit-checkpoint key, retired or not: the checkpoints it signed still
    verify with it, and the signing gate refuses it (with an audit event) once it may no
    longer sign."""
    key = db.scalars(
        select(SigningKey)
        .where(
            SigningKey.body_code == settings.body_code,
            SigningKey.purpose == KeyPurpose.AUDIT_CHECKPOINT,
        )
        .order_by(SigningKey.id.desc())
    ).first()
    if key is None:
        raise NoCheckpointKey(
            f"no audit-checkpoint key for body {settings.body_code}: run `certsvc init`"
        )
    return key, certificate_of(key)


def checkpoint_public_key(db: Session, settings: Settings) -> ec.EllipticCurvePublicKey:
    _, certificate = checkpoint_key(db, settings)
    public = certificate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise NoCheckpointKey("the audit-checkpoint key is not an EC key")
    return public


class CheckpointKeyHolder:
    """Keeps the audit token logged in for this process and signs checkpoint notes with its
    key, through the signing gate (service rules, counted, one event per checkpoint)."""

    def __init__(
        self, settings: Settings, tokens: Pkcs11Tokens, sessions: sessionmaker[Session]
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._sessions = sessions
        self._lock = threading.Lock()
        self._session: TokenSession | None = None

    def unlock(self) -> None:
        """Log in to the audit token with its service PIN, unless this process is logged in.

        Call it before opening the transaction that publishes: logging in writes the PIN
        counter, which must not wait on the log's own lock (SQLite has one lock per file).
        """
        with self._sessions() as db:
            key, _ = checkpoint_key(db, self._settings)
            label = db.scalar(select(HsmToken.label).where(HsmToken.serial == key.token_serial))
        if label is None:
            raise NoCheckpointKey("the audit-checkpoint key's token is not registered")
        with self._lock:
            if self._session is None or not self._session.is_open:
                pin = service_pin(self._settings.service_pins_file, label)
                self._session = self._tokens.login(key.token_serial, pin)

    def signer(self, unit: GateTransaction, actor: Actor) -> CheckpointSigner:
        """A checkpoint signer whose signatures `actor` asks the gate for, in `unit`'s
        transaction: the checkpoint and its event commit together, and the checkpoint covers
        its own event (`audit-checkpoint:<size>`, the last one it holds)."""
        key, _ = checkpoint_key(unit.db, self._settings)
        public = checkpoint_public_key(unit.db, self._settings)  # the note names it
        with self._lock:
            session = self._session
        key_id = key.id

        def authorise() -> Callable[[bytes], bytes]:
            subject = Subject(f"audit-checkpoint:{size(unit.db) + 1}")
            purpose = SignPurpose.AUDIT_CHECKPOINT
            permit = authorise_service(unit, actor, key_id, session, purpose, subject)
            return lambda note: permit.sign(note).der

        return CheckpointSigner(self._settings.audit_origin, public, authorise)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
