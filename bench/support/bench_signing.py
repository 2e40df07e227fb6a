"""What the signing benchmarks share: a freshly initialised service with the custodian's signing
session open on the demo USBKey, and the raw python-pkcs11 sign loop on the same token key that
they measure against."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Mechanism, ObjectClass
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.accounts import StaffAccount
from certsvc.bootstrap import initialise
from certsvc.db import make_engine, make_sessionmaker
from certsvc.hsm import open_tokens
from certsvc.settings import Settings
from signer.actor import Actor
from signer.documents import DocumentRef, DocumentSigner
from signer.gate import SigningGate
from signer.models import SigningKey
from signer.policy import CaseGates
from signer.sessions import SigningSessions

KEY = "certificate-1"
WORKSTATION = "ws-custodian-01"


class ClearCases:
    """Records of a ready batch, as `certify` answers them: every case cleared (R2) and in time
    (R3), each certificate's content from its number."""

    def gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates:
        return CaseGates(criminal_record_clear=True)

    def content_for(self, db: Session, kind: str, document_id: str) -> Mapping[str, Any]:
        return {"number": document_id, "type": "高级中学", "subject": "数学", "body": "410000"}


@dataclass
class SigningService:
    settings: Settings
    sessions: sessionmaker[Session]
    gate: SigningGate
    signer: DocumentSigner
    actor: Actor
    key_id: int
    usbkey: dict[str, str]


@contextmanager
def signing_service(home: Path, database_url: str | None) -> Iterator[SigningService]:
    """A service initialised in `home` on `database_url` (None: the embedded SQLite), the
    custodian's session open for the certificate key; closed and logged out afterwards."""
    settings = Settings(
        home=home,
        database_url=database_url,
        password_hash_profile="test",  # noqa: S106 - the cost profile's name, not a secret
    )
    initialise(settings)
    usbkey = json.loads(settings.credentials_file.read_text())["tokens"]["USBKEY-01"]
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    tokens = open_tokens(settings, sessions)
    signing = SigningSessions(tokens, 3600, 600)
    gate = SigningGate(signing)
    with sessions() as db:
        account = db.scalars(select(StaffAccount).where(StaffAccount.username == "custodian")).one()
        key_id = db.scalars(select(SigningKey.id).where(SigningKey.label == KEY)).one()
    actor = Actor("custodian", account.id, "custodian", WORKSTATION)
    signing.open(usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, KEY)
    try:
        yield SigningService(
            settings,
            sessions,
            gate,
            DocumentSigner(sessions, gate, ClearCases()),
            actor,
            key_id,
            usbkey,
        )
    finally:
        signing.close_all()
        tokens.reset()
        engine.dispose()


def certificates(count: int, prefix: str) -> list[DocumentRef]:
    return [DocumentRef("certificate", f"{prefix}{n:06d}") for n in range(count)]


def raw_sign_rate(service: SigningService, count: int) -> float:
    """Signatures per second of a bare python-pkcs11 loop on the same token key (the service's
    own session must be closed first: one login per token)."""
    raw_lib = pkcs11.lib(service.settings.pkcs11_module)
    token = raw_lib.get_token(token_serial=service.usbkey["serial"].encode())
    with token.open(user_pin=service.usbkey["user_pin"]) as raw:
        key = raw.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY)
        digest = hashlib.sha256(b"x").digest()
        started = time.perf_counter()
        for _ in range(count):
            key.sign(digest, mechanism=Mechanism.ECDSA)
        return count / (time.perf_counter() - started)
