"""A public verification node runs on a database holding only the public register."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from certsvc.public_app import create_public_app
from certsvc.settings import Settings
from server_support import serving
from verify_support import Demo, public_copy


def test_public_app_needs_only_the_register(demo: Demo, tmp_path: Path) -> None:
    issued = demo.certificate("20204100000000010")
    url = public_copy(demo, tmp_path / "public.db")
    settings = Settings(home=tmp_path / "public-home", database_url=url, trust_anchors=demo.anchors)
    app = create_public_app(settings)
    with TestClient(app) as client:
        assert client.get(f"/api/v1/verify/{issued.verification_id}").json()["status"] == "valid"
        offline = client.post("/api/v1/verify/offline", content=issued.text.encode()).json()
        assert offline["signature_valid"] is True
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/.well-known/certsvc/trust-list.json").status_code == 200
        assert client.get("/api/v1/staff/me").status_code == 404
        assert client.post("/api/v1/auth/token", json={}).status_code == 404
        assert "/api/v1/audit/events" not in client.get("/openapi.json").text
    app.state.engine.dispose()
    assert not (tmp_path / "public-home" / "hsm").exists()  # no token module touched


def test_serve_public_answers_from_a_register_only_database(demo: Demo, tmp_path: Path) -> None:
    issued = demo.certificate("20204100000000011")
    url = public_copy(demo, tmp_path / "public.db")
    env = {
        **os.environ,
        "CERTSVC_DATABASE_URL": url,
        "CERTSVC_HOME": str(tmp_path / "h"),
        "CERTSVC_TRUST_ANCHORS": demo.anchors,
    }
    with serving("--public", env=env) as server:
        answer = httpx.get(f"{server.base}/api/v1/verify/{issued.verification_id}", timeout=5)
        assert answer.json()["status"] == "valid"
    assert issued.verification_id not in server.output  # no ids in the server's log
