"""Every `/api/` route against every role: 401 without a token, 403 exactly for the roles the
table below does not allow. A new route without an entry here fails the suite, so nobody adds
an endpoint without deciding who may call it."""

from __future__ import annotations

import re

import fastapi.routing
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from certsvc.accounts import Role, StaffAccount
from certsvc.auth import require_roles
from certsvc.workstations import WORKSTATION_ROLES
from service_helpers import MakeStaff, StaffMember

ANY_ROLE = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
CUSTODIAN = frozenset({Role.CUSTODIAN})

# Public by design: the login itself and the public verification side.
UNAUTHENTICATED = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/password"),
    ("GET", "/api/v1/verify/{verification_id}"),
    ("POST", "/api/v1/verify/offline"),
    ("GET", "/api/v1/notices/{number}"),
}
SECURITY = frozenset({Role.SECURITY_OFFICER})
OFFICER = frozenset({Role.OFFICER})
REGISTRAR = frozenset({Role.REGISTRAR})
CLERKS = frozenset({Role.REGISTRAR, Role.OFFICER})
CASE_READERS = frozenset({Role.REGISTRAR, Role.OFFICER, Role.CUSTODIAN})
EXPECTED_ROLES: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/api/v1/staff/me"): ANY_ROLE,
    ("GET", "/api/v1/metrics"): ANY_ROLE,  # the counts /healthz shows; a scraper's account
    ("POST", "/api/v1/certify/announcements/check"): frozenset({Role.REGISTRAR, Role.OFFICER}),
    ("GET", "/api/v1/staff/me/tokens"): ANY_ROLE,
    ("DELETE", "/api/v1/staff/me/tokens/{token_id}"): ANY_ROLE,
    ("GET", "/api/v1/admin/accounts"): ADMIN,
    ("POST", "/api/v1/admin/accounts"): ADMIN,
    ("POST", "/api/v1/admin/accounts/{username}/disable"): ADMIN,
    ("GET", "/api/v1/security/accounts/pending"): frozenset({Role.SECURITY_OFFICER}),
    ("POST", "/api/v1/security/accounts/{username}/approve"): frozenset({Role.SECURITY_OFFICER}),
    ("POST", "/api/v1/admin/accounts/{username}/second-factor-reset"): ADMIN,
    ("POST", "/api/v1/security/accounts/{username}/second-factor-reset"): frozenset(
        {Role.SECURITY_OFFICER}
    ),
    ("GET", "/api/v1/admin/workstations"): ADMIN,
    ("POST", "/api/v1/admin/workstations"): ADMIN,
    ("POST", "/api/v1/admin/workstations/{name}/disable"): ADMIN,
    ("GET", "/api/v1/custodian/workstation"): CUSTODIAN,
    ("GET", "/api/v1/audit/events"): SECURITY,
    ("GET", "/api/v1/audit/events/{index}/proof"): SECURITY,
    ("GET", "/api/v1/audit/consistency"): SECURITY,
    ("GET", "/api/v1/audit/checkpoints"): SECURITY,
    ("POST", "/api/v1/audit/checkpoints"): SECURITY,
    ("GET", "/api/v1/audit/report/alerts"): SECURITY,
    ("GET", "/api/v1/audit/report/keys"): SECURITY,
    ("GET", "/api/v1/audit/export"): SECURITY,
    ("GET", "/api/v1/certificates/{number}/pdf"): CUSTODIAN,
    ("GET", "/api/v1/hsm/tokens"): frozenset({Role.ADMIN, Role.SECURITY_OFFICER, Role.CUSTODIAN}),
    ("GET", "/api/v1/signing/sessions"): CUSTODIAN,
    ("POST", "/api/v1/signing/sessions"): CUSTODIAN,
    ("DELETE", "/api/v1/signing/sessions/{token_serial}"): CUSTODIAN,
    ("POST", "/api/v1/hsm/tokens/{serial}/workstations"): ADMIN,
    ("DELETE", "/api/v1/hsm/tokens/{serial}/workstations/{name}"): ADMIN,
    ("POST", "/api/v1/hsm/keys/{key_id}/retire"): frozenset({Role.ADMIN, Role.SECURITY_OFFICER}),
    ("POST", "/api/v1/hsm/keys/{key_id}/revoke-certificate"): frozenset({Role.SECURITY_OFFICER}),
    ("GET", "/api/v1/custody/handovers"): frozenset(
        {Role.CUSTODIAN, Role.SECURITY_OFFICER, Role.ADMIN}
    ),
    ("POST", "/api/v1/custody/handovers"): CUSTODIAN,
    ("POST", "/api/v1/custody/handovers/{handover_id}/accept"): CUSTODIAN,
    ("POST", "/api/v1/custody/handovers/{handover_id}/cancel"): CUSTODIAN,
    ("GET", "/api/v1/custody/media"): ANY_ROLE,
    ("POST", "/api/v1/custody/media"): ADMIN,
    ("POST", "/api/v1/custody/media/{label}/handovers"): ANY_ROLE,
    ("POST", "/api/v1/custody/media/handovers/{handover_id}/accept"): ANY_ROLE,
    ("POST", "/api/v1/custody/media/handovers/{handover_id}/cancel"): ANY_ROLE,
    ("POST", "/api/v1/signing/approvals"): frozenset({Role.OFFICER}),
    ("POST", "/api/v1/signing/batches"): CUSTODIAN,
    ("GET", "/api/v1/signing/documents/{kind}/{document_id}"): frozenset(
        {Role.CUSTODIAN, Role.OFFICER, Role.SECURITY_OFFICER}
    ),
    ("POST", "/api/v1/vault/tokenise"): frozenset({Role.REGISTRAR}),
    ("POST", "/api/v1/vault/lookup"): frozenset({Role.REGISTRAR, Role.OFFICER}),
    ("POST", "/api/v1/vault/mask"): frozenset(
        {Role.REGISTRAR, Role.OFFICER, Role.SECURITY_OFFICER, Role.VAULT_REVEALER}
    ),
    ("POST", "/api/v1/vault/reveal"): frozenset({Role.VAULT_REVEALER}),
    # certify: the case over HTTP
    ("POST", "/api/v1/certify/batches"): OFFICER,
    ("GET", "/api/v1/certify/batches"): CASE_READERS,
    ("GET", "/api/v1/certify/batches/{batch_id}"): CASE_READERS,
    ("POST", "/api/v1/certify/batches/{batch_id}/slots"): OFFICER,
    ("POST", "/api/v1/certify/batches/{batch_id}/registration-extension"): OFFICER,
    ("POST", "/api/v1/certify/batches/{batch_id}/implementation-plan"): OFFICER,
    ("POST", "/api/v1/certify/batches/{batch_id}/trainings"): OFFICER,
    ("GET", "/api/v1/certify/batches/{batch_id}/slots"): CLERKS,
    ("POST", "/api/v1/certify/batches/{batch_id}/announcements"): OFFICER,
    ("GET", "/api/v1/certify/batches/{batch_id}/announcements"): CLERKS,
    ("POST", "/api/v1/certify/announcements"): OFFICER,
    ("POST", "/api/v1/certify/applications"): REGISTRAR,
    ("GET", "/api/v1/certify/applications/{application_id}"): CASE_READERS,
    ("GET", "/api/v1/certify/batches/{batch_id}/applications"): CASE_READERS,
    ("POST", "/api/v1/certify/applications/{application_id}/booking"): REGISTRAR,
    ("POST", "/api/v1/certify/applications/{application_id}/attendance"): REGISTRAR,
    (
        "POST",
        "/api/v1/certify/applications/{application_id}/checks/criminal_record/{attempt}/approval",
    ): OFFICER,
    ("POST", "/api/v1/certify/applications/{application_id}/checks"): CLERKS,
    ("GET", "/api/v1/certify/applications/{application_id}/checks"): CLERKS,
    ("POST", "/api/v1/certify/applications/{application_id}/decision"): OFFICER,
    ("POST", "/api/v1/certify/applications/{application_id}/deadline-override"): OFFICER,
    ("POST", "/api/v1/certify/applications/{application_id}/deadline-override/approval"): OFFICER,
    ("POST", "/api/v1/certify/decisions/{decision_id}/correction"): OFFICER,
    ("POST", "/api/v1/certify/decisions/{decision_id}/correction/approval"): OFFICER,
    ("GET", "/api/v1/certify/batches/{batch_id}/decisions"): CASE_READERS,
    ("POST", "/api/v1/certify/batches/{batch_id}/decisions/sign"): CUSTODIAN,
    ("POST", "/api/v1/certify/batches/{batch_id}/certificates"): CUSTODIAN,
    ("GET", "/api/v1/certify/batches/{batch_id}/certificates"): CASE_READERS,
    ("GET", "/api/v1/certify/certificates/{number}"): CASE_READERS,
    ("POST", "/api/v1/certify/certificates/{number}/revocations"): OFFICER,
    ("GET", "/api/v1/certify/revocations/{revocation_id}"): CASE_READERS,
    ("POST", "/api/v1/certify/revocations/{revocation_id}/approvals"): OFFICER,
    ("POST", "/api/v1/certify/revocations/sign"): CUSTODIAN,
    ("POST", "/api/v1/certify/revocations/list"): CUSTODIAN,
    ("POST", "/api/v1/certify/requests"): CLERKS,
    ("POST", "/api/v1/certify/requests/{request_id}/answer"): OFFICER,
    ("GET", "/api/v1/certify/reports/requests"): frozenset({Role.OFFICER, Role.SECURITY_OFFICER}),
    ("GET", "/api/v1/certify/reports/objections"): frozenset({Role.OFFICER, Role.SECURITY_OFFICER}),
    ("POST", "/api/v1/certify/revocations/{revocation_id}/return"): CLERKS,
    ("PUT", "/api/v1/certify/certificates/{number}/delivery"): REGISTRAR,
    ("GET", "/api/v1/certify/certificates/{number}/delivery"): CLERKS,
    ("GET", "/api/v1/certify/reports/stages"): frozenset({Role.OFFICER, Role.SECURITY_OFFICER}),
    ("GET", "/api/v1/certify/reports/overrides"): frozenset({Role.OFFICER, Role.SECURITY_OFFICER}),
    ("GET", "/api/v1/certify/reports/overdue"): frozenset({Role.OFFICER, Role.SECURITY_OFFICER}),
}


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves under /api/, included routers flattened
    (FastAPI ≥ 0.16x keeps them nested and offers `iter_route_contexts` to walk them)."""
    iter_routes = getattr(fastapi.routing, "iter_route_contexts", iter)
    routes = [(getattr(r, "path", ""), getattr(r, "methods", ())) for r in iter_routes(app.routes)]
    return {
        (method, path)
        for path, methods in routes
        if (path or "").startswith("/api/")
        for method in methods or ()
    }


def test_every_api_route_has_an_entry(app: FastAPI) -> None:
    assert api_routes(app) - UNAUTHENTICATED == set(EXPECTED_ROLES)


def call(client: TestClient, method: str, template: str, staff: StaffMember | None) -> int:
    """One request with placeholder path parameters and an empty JSON object as body; a
    custodian's or a revealer's request is signed by their workstation, so only the role
    decides."""
    path = re.sub(r"\{[^}]+\}", "unknown0000000000", template)
    body = b"{}" if method in {"POST", "PUT", "PATCH"} else b""
    headers = {"Content-Type": "application/json"} if body else {}
    if staff is not None:
        headers |= staff.signed(method, path, body) if staff.workstation else staff.auth
    return int(client.request(method, path, content=body, headers=headers).status_code)


def test_role_matrix(client: TestClient, make_staff: MakeStaff) -> None:
    staff = {role: make_staff(role, workstation=role in WORKSTATION_ROLES) for role in Role}
    wrong: list[str] = []
    for (method, path), allowed in sorted(EXPECTED_ROLES.items()):
        anonymous = call(client, method, path, None)
        if anonymous != 401:
            wrong.append(f"{method} {path} without token: {anonymous}, expected 401")
        for role, member in staff.items():
            status = call(client, method, path, member)
            if role in allowed and status in (401, 403):
                wrong.append(f"{method} {path} as {role.value}: {status}, expected access")
            if role not in allowed and status != 403:
                wrong.append(f"{method} {path} as {role.value}: {status}, expected 403")
    assert wrong == []


def test_forbidden_names_the_required_role(client: TestClient, make_staff: MakeStaff) -> None:
    officer = make_staff(Role.OFFICER)
    response = client.get("/api/v1/admin/accounts", headers=officer.auth)
    assert response.status_code == 403
    assert response.json() == {"detail": "this action needs the role: admin"}


def test_forbidden_names_every_allowed_role() -> None:
    dependency = require_roles(Role.OFFICER, Role.REGISTRAR)
    with pytest.raises(HTTPException) as caught:
        dependency(StaffAccount(username="x.y", role=Role.ADMIN))
    assert caught.value.status_code == 403
    assert caught.value.detail == "this action needs one of the roles: officer, registrar"
