"""The staff API over HTTP: logging in, bearer tokens, admin provisioning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certsvc.accounts import Role
from certsvc.app import create_app
from certsvc.db import DatabaseNotInitialisedError
from certsvc.settings import Settings
from service_helpers import MakeStaff

ME = "/api/v1/staff/me"


def login(client: TestClient, username: str, password: str) -> tuple[int, dict[str, object]]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    return response.status_code, response.json()


def test_login_gives_a_working_token(client: TestClient, make_staff: MakeStaff) -> None:
    staff = make_staff(Role.REGISTRAR)
    status, body = login(client, staff.username, staff.password)
    assert status == 201
    assert body["token_type"] == "bearer"
    me = client.get(ME, headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == staff.username
    assert me.json()["role"] == "registrar"
    assert "password_hash" not in me.json()


def test_wrong_credentials_get_one_generic_answer(
    client: TestClient, make_staff: MakeStaff
) -> None:
    staff = make_staff(Role.OFFICER)
    disabled = make_staff(Role.OFFICER)
    client.post(
        f"/api/v1/admin/accounts/{disabled.username}/disable",
        headers=make_staff(Role.ADMIN).auth,
    )
    answers = [
        login(client, staff.username, staff.password + "x"),
        login(client, "nobody", staff.password),
        login(client, disabled.username, disabled.password),
    ]
    assert answers == [(401, {"detail": "wrong username or password"})] * 3


def test_validation_error_never_echoes_the_password(client: TestClient) -> None:
    password = "P" * 1100
    response = client.post("/api/v1/auth/token", json={"username": "x" * 70, "password": password})
    assert response.status_code == 422
    assert password not in response.text and "x" * 70 not in response.text
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {
        ("body", "username"),
        ("body", "password"),
    }


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing bearer token in the Authorization header"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "missing bearer token"),
        ({"Authorization": "Bearer cst_0123456789abcdef_nope"}, "invalid, expired or revoked"),
        ({"Authorization": "Bearer "}, "missing bearer token in the Authorization header"),
    ],
)
def test_missing_or_bad_token_is_401(
    client: TestClient, headers: dict[str, str], detail: str
) -> None:
    response = client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(detail)
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("query", ["access_token={token}", "token={token}", "x={token}", "Token=1"])
def test_token_in_query_string_is_refused(
    client: TestClient, make_staff: MakeStaff, query: str
) -> None:
    staff = make_staff(Role.OFFICER)
    for headers in ({}, staff.auth):
        response = client.get(f"{ME}?{query.format(token=staff.token)}", headers=headers)
        assert response.status_code == 400
        assert "only in the Authorization header" in response.json()["detail"]
        assert staff.token not in response.text


def test_a_token_seen_in_a_url_is_revoked_and_its_holder_told_once(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    staff = make_staff(Role.OFFICER)
    bystander = make_staff(Role.OFFICER)
    leaked = client.get(f"{ME}?x=see%20{staff.token}", headers=bystander.auth)
    assert leaked.status_code == 400 and "revoked" in leaked.json()["detail"]
    assert client.get(ME, headers=staff.auth).status_code == 401
    assert client.get(ME, headers=bystander.auth).status_code == 200
    with sessions() as db:
        events = [
            decode_leaf(bytes(leaf))
            for leaf in db.scalars(select(AuditEventRow.leaf).order_by(AuditEventRow.idx))
        ]
    exposed = [e for e in events if e["action"] == "service.token_exposed"]
    assert [(e["actor"], e["object"], e["outcome"]) for e in exposed] == [
        (staff.username, staff.token_id, "ok")
    ]
    status, first = login(client, staff.username, staff.password)
    assert status == 201
    assert first["notices"] == [first["notices"][0]] and staff.token_id in first["notices"][0]
    assert staff.token not in str(first["notices"])
    assert login(client, staff.username, staff.password)[1]["notices"] == []


def test_list_and_revoke_own_tokens(client: TestClient, make_staff: MakeStaff) -> None:
    staff = make_staff(Role.CUSTODIAN)
    other = make_staff(Role.CUSTODIAN)
    _, second = login(client, staff.username, staff.password)
    tokens = client.get(f"{ME}/tokens", headers=staff.auth).json()
    assert [t["token_id"] for t in tokens] == [staff.token_id, second["token_id"]]
    assert all(
        set(t) == {"token_id", "created_at", "expires_at", "revoked_at", "last_used_at"}
        for t in tokens
    )
    assert client.delete(f"{ME}/tokens/{other.token_id}", headers=staff.auth).status_code == 404
    assert client.get(ME, headers=other.auth).status_code == 200
    assert client.delete(f"{ME}/tokens/{second['token_id']}", headers=staff.auth).status_code == 204
    assert client.get(ME, headers={"Authorization": f"Bearer {second['token']}"}).status_code == 401
    assert client.get(ME, headers=staff.auth).status_code == 200


def set_password(client: TestClient, username: str, current: str, new: str) -> int:
    body = {"username": username, "password": current, "new_password": new}
    return client.post("/api/v1/auth/password", json=body).status_code


def test_admin_creates_accounts(client: TestClient, make_staff: MakeStaff) -> None:
    """An admin proposes; the initial password only sets the holder's own; an officer's
    account counts once a security officer approves it, a registrar's at once."""
    admin = make_staff(Role.ADMIN)
    security = make_staff(Role.SECURITY_OFFICER)
    created = client.post(
        "/api/v1/admin/accounts",
        headers=admin.auth,
        json={"username": "new.officer", "display_name": "新 官员", "role": "officer"},
    )
    assert created.status_code == 201 and created.json()["awaiting_approval"]
    initial = created.json()["initial_password"]
    assert created.json()["account"]["role"] == "officer"
    assert login(client, "new.officer", initial)[0] == 403
    assert set_password(client, "new.officer", initial, "the officer's own password") == 204
    assert login(client, "new.officer", initial)[0] == 401
    assert login(client, "new.officer", "the officer's own password")[0] == 403
    approve = "/api/v1/security/accounts/new.officer/approve"
    assert client.post(approve, headers=admin.auth).status_code == 403
    assert client.post(approve, headers=security.auth).status_code == 200
    assert login(client, "new.officer", "the officer's own password")[0] == 201

    chosen = client.post(
        "/api/v1/admin/accounts",
        headers=admin.auth,
        json={
            "username": "new.registrar",
            "display_name": "R",
            "role": "registrar",
            "password": "a long enough password",
        },
    )
    assert chosen.status_code == 201 and chosen.json()["initial_password"] is None
    assert not chosen.json()["awaiting_approval"]
    assert login(client, "new.registrar", "a long enough password")[0] == 403
    assert (
        set_password(client, "new.registrar", "a long enough password", "mine, not admin's") == 204
    )
    assert login(client, "new.registrar", "mine, not admin's")[0] == 201

    names = [a["username"] for a in client.get("/api/v1/admin/accounts", headers=admin.auth).json()]
    assert {"new.officer", "new.registrar", admin.username} <= set(names)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"username": "A B", "display_name": "x", "role": "officer"}, 422, "username: 3–32"),
        (
            {"username": "abc", "display_name": "x", "role": "officer", "password": "tiny-secret"},
            422,
            "password: at least 12 characters",
        ),
        ({"username": "admin1", "display_name": "x", "role": "officer"}, 409, "username: 'admin1'"),
    ],
)
def test_admin_account_errors(
    client: TestClient, make_staff: MakeStaff, body: dict[str, str], status: int, detail: str
) -> None:
    admin = make_staff(Role.ADMIN, username="admin1")
    response = client.post("/api/v1/admin/accounts", headers=admin.auth, json=body)
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)
    assert "tiny-secret" not in response.text


def test_admin_disables_accounts_but_not_their_own(
    client: TestClient, make_staff: MakeStaff
) -> None:
    admin = make_staff(Role.ADMIN)
    officer = make_staff(Role.OFFICER)
    own = client.post(f"/api/v1/admin/accounts/{admin.username}/disable", headers=admin.auth)
    assert own.status_code == 409
    response = client.post(f"/api/v1/admin/accounts/{officer.username}/disable", headers=admin.auth)
    assert response.status_code == 200 and response.json()["active"] is False
    assert client.get(ME, headers=officer.auth).status_code == 401
    missing = client.post("/api/v1/admin/accounts/nobody/disable", headers=admin.auth)
    assert missing.status_code == 404


def test_admin_registers_and_disables_workstations(
    client: TestClient, make_staff: MakeStaff
) -> None:
    admin = make_staff(Role.ADMIN)
    custodian = make_staff(Role.CUSTODIAN)
    officer = make_staff(Role.OFFICER)
    key = Ed25519PrivateKey.generate()
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    url = "/api/v1/admin/workstations"

    refused = client.post(
        url,
        headers=admin.auth,
        json={"name": "ws-1", "custodian": officer.username, "public_key_pem": pem},
    )
    assert refused.status_code == 422
    assert "must have the custodian or vault_revealer role" in refused.json()["detail"]

    created = client.post(
        url,
        headers=admin.auth,
        json={"name": "ws-1", "custodian": custodian.username, "public_key_pem": pem},
    )
    assert created.status_code == 201
    assert created.json()["custodian"] == custodian.username
    assert client.get(url, headers=admin.auth).json() == [created.json()]

    probe = "/api/v1/custodian/workstation"
    signed = dataclasses.replace(custodian, workstation="ws-1", workstation_key=key)
    assert client.get(probe, headers=signed.signed("GET", probe)).status_code == 200
    disabled = client.post(f"{url}/ws-1/disable", headers=admin.auth)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    assert client.get(probe, headers=signed.signed("GET", probe)).status_code == 401


def test_openapi_documents_the_models(client: TestClient, make_staff: MakeStaff) -> None:
    document = client.get("/openapi.json", headers=make_staff(Role.REGISTRAR).auth).json()
    schemas = document["components"]["schemas"]
    for name in (
        "TokenRequest",
        "TokenResponse",
        "StaffOut",
        "ApiTokenOut",
        "AccountCreate",
        "WorkstationCreate",
        "WorkstationOut",
        "WorkstationProbe",
    ):
        assert name in schemas
    assert schemas["TokenRequest"]["properties"]["password"]["format"] == "password"
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_app_refuses_a_database_without_schema(empty_db_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=empty_db_url)
    with pytest.raises(DatabaseNotInitialisedError, match="run `certsvc init`"):
        create_app(settings)
    assert not any(tmp_path.rglob("*.db"))  # no empty database file left behind


def test_the_staff_routes_map_is_for_staff_only(client: TestClient, make_staff: MakeStaff) -> None:
    anonymous = client.get("/openapi.json")
    assert anonymous.status_code == 200
    paths = set(anonymous.json()["paths"])
    assert "/api/v1/verify/{verification_id}" in paths and "/healthz" in paths
    assert not any(
        path.startswith(("/api/v1/staff", "/api/v1/vault", "/api/v1/audit/events"))
        for path in paths
    )
    staff = client.get("/openapi.json", headers=make_staff(Role.REGISTRAR).auth).json()
    assert "/api/v1/vault/tokenise" in staff["paths"] and paths < set(staff["paths"])
    forged = {"Authorization": "Bearer cst_0123456789abcdef_forged"}
    assert client.get("/openapi.json", headers=forged).status_code == 401
