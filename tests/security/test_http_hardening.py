"""Every answer carries the security headers; oversized and deeply nested bodies are refused
before the application parses them; no route is open to other origins."""

from __future__ import annotations

import os
from collections import Counter

import httpx
import pytest
from fastapi.testclient import TestClient

from certsvc.accounts import Role
from certsvc.app import create_app
from certsvc.hardening import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_depth
from certsvc.public_app import create_public_app
from certsvc.settings import Settings
from init_cache import initialised
from server_support import Server, serving
from service_helpers import MakeStaff
from verify.payload import new_verification_id


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
    state = client.app.state  # type: ignore[attr-defined]
    # Attempts refused by the limit are counted, and written per client and minute.
    assert state.refused_logins.flush(state.writer_sessions, everything=True) == 1
    with state.sessionmaker() as db:
        leaves = [
            decode_leaf(leaf)
            for leaf in db.scalars(
                select(AuditEventRow.leaf).where(AuditEventRow.action == "service.login")
            )
        ]
    reasons = [leaf["reason"] for leaf in leaves]
    assert reasons.count("wrong username or password") == limit
    assert reasons[-1] == "too many login attempts"
    assert leaves[-1]["details"]["attempts"] == 1  # type: ignore[index]


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


def _spoofing(server: Server, count: int) -> Counter[int]:
    """Requests that each claim another client in X-Forwarded-For."""
    answers: Counter[int] = Counter()
    with httpx.Client(timeout=10) as http:
        for n in range(count):
            forwarded = {"X-Forwarded-For": f"198.51.100.{n % 250}"}
            path = f"/api/v1/verify/{new_verification_id()}"
            answers[http.get(f"{server.base}{path}", headers=forwarded).status_code] += 1
            login = {"username": "nobody", "password": "not a password at all"}
            answers[
                http.post(
                    f"{server.base}/api/v1/auth/token", json=login, headers=forwarded
                ).status_code
            ] += 1
    return answers


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_forwarded_headers_are_believed_only_from_configured_proxies(settings: Settings) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default: a client could pick the
    address its limits count. Without CERTSVC_TRUSTED_PROXIES nobody is believed."""
    initialised(settings)
    limits = {"CERTSVC_VERIFY_RATE_PER_MINUTE": "5", "CERTSVC_LOGIN_ATTEMPTS_PER_MINUTE": "5"}
    with serving(env={**os.environ, **limits}) as server:
        spoofed = _spoofing(server, 30)
    assert spoofed[429] >= 2 * (30 - 5)  # both limits met, whatever the header said
    trusted = {**os.environ, **limits, "CERTSVC_TRUSTED_PROXIES": "127.0.0.1"}
    with serving(env=trusted) as server:
        behind_proxy = _spoofing(server, 30)
    assert behind_proxy[429] == 0  # behind a trusted proxy each forwarded client counts alone
    assert behind_proxy[404] == 30 and behind_proxy[401] == 30


@pytest.mark.parametrize("public", [False, True])
def test_no_redirect_takes_its_host_from_the_request(settings: Settings, public: bool) -> None:
    initialised(settings)
    app = create_public_app(settings) if public else create_app(settings)
    try:
        with TestClient(app) as client:
            for path in (f"/v/{new_verification_id()}/", "/healthz/", "/api/v1/verify/x/"):
                answer = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
                assert not answer.is_redirect, (path, answer.headers.get("location"))
                assert "evil.example" not in answer.text
    finally:
        app.state.engine.dispose()
