"""Verify tests' support: a provisioned body with certificates issued into the public register,
their QR payloads signed on the demo USBKey through the signing gate in the custodian's session
— the way `certify` issues them — and a register-only copy."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from certify.issuance import publish_revocation
from certsvc.accounts import StaffAccount
from certsvc.app import create_app
from certsvc.public_app import PUBLIC_TABLES
from certsvc.settings import Settings
from common.cose import kid_of
from common.db import Base
from init_cache import initialised
from signer.actor import Actor
from signer.custody import active_key, certificate_of
from signer.gate import (
    GateTransaction,
    SigningGate,
    SignRequest,
    Subject,
    signing_transaction,
)
from signer.models import KeyPurpose
from signer.policy import SignPurpose
from signer.sessions import SigningSessions
from verify.payload import Claims, new_verification_id, qr_text, sign_claims
from verify.register import PublicFields, publish_certificate
from verify.trust import Revoked

WORKSTATION = "ws-custodian-01"

# What the holder's private record says; none of it may ever appear on the public side.
PRIVATE = {
    "name": "欧阳明华",
    "id_number": "41130219900307123X",
    "phone": "13812345678",
    "email": "ouyang.minghua@example.com",
    "address": "河南省南阳市宛城区新华东路88号",
}


@dataclass
class Issued:
    verification_id: str
    number: str
    text: str


# (the issuing transaction, certificate number, bytes to sign) -> r‖s
SignRaw = Callable[[GateTransaction, str, bytes], bytes]


@dataclass
class Demo:
    settings: Settings
    sessions: sessionmaker[Session]
    client: TestClient
    issue: Callable[[str, str, int | None, SignRaw], Issued]
    through_gate: SignRaw
    with_the_token: SignRaw
    revoke: Callable[[str, date, str], int]

    @property
    def anchors(self) -> str:
        """The pinned root fingerprints, as CERTSVC_TRUST_ANCHORS for a node of its own."""
        return ",".join(sorted(self.settings.pinned_anchors()))

    def certificate(self, number: str, masked: str = "欧阳**", when: int | None = None) -> Issued:
        """A certificate issued as `certify` issues it: its QR payload signed through the
        gate, by the custodian in their session on the certificate key."""
        return self.issue(number, masked, when, self.through_gate)

    def forged(self, number: str, masked: str = "欧阳**", when: int | None = None) -> Issued:
        """A payload made by whoever holds the USBKey and its PIN, outside the service: the
        token signs whatever it is given (the service's gate is not on their desk)."""
        return self.issue(number, masked, when, self.with_the_token)


@pytest.fixture
def demo(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[Demo]:
    initialised(settings)
    secrets = json.loads(settings.credentials_file.read_text())
    usbkey = secrets["tokens"]["USBKEY-01"]
    app = create_app(settings)
    with sessions() as db:
        key = active_key(db, settings.body_code, KeyPurpose.CERTIFICATE)
        assert key is not None
        certificate = certificate_of(key)
        account = db.scalars(select(StaffAccount).where(StaffAccount.username == "custodian")).one()
    custodian = Actor("custodian", account.id, "custodian", WORKSTATION)
    signing = SigningSessions(app.state.tokens, 3600, 600)
    gate = SigningGate(signing)
    session = signing.open(
        usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, key.label
    )

    def issue(number: str, masked: str, when: int | None, sign_raw: SignRaw) -> Issued:
        verification_id = new_verification_id()
        claims = Claims(
            body=settings.body_code,
            number=number,
            qualification="SS",
            subject="02",
            masked_name=masked,
            issue_date=date(2020, 12, 31),
            issued_at=when if when is not None else int(time.time()),
        )
        fields = PublicFields(
            verification_id, number, "SS", "02", settings.body_code, date(2020, 12, 31), masked
        )
        with signing_transaction(sessions) as unit:
            cose = sign_claims(
                claims,
                verification_id,
                kid_of(certificate),
                lambda tbs: sign_raw(unit, number, tbs),
            )
            publish_certificate(unit.db, fields, cose)
        return Issued(
            verification_id, number, qr_text(settings.public_base_url, verification_id, cose)
        )

    def through_gate(unit: GateTransaction, number: str, tbs: bytes) -> bytes:
        request = SignRequest(SignPurpose.CERTIFICATE_QR, Subject(f"certificate-qr:{number}"), tbs)
        return gate.sign(unit, custodian, key.id, request).raw

    def with_the_token(_unit: GateTransaction, _number: str, tbs: bytes) -> bytes:
        return session.token.sign_digest(key.label, hashlib.sha256(tbs).digest())

    def revoke(verification_id: str, on: date, category: str) -> int:
        """Revoked as `certify` revokes: the register entry and the next signed revocation
        list, by the custodian with the revocation key; the list's version."""
        nonlocal session
        with sessions() as db:
            revocation_key = active_key(db, settings.body_code, KeyPurpose.REVOCATION)
        assert revocation_key is not None
        signing.close(usbkey["serial"], "custodian")
        signing.open(
            usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, revocation_key.label
        )
        try:
            with signing_transaction(sessions) as unit:
                return publish_revocation(
                    unit,
                    gate,
                    custodian,
                    revocation_key,
                    settings.pinned_anchors(),
                    verification_id,
                    Revoked(on, category),
                )
        finally:
            signing.close(usbkey["serial"], "custodian")
            session = signing.open(
                usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, key.label
            )

    with TestClient(app) as client:
        yield Demo(settings, sessions, client, issue, through_gate, with_the_token, revoke)
    signing.close_all()
    app.state.engine.dispose()


def public_copy(demo: Demo, target: Path) -> str:
    """Replicate the public register, and nothing else, into a database of its own."""
    url = f"sqlite:///{target}"
    engine = create_engine(url)
    tables = [Base.metadata.tables[name] for name in PUBLIC_TABLES]
    Base.metadata.create_all(engine, tables=tables)
    with demo.sessions() as source, engine.begin() as out:
        for table in tables:
            rows = [dict(row._mapping) for row in source.execute(select(table))]
            if rows:
                out.execute(table.insert(), rows)
    assert set(inspect(engine).get_table_names()) == set(PUBLIC_TABLES)
    engine.dispose()
    return url
