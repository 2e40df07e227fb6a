"""Every answer carries the security headers; oversized and deeply nested bodies are refused
before the application parses them; no route is open to other origins."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from certsvc.accounts import Role
from certsvc.app import create_app
from certsvc.hardening import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_depth
from certsvc.settings import Settings
from service_helpers import MakeStaff


@pytest.mark.parametrize(
    "path", ["/healthz", "/api/v1/staff/me", "/api/v1/verify/AAAAAAAAAAAAAAAAAAAAAAAAAA", "/v/x"]
)
def test_security_headers_everywhere(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "strict-transport-security" not in answer.headers  # plain HTTP here


def test_staff_answers_are_not_cached_and_hsts_over_tls(
    client: TestClient, make_staff: MakeStaff
) -> None:
    member = make_staff(Role.OFFICER)
    answer = client.get("/api/v1/staff/me", headers=member.auth)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    secure = TestClient(client.app, base_url="https://certsvc.test")
    assert "max-age=" in secure.get("/healthz").headers["strict-transport-security"]


def test_no_cross_origin_access(client: TestClient) -> None:
    preflight = client.options(
        "/api/v1/auth/token",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_oversized_body_is_refused_early(client: TestClient) -> None:
    big = b"x" * (MAX_BODY_BYTES + 1)
    answer = client.post("/api/v1/auth/token", content=big)
    assert answer.status_code == 413
    chunked = client.post("/api/v1/auth/token", content=iter([big[: 1 << 19], big[1 << 19 :]]))
    assert chunked.status_code == 413


def test_deeply_nested_json_is_refused(client: TestClient) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    answer = client.post(
        "/api/v1/auth/token", content=deep, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422 and "nested" in answer.json()["detail"]
    assert json_depth(b'{"a": "[[[[", "b": [1, {"c": [2]}]}') == 4
    assert json_depth(b"[" * (MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1


def test_login_attempts_are_limited_and_audited(client: TestClient, make_staff: MakeStaff) -> None:
    from sqlalchemy import select

    from audit.events import decode_leaf
    from audit.models import AuditEventRow

    member = make_staff(Role.REGISTRAR)
    limit = client.app.state.settings.login_attempts_per_minute  # type: ignore[attr-defined]
    attempt = {"username": member.username, "password": "not the password"}
    codes = [client.post("/api/v1/auth/token", json=attempt).status_code for _ in range(limit)]
    assert codes == [401] * limit
    blocked = client.post(
        "/api/v1/auth/token", json={"username": member.username, "password": member.password}
    )
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        reasons = [
            decode_leaf(leaf)["reason"]
            for leaf in db.scalars(
                select(AuditEventRow.leaf).where(AuditEventRow.action == "service.login")
            )
        ]
    assert reasons.count("wrong username or password") == limit
    assert reasons[-1] == "too many login attempts"


def test_logins_are_refused_while_the_shared_limiter_is_down(
    settings: Settings, make_staff: MakeStaff
) -> None:
    """Redis configured but unreachable: the login limiter fails closed (503 + Retry-After),
    while public verification stays available."""
    member = make_staff(Role.REGISTRAR)
    app = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        with TestClient(app) as down:
            answer = down.post(
                "/api/v1/auth/token",
                json={"username": member.username, "password": member.password},
            )
            assert answer.status_code == 503 and "rate limiter" in answer.json()["detail"]
            assert int(answer.headers["retry-after"]) >= 1
            assert "token" not in answer.json()
            assert down.get("/api/v1/verify/" + "A" * 26).status_code == 404
    finally:
        app.state.engine.dispose()
