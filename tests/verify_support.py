"""Verify tests' support: a provisioned body with certificates issued into the public register,
signed on the demo USBKey — the way `certify` issues them — and a register-only copy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.app import create_app
from certsvc.bootstrap import initialise
from certsvc.public_app import PUBLIC_TABLES
from certsvc.settings import Settings
from common.cose import kid_of
from common.db import Base
from signer.custody import active_key, certificate_of
from signer.ecdsa import sign_p256
from signer.models import KeyPurpose
from verify.payload import Claims, new_verification_id, qr_text, sign_claims
from verify.register import PublicFields, publish_certificate

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


@dataclass
class Demo:
    settings: Settings
    sessions: sessionmaker[Session]
    client: TestClient
    issue: object

    def certificate(self, number: str, masked: str = "欧阳**", when: int | None = None) -> Issued:
        return self.issue(number, masked, when)  # type: ignore[operator,no-any-return]


@pytest.fixture
def demo(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[Demo]:
    initialise(settings)
    secrets = json.loads(settings.credentials_file.read_text())
    usbkey = secrets["tokens"]["USBKEY-01"]
    app = create_app(settings)
    tokens = app.state.tokens
    with sessions() as db:
        key = active_key(db, settings.body_code, KeyPurpose.CERTIFICATE)
        assert key is not None
        certificate = certificate_of(key)
    session = tokens.login(usbkey["serial"], usbkey["user_pin"])

    def issue(number: str, masked: str, when: int | None) -> Issued:
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
        cose = sign_claims(
            claims,
            verification_id,
            kid_of(certificate),
            lambda tbs: sign_p256(session, key.label, tbs, certificate.public_key()).raw,  # type: ignore[arg-type]
        )
        fields = PublicFields(
            verification_id, number, "SS", "02", settings.body_code, date(2020, 12, 31), masked
        )
        with sessions.begin() as db:
            publish_certificate(db, fields, cose)
        return Issued(
            verification_id, number, qr_text(settings.public_base_url, verification_id, cose)
        )

    with TestClient(app) as client:
        yield Demo(settings, sessions, client, issue)
    session.close()
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
