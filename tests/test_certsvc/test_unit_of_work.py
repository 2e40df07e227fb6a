"""One unit of work per request (`common.unit_of_work`), on SQLite and PostgreSQL: a request
that fails leaves nothing of what it wrote; a refused attempt stays on record although its
request fails (and answers 503 when even that record cannot be written); nothing is answered 2xx
before it is committed. And, read from the source: no domain module ends a transaction, and
only the documented jobs open units of their own."""

from __future__ import annotations

import ast
import json
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

import common.unit_of_work
from audit.events import decode_leaf
from audit.models import AuditEventRow
from certify.models import Application
from certsvc.app import create_app
from certsvc.bootstrap import DEMO_REVEALER_WORKSTATION, DEMO_WORKSTATION
from certsvc.settings import Settings
from init_cache import initialised
from service_helpers import StaffMember, demo_member
from signer.models import HsmToken, KeyPurpose, SigningKey
from vault import synthetic
from vault.models import VaultReveal

ROOT = Path(__file__).resolve().parents[2]
ID_NUMBER = "11010519491231002X"
LATER = (date.today() + timedelta(days=30)).isoformat()
BATCH = {
    "name": "2020年上半年",
    "registration_opens": "2020-06-08",
    "registration_closes": "2020-06-30",
    "confirmation_starts": "2020-07-06",
    "confirmation_ends": "2020-07-10",
    "closes_on": "2020-10-09",
}


@dataclass
class Service:
    client: TestClient
    engine: Engine
    sessions: sessionmaker[Session]
    members: dict[str, StaffMember]
    usbkey: dict[str, str]

    def call(self, method: str, path: str, who: str, body: Any = None) -> Any:
        """A request as `who`, signed by their workstation when they have one."""
        member = self.members[who]
        raw = json.dumps(body).encode() if body is not None else b""
        headers = member.signed(method, path, raw) if member.workstation else dict(member.auth)
        headers["Content-Type"] = "application/json"
        return self.client.request(method, path, content=raw, headers=headers)

    def ok(self, method: str, path: str, who: str, body: Any = None) -> Any:
        answer = self.call(method, path, who, body)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def events(self, action: str) -> list[dict[str, Any]]:
        with self.sessions() as db:
            rows = db.scalars(
                select(AuditEventRow.leaf)
                .where(AuditEventRow.action == action)
                .order_by(AuditEventRow.idx)
            )
            return [decode_leaf(leaf) for leaf in rows]

    def log_size(self) -> int:
        with self.sessions() as db:
            return int(db.scalar(select(func.count()).select_from(AuditEventRow)) or 0)

    def application(self, id_number: str = ID_NUMBER) -> tuple[int, str]:
        """A new case (no check recorded yet, in a batch of its own) and the ID-number token of
        its applicant."""
        plan = {**BATCH, "name": f"batch {secrets.token_hex(4)}"}
        batch = self.ok("POST", "/api/v1/certify/batches", "officer", plan)
        until = (date.today() + timedelta(days=30)).isoformat()
        extension = {"until": until, "reason": "a 2020 batch filed in a test run years later"}
        path = f"/api/v1/certify/batches/{batch['id']}/registration-extension"
        self.ok("POST", path, "officer", extension)
        items = [{"kind": "id_number", "value": id_number}, {"kind": "name", "value": "张三"}]
        tokens = self.ok("POST", "/api/v1/vault/tokenise", "registrar", {"items": items})
        id_token, name_token = (t["token"] for t in tokens["tokens"])
        case = {
            "batch_id": batch["id"],
            "applicant": {"id_number_token": id_token, "name_token": name_token},
            "qualification": "SS",
            "subject": "02",
        }
        application = self.ok("POST", "/api/v1/certify/applications", "registrar", case)
        return application["id"], id_token

    def block_commits_writing(self, table: str) -> None:
        """From now on every transaction that inserts into `table` fails when it commits: the
        insert also writes a row breaking a foreign key checked only at commit (a deferred
        constraint, on both databases), as a constraint or a failing disk would."""
        guard = (
            "CREATE TABLE commit_guard (ref INTEGER REFERENCES staff_accounts (id) "
            "DEFERRABLE INITIALLY DEFERRED)"
        )
        trigger = f"CREATE TRIGGER block_{table} AFTER INSERT ON {table} "  # a table of ours
        with self.engine.begin() as connection:
            connection.execute(text(guard))
            if self.engine.dialect.name == "sqlite":
                body = "BEGIN INSERT INTO commit_guard (ref) VALUES (-1); END"
                connection.execute(text(trigger + body))
            else:
                connection.execute(
                    text(
                        "CREATE FUNCTION block_commit() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN INSERT INTO commit_guard (ref) VALUES (-1); RETURN NEW; END $$"
                    )
                )
                connection.execute(text(trigger + "FOR EACH ROW EXECUTE FUNCTION block_commit()"))


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    initialised(settings)
    secrets = json.loads(settings.credentials_file.read_text())
    workstations = {"custodian": DEMO_WORKSTATION, "vault_revealer": DEMO_REVEALER_WORKSTATION}
    members = {
        name: demo_member(secrets, name, workstations.get(name)) for name in secrets["accounts"]
    }
    app = create_app(settings)
    with TestClient(app) as client:
        yield Service(
            client,
            app.state.engine,
            app.state.sessionmaker,
            members,
            secrets["tokens"]["USBKEY-01"],
        )
    app.state.engine.dispose()


# (a) A request whose domain call fails after writing leaves nothing behind.


def test_a_failing_request_leaves_nothing_of_what_it_wrote(service: Service) -> None:
    application_id, _ = service.application()
    before = service.log_size()
    # The deadline override is written (the case and its audit event), then the decision is
    # refused: no conclusion before the criminal-record check (R2).
    answer = service.call(
        "POST",
        f"/api/v1/certify/applications/{application_id}/decision",
        "officer",
        {
            "outcome": "approve",
            "reasons": "all checks",
            "deadline_override": {"reason": "x" * 20, "category": "other", "expires_on": LATER},
        },
    )
    assert answer.status_code == 422 and "R2" in answer.json()["detail"]
    with service.sessions() as db:
        case = db.get_one(Application, application_id)
        assert (case.override_by, case.override_reason) == (None, None)
    assert service.events("certify.deadline.override") == []
    assert service.log_size() == before


# (b) Refused attempts stay on record although their request fails.


def test_a_refused_reveal_stays_on_record(service: Service) -> None:
    application_id, id_token = service.application()
    _, other_token = service.application(synthetic.id_number(random.Random(7)))
    body = {"tokens": [other_token], "case": f"application:{application_id}"}
    body["purpose"] = "复核申请人身份（现场确认）"
    outside = service.call("POST", "/api/v1/vault/reveal", "vault_revealer", body)
    assert outside.status_code == 422 and ID_NUMBER not in outside.text
    by_role = service.call(
        "POST", "/api/v1/vault/reveal", "registrar", {**body, "tokens": [id_token]}
    )
    assert by_role.status_code == 403
    refusals = [(e["actor"], e["object"], e["outcome"]) for e in service.events("vault.reveal")]
    assert refusals == [
        ("vault_revealer", other_token, "refused"),
        ("registrar", "", "refused"),
    ]
    with service.sessions() as db:
        assert db.scalar(select(func.count()).select_from(VaultReveal)) == 0


def test_a_refused_workstation_proof_stays_on_record(service: Service) -> None:
    path = "/api/v1/signing/sessions"
    body = {"token_serial": "0000000000000000", "key_label": "decision-1", "pin": "123456"}
    raw = json.dumps(body).encode()
    custodian = service.members["custodian"]
    json_body = {"Content-Type": "application/json"}
    forged = {**custodian.signed("POST", path, b"{}"), **json_body}  # another body's proof
    answer = service.client.post(path, content=raw, headers=forged)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Certsvc-Signature"
    [refusal] = service.events("service.workstation_proof")
    assert (refusal["actor"], refusal["outcome"]) == ("custodian", "refused")
    assert "does not verify" in refusal["reason"]
    # A well-proved request that fails (no such token) still uses its nonce up: replayed
    # as it was sent, it is refused as a replay, not run again.
    headers = {**custodian.signed("POST", path, raw), **json_body}
    first = service.client.post(path, content=raw, headers=headers)
    assert first.status_code == 404, first.text
    replay = service.client.post(path, content=raw, headers=headers)
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]


def test_a_refused_signing_session_and_its_wrong_pin_stay_on_record(service: Service) -> None:
    serial = service.usbkey["serial"]
    body = {"token_serial": serial, "key_label": "decision-1", "pin": "00000000"}
    answer = service.call("POST", "/api/v1/signing/sessions", "custodian", body)
    assert answer.status_code == 403 and answer.json()["tries_left"] is not None
    [refusal] = service.events("signer.session.open")
    assert (refusal["outcome"], refusal["reason"]) == ("refused", "WrongPin")
    with service.sessions() as db:
        assert db.get_one(HsmToken, serial).pin_failures == 1


def test_a_refused_signature_stays_on_record(service: Service) -> None:
    with service.sessions() as db:
        key_ids = db.scalars(
            select(SigningKey.id).where(SigningKey.purpose == KeyPurpose.AUDIT_CHECKPOINT)
        ).all()
    assert len(key_ids) == 2  # Ed25519 and P-256: with one still active, it would sign alone
    for key_id in key_ids:
        service.ok(
            "POST", f"/api/v1/hsm/keys/{key_id}/retire", "security_officer", {"reason": "replaced"}
        )
    signed_before = len(service.events("signer.sign"))
    answer = service.call("POST", "/api/v1/audit/checkpoints", "security_officer")
    assert answer.status_code == 403 and answer.json()["rule"] == "key-retired"
    signs = service.events("signer.sign")
    assert len(signs) == signed_before + 1
    assert (signs[-1]["outcome"], signs[-1]["reason"]) == ("refused", "key-retired")


def test_a_refusal_that_cannot_be_recorded_answers_503(service: Service) -> None:
    """Fail closed: the refusal's own event is written after its request rolled back; when
    that fails too, the answer is a 503, not the refusal as if it were on record."""
    application_id, id_token = service.application()
    service.block_commits_writing("audit_events")
    body = {"tokens": [id_token], "case": f"application:{application_id}"}
    body["purpose"] = "复核申请人身份（现场确认）"
    answer = service.call("POST", "/api/v1/vault/reveal", "registrar", body)
    assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()
    assert "could not be recorded" in answer.json()["detail"]
    assert service.events("vault.reveal") == []


# (c) Nothing is answered 2xx before it is committed.


def test_nothing_is_answered_before_it_is_committed(service: Service) -> None:
    application_id, id_token = service.application()
    service.block_commits_writing("vault_reveals")
    body = {"tokens": [id_token], "case": f"application:{application_id}"}
    body["purpose"] = "复核申请人身份（现场确认）"
    answer = service.call("POST", "/api/v1/vault/reveal", "vault_revealer", body)
    assert answer.status_code == 503
    assert ID_NUMBER not in answer.text and "张三" not in answer.text
    assert "nothing of it was done" in answer.json()["detail"]
    assert service.events("vault.reveal") == []
    with service.sessions() as db:
        assert db.scalar(select(func.count()).select_from(VaultReveal)) == 0


# From the source.

DOMAIN = ("audit", "certify", "signer", "vault", "verify", "common")
# Jobs of many units, each a unit of its own by design (named in `common.unit_of_work`), and
# the signing gate's unit for an action and its signatures.
OPENS_UNITS = {
    "signer/documents.py",
    "certify/decisions.py",
    "certify/issuance.py",
    "certify/applicant_import.py",
    "vault/rotation.py",
    "signer/gate.py",
}
TRANSACTION_ENDS = {"commit", "rollback", "begin"}
UNIT_OPENERS = {"unit_of_work", "signing_transaction"}


def _calls(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            yield name, node.lineno


def _modules(*packages: str) -> Iterator[tuple[str, Path]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


def test_no_domain_module_or_route_ends_a_transaction() -> None:
    """Committing, rolling back or opening a transaction belongs to `common.unit_of_work`;
    the routes and the request's dependencies leave it to the request's unit."""
    found = [
        f"{name}:{line} .{call}()"
        for name, path in _modules(*DOMAIN, "certsvc/routes")
        if name != "common/unit_of_work.py"
        for call, line in _calls(path)
        if call in TRANSACTION_ENDS
    ]
    found += [
        f"certsvc/auth.py:{line} .{call}()"
        for call, line in _calls(ROOT / "certsvc/auth.py")
        if call in TRANSACTION_ENDS
    ]
    assert found == []


def test_only_the_documented_jobs_open_units_of_their_own() -> None:
    opened = {
        name
        for name, path in _modules(*DOMAIN)
        if name != "common/unit_of_work.py"
        for call, _ in _calls(path)
        if call in UNIT_OPENERS
    }
    assert opened == OPENS_UNITS
    documented = common.unit_of_work.__doc__ or ""
    for name in OPENS_UNITS - {"signer/gate.py"}:
        module = name.removesuffix(".py").replace("/", ".")
        assert f"`{module}" in documented, f"{module} is a job: say so in common.unit_of_work"
        source = " ".join((ROOT / name).read_text().split())
        assert "of many units" in source, f"{name}: its docstring says it is a job"
