"""Schemathesis against the full service's OpenAPI document, as each staff role: whatever a
signed-in client sends to any route, no server error (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from certsvc.service.app import create_app
from certsvc.service.bootstrap import initialise
from certsvc.service.settings import Settings

ROLES = ("admin", "registrar", "officer", "security_officer", "vault_revealer")


def fuzz(operation: Any, token: str, failures: list[str]) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        response = case.call()
        if response.status_code >= 500:
            failures.append(f"{operation.method.upper()} {operation.path}: {response.status_code}")

    check()


@pytest.mark.timeout(600)
def test_no_staff_route_answers_a_server_error(settings: Settings) -> None:
    initialise(settings)
    accounts = json.loads(settings.credentials_file.read_text())["accounts"]
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50
    failures: list[str] = []
    for role in ROLES:
        for operation in operations:
            fuzz(operation, accounts[role]["api_token"], failures)
    app.state.engine.dispose()
    assert sorted(set(failures)) == []
