"""Schemathesis against the public node's own OpenAPI document: whatever a client sends, no
server error, answers that keep to the document, and nothing private in them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from certsvc.models_registry import import_all_models
from certsvc.public_app import PUBLIC_TABLES, create_public_app
from certsvc.settings import Settings
from common.db import Base
from common.dbtypes import utcnow
from verify.models import SignedTrustList
from verify.trust import FORMAT

PRIVATE_SHAPES = re.compile(r"\d{17}[\dXx]|(?<!\d)1[3-9]\d{9}(?!\d)|[\w.+-]+@[\w-]+\.[\w.]+")


def public_schema(tmp_path: Path) -> Any:
    import_all_models()
    url = f"sqlite:///{tmp_path / 'public.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in PUBLIC_TABLES])
    with Session(engine) as db, db.begin():  # a node in service has published a trust list
        document = {"format": FORMAT, "version": 1, "bodies": [], "keys": []}
        db.add(
            SignedTrustList(
                version=1, document=json.dumps(document), signature=b"", signed_at=utcnow()
            )
        )
    engine.dispose()
    app = create_public_app(
        Settings(
            home=tmp_path / "home",
            database_url=url,
            verify_rate_per_minute=1_000_000,
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
