"""A provisioned demo (`certsvc init`) with the signer wired as the service wires it, for the
signer's tests: real SoftHSM tokens, real database, real audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.accounts import StaffAccount
from certsvc.db import make_engine, make_sessionmaker
from certsvc.hsm import open_tokens
from certsvc.settings import Settings
from hsm_sim import UsbKeyBay
from init_cache import initialised
from signer.actor import Actor
from signer.documents import DocumentRef, DocumentSigner
from signer.gate import SigningGate
from signer.models import SigningKey
from signer.policy import CaseGates
from signer.sessions import SigningSession, SigningSessions
from signer.tokens import Pkcs11Tokens

WORKSTATION = "ws-custodian-01"


@dataclass
class Records:
    """The records behind documents, as `certify` supplies them: each document's content
    (by default one derived from its id; `missing` ids have no record) and its case gates
    (clear by default)."""

    contents: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    cases: dict[str, CaseGates] = field(default_factory=dict)
    default: CaseGates | None = field(default_factory=lambda: CaseGates(True))

    def content_for(self, db: Session, kind: str, document_id: str) -> Mapping[str, Any] | None:
        if document_id in self.missing:
            return None
        return self.contents.get(document_id, content_of(kind, document_id))

    def gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates | None:
        return self.cases.get(document_id, self.default)


def content_of(kind: str, document_id: str) -> dict[str, Any]:
    """What the test records say by default about a document: its kind and id."""
    return {"kind": kind, "number": document_id}


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class SigningEnv:
    settings: Settings
    sessions: sessionmaker[Session]
    tokens: Pkcs11Tokens
    signing: SigningSessions
    gate: SigningGate
    signer: DocumentSigner
    records: Records
    clock: Clock
    bay: UsbKeyBay
    custodian: Actor
    credentials: dict[str, Any]

    @property
    def usbkey(self) -> dict[str, str]:
        usbkey: dict[str, str] = self.credentials["tokens"]["USBKEY-01"]
        return usbkey

    def key_id(self, label: str) -> int:
        with self.sessions() as db:
            key_id = db.scalar(select(SigningKey.id).where(SigningKey.label == label))
        assert key_id is not None
        return key_id

    def open(
        self, key_label: str = "certificate-1", workstation: str = WORKSTATION
    ) -> SigningSession:
        return self.signing.open(
            self.usbkey["serial"],
            self.usbkey["user_pin"],
            self.custodian.username,
            workstation,
            key_label,
        )

    def account(self, username: str) -> Actor:
        with self.sessions() as db:
            account = db.scalar(select(StaffAccount).where(StaffAccount.username == username))
        assert account is not None
        return Actor(account.username, account.id, account.role.value, None)


def certificates(count: int, prefix: str = "C") -> list[DocumentRef]:
    return [DocumentRef("certificate", f"{prefix}{n:05d}") for n in range(count)]


@pytest.fixture
def env(settings: Settings) -> Iterator[SigningEnv]:
    initialised(settings)
    credentials = json.loads(settings.credentials_file.read_text())
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    tokens = open_tokens(settings, sessions)
    clock = Clock(datetime.now().timestamp())
    signing = SigningSessions(tokens, 3600, 600, clock=clock)
    gate = SigningGate(signing)
    records = Records()
    # Chunks of 16 whatever the machine's speed: the tests count what one chunk commits.
    signer = DocumentSigner(sessions, gate, records, chunk_size=16, chunk_seconds=600)
    with sessions() as db:
        account = db.scalar(select(StaffAccount).where(StaffAccount.username == "custodian"))
        assert account is not None
        custodian = Actor("custodian", account.id, "custodian", WORKSTATION)
    yield SigningEnv(
        settings,
        sessions,
        tokens,
        signing,
        gate,
        signer,
        records,
        clock,
        UsbKeyBay(settings.hsm_dir),
        custodian,
        credentials,
    )
    signing.close_all()
    tokens.reset()
    engine.dispose()


def sign_in_worker(
    key_label: str, count: int, chunk_size: int, reverse: bool, start: Any, results: Any
) -> None:
    """A separate process signing `count` certificates with the demo USBKey, as a second
    service worker would: its own module load, login, database engine. Waits on the `start`
    barrier after login; puts the document ids it signed on `results`. With `reverse` it works
    through the batch from the end, so that two workers meet in the middle."""
    settings = Settings()
    credentials = json.loads(settings.credentials_file.read_text())
    usbkey = credentials["tokens"]["USBKEY-01"]
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    tokens = open_tokens(settings, sessions)
    signing = SigningSessions(tokens, 3600, 600)
    signer = DocumentSigner(sessions, SigningGate(signing), Records(), chunk_size=chunk_size)
    try:
        with sessions() as db:
            account = db.scalar(select(StaffAccount).where(StaffAccount.username == "custodian"))
            key_id = db.scalar(select(SigningKey.id).where(SigningKey.label == key_label))
        assert account is not None and key_id is not None
        signing.open(usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, key_label)
        actor = Actor("custodian", account.id, "custodian", WORKSTATION)
        start.wait(timeout=60)
        documents = certificates(count)[:: -1 if reverse else 1]
        results.put(signer.sign_batch(actor, key_id, documents).signed)
    finally:
        signing.close_all()
        engine.dispose()
