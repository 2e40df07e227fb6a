"""Schemathesis against the public node's own OpenAPI document: whatever a client sends, no
server error, answers that keep to the document, and nothing private in them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from certsvc.models_registry import import_all_models
from certsvc.public_app import PUBLIC_TABLES, create_public_app
from certsvc.settings import Settings
from common.db import Base
from common.dbtypes import utcnow
from verify.anchors import fingerprint
from verify.models import SignedTrustList
from verify.trust import FORMAT, canonical

PRIVATE_SHAPES = re.compile(r"\d{17}[\dXx]|(?<!\d)1[3-9]\d{9}(?!\d)|[\w.+-]+@[\w-]+\.[\w.]+")


def public_schema(tmp_path: Path) -> Any:
    import_all_models()
    url = f"sqlite:///{tmp_path / 'public.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in PUBLIC_TABLES])
    root_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz root")])
    now = datetime.now(UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(root_key, hashes.SHA256())
    )
    pem = root.public_bytes(serialization.Encoding.PEM).decode()
    document = {
        "format": FORMAT,
        "version": 1,
        "bodies": [{"code": "410000", "name": "fuzz", "root_certificate": pem}],
        "keys": [],
    }
    with Session(engine) as db, db.begin():  # a node in service has published a trust list
        db.add(
            SignedTrustList(
                version=1,
                document=canonical(document).decode(),
                signature=root_key.sign(canonical(document), ec.ECDSA(hashes.SHA256())),
                signed_at=utcnow(),
            )
        )
    engine.dispose()
    app = create_public_app(
        Settings(
            home=tmp_path / "home",
            database_url=url,
            verify_rate_per_minute=1_000_000,
            trust_anchors=fingerprint(root.public_bytes(serialization.Encoding.DER)),
        )
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def fuzz(operation: Any) -> None:
    """Many generated requests to one operation: no 5xx, documented answers, nothing private."""

    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        response = case.call()
        assert response.status_code < 500, (operation.path, response.status_code)
        assert not PRIVATE_SHAPES.search(response.text)
        case.validate_response(response)

    check()


def test_public_api_keeps_its_contract(tmp_path: Path) -> None:
    schema = public_schema(tmp_path)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/verify/{verification_id}", "/healthz"}
    for operation in operations:
        fuzz(operation)
