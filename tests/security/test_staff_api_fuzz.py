"""Schemathesis against the full service's OpenAPI document, as each staff role: whatever a
signed-in client sends to any route, no server error, and every answer keeps to the document —
its status code is declared for the operation, its content type and required headers too, and
its body matches the declared schema (on SQLite and PostgreSQL).

The database holds a demo certification round (`certsvc demo`), so that known ids reach the
answers a real client gets (200 with a body), not only the refusals random ids meet. The
custodian's requests carry their workstation's signature, computed over the request exactly as
schemathesis sends it. Failures are collected per operation rather than stopping at the first,
so one run shows every place where the document and the service disagree."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from certify.models import Application, Batch, Certificate, Revocation
from certsvc.app import create_app
from certsvc.bootstrap import DEMO_WORKSTATIONS
from certsvc.cli_demo import demo
from certsvc.db import make_engine
from certsvc.settings import Settings
from init_cache import initialised
from service_helpers import StaffMember, demo_member
from signer.models import KeyPurpose, KeyStatus, SignedDocumentRow, SigningKey
from verify.models import PublicCertificate

# The demo accounts, named after their roles; the custodian signs from the demo workstation.
ROLES = ("admin", "registrar", "officer", "security_officer", "vault_revealer", "custodian")
EXAMPLES = 5
BASE_URL = "http://testserver"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Values for required query parameters of the reads made with known ids.
KNOWN_QUERY = {"old_size": 1, "tree_size": 1}
# Reads that no role can answer with 2xx from the demo round alone.
NO_SUCCESS_EXPECTED = {
    "GET /api/v1/certify/certificates/{number}/delivery",  # the demo arranges no delivery
    "GET /api/v1/notices/{number}",  # nor publishes a delivery notice
    "GET /audit/tiles/{path}",  # served only with CERTSVC_AUDIT_TILES_DIR (test_tiles.py)
}
# operation → one line per kind of disagreement seen there (with the first example's detail)
Failures = dict[str, dict[str, str]]


class Probe:
    """Sends cases as staff members and files every disagreement with the document."""

    def __init__(self, members: dict[str, StaffMember]) -> None:
        self.members = members
        self.failures: Failures = defaultdict(dict)
        self.succeeded: set[str] = set()

    def send(self, case: Any, role: str) -> Any:
        member = self.members[role]
        case.headers = {**(case.headers or {}), **member.auth}
        if member.workstation is not None:
            case.headers.update(_workstation_proof(case, member))
        label = f"{case.operation.method.upper()} {case.operation.path}"
        try:
            response = case.call(base_url=BASE_URL)
        except Exception as exc:  # the app raised: a 500 behind a real server
            self.failures[label].setdefault(
                f"raised {type(exc).__name__}", f"as {role}: {_first_line(str(exc))}"
            )
            return None
        if response.status_code < 300:
            self.succeeded.add(label)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                kind = f"{response.status_code} {type(failure).__name__}: {failure.title}"
                detail = f"as {role}: {_first_line(failure.message)}"
                self.failures[label].setdefault(kind, detail)
        return response

    def fuzz(self, operation: Any, role: str) -> None:
        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            self.send(case, role)

        check()

    def report(self) -> list[str]:
        return [
            f"{label}\n    {kind}\n        {detail}"
            for label, kinds in sorted(self.failures.items())
            for kind, detail in sorted(kinds.items())
        ]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _workstation_proof(case: Any, member: StaffMember) -> dict[str, str]:
    """The signature headers for the request `case` becomes: the same preparation as the
    transport's, so the signed path, query and body are the bytes the service receives."""
    sent = case.as_transport_kwargs(base_url=BASE_URL)
    fields = ("method", "url", "headers", "params", "data", "json", "files", "cookies")
    prepared = requests.Request(**{k: sent[k] for k in fields if k in sent}).prepare()
    body = prepared.body or b""
    assert isinstance(body, bytes | str), type(body)
    return member.signed(
        str(prepared.method),
        prepared.path_url,
        body.encode() if isinstance(body, str) else body,
    )


def _known(settings_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Path parameters naming what the demo round made, and the active certificate key."""
    engine = make_engine(settings_url)
    try:
        with Session(engine) as db:
            document = db.execute(
                select(SignedDocumentRow.kind, SignedDocumentRow.document_id).limit(1)
            ).one()
            certificate_key = db.execute(
                select(SigningKey.token_serial, SigningKey.label).where(
                    SigningKey.purpose == KeyPurpose.CERTIFICATE,
                    SigningKey.status == KeyStatus.ACTIVE,
                )
            ).one()
            path = {
                "batch_id": db.scalar(select(Batch.id)),
                "application_id": db.scalar(select(Application.id)),
                "number": db.scalar(
                    select(Certificate.number).where(Certificate.status == "issued")
                ),
                "revocation_id": db.scalar(select(Revocation.id)),
                "kind": document.kind,
                "document_id": document.document_id,
                "verification_id": db.scalar(select(PublicCertificate.verification_id)),
                "index": 0,
            }
    finally:
        engine.dispose()
    return path, {"token_serial": certificate_key.token_serial, "key_label": certificate_key.label}


def _user_pin(secrets: dict[str, Any], serial: str) -> str:
    pin: str = next(t["user_pin"] for t in secrets["tokens"].values() if t["serial"] == serial)
    return pin


def _read_everything(
    schema: Any, probe: Probe, path: dict[str, Any], roles: tuple[str, ...]
) -> None:
    """Every read whose parameters name something the demo round made, as each role."""
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET":
            continue
        names = {p.name for p in operation.path_parameters}
        required = {p.name for p in operation.query if p.is_required}
        if not (names <= path.keys() and required <= KNOWN_QUERY.keys()):
            continue
        query = {name: KNOWN_QUERY[name] for name in required}
        for role in roles:
            case = operation.Case(
                path_parameters={name: path[name] for name in names}, query=query or None
            )
            probe.send(case, role)


@pytest.mark.timeout(600)
def test_staff_routes_keep_to_their_document(settings: Settings, tmp_path: Path) -> None:
    initialised(settings)
    demo(out=tmp_path / "demo")
    secrets = json.loads(settings.credentials_file.read_text())
    workstation_of = {owner: name for name, owner in DEMO_WORKSTATIONS.items()}
    members = {role: demo_member(secrets, role, workstation_of.get(role)) for role in ROLES}
    path, certificate_key = _known(settings.resolved_database_url)
    app = create_app(settings)
    probe = Probe(members)
    try:
        schema: Any = schemathesis.openapi.from_asgi(
            "/openapi.json", app, headers=members["admin"].auth
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 50
        # The custodian inserts the certificate USBKey: the PDF and signing routes answer.
        opening = schema["/api/v1/signing/sessions"]["POST"].Case(
            body={**certificate_key, "pin": _user_pin(secrets, certificate_key["token_serial"])}
        )
        opened = probe.send(opening, "custodian")
        assert opened is not None and opened.status_code == 201
        _read_everything(schema, probe, path, ROLES)
        for role in ROLES:
            for operation in operations:
                probe.fuzz(operation, role)
    finally:
        app.state.engine.dispose()
    report = probe.report()
    assert not report, f"{len(probe.failures)} operations break their document:\n" + "\n".join(
        report
    )
    reads = {f"GET {op.path}" for op in operations if op.method.upper() == "GET"}
    assert reads - probe.succeeded == NO_SUCCESS_EXPECTED
