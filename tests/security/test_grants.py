"""Grants as audit events under dual control (issue 14): rows written around the service grant
nothing and are named; an admin alone cannot make a revealer, an officer or a security
officer count; one person is one approver and holds one account per role. On SQLite and
PostgreSQL (the `client`, `sessions` and `session` fixtures run on both)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from alembic import command
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from certsvc.accounts import (
    Role,
    StaffAccount,
    create_account,
    get_account,
    issue_api_token,
    password_backed,
    password_hasher,
)
from certsvc.audit_trail import INIT_PROVISIONER, actor_of
from certsvc.cli import main
from certsvc.db import alembic_config, make_engine, make_sessionmaker, upgrade_database
from certsvc.grants import (
    TOKEN_LOGIN,
    account_backed,
    adopt_legacy_grants,
    approve_account,
    grant_token,
    propose_account,
    unbacked_grants,
)
from certsvc.settings import Settings
from certsvc.workstations import register_workstation, sign_request
from common.errors import Conflict
from service_helpers import MakeStaff
from signer.actor import Actor
from signer.custody import approve_revocation

ME = "/api/v1/staff/me"
PROBE = "/api/v1/custodian/workstation"
PASSWORD = "a long enough password"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refusals(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as db:
        query = select(AuditEventRow.object).where(AuditEventRow.action == "service.grant.refused")
        return list(db.scalars(query))


def test_rows_written_around_the_service_grant_nothing_and_are_named(
    client: TestClient,
    make_staff: MakeStaff,
    sessions: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    custodian = make_staff(Role.CUSTODIAN, workstation=True)
    registrar = make_staff(Role.REGISTRAR)
    assert client.get(ME, headers=registrar.auth).status_code == 200
    assert unbacked_grants_of(sessions) == []
    with sessions.begin() as db:
        # A database administrator's account, token and workstation, with no event.
        rogue = create_account(db, "rogue.revealer", Role.VAULT_REVEALER, PASSWORD)
        rogue_token, rogue_record = issue_api_token(db, rogue, 30)
        # The same account with a token issued properly: the account itself is still unbacked.
        backed_token, _ = grant_token(db, actor_of(rogue), rogue, 30, TOKEN_LOGIN)
        # A token slipped to a real account, and a real account's role changed in place.
        slipped, slipped_record = issue_api_token(db, get_account(db, custodian.username), 30)
        db.execute(
            update(StaffAccount)
            .where(StaffAccount.username == registrar.username)
            .values(role=Role.VAULT_REVEALER)
        )
        key = Ed25519PrivateKey.generate()
        register_workstation(db, "ws-rogue", custodian.username, key.public_key())
    assert client.get(ME, headers=bearer(rogue_token)).status_code == 401
    unbacked = client.get(ME, headers=bearer(backed_token))
    assert unbacked.status_code == 403 and "no grant event" in unbacked.json()["detail"]
    assert client.get(ME, headers=bearer(slipped)).status_code == 401
    assert client.get(ME, headers=registrar.auth).status_code == 403
    proof = sign_request(key, "ws-rogue", "GET", PROBE, b"", custodian.auth["Authorization"])
    assert client.get(PROBE, headers={**custodian.auth, **proof}).status_code == 401
    assert client.get(PROBE, headers=custodian.signed("GET", PROBE)).status_code == 200
    assert {rogue_record.token_id, "rogue.revealer", slipped_record.token_id} <= set(
        refusals(sessions)
    )
    assert {registrar.username, "ws-rogue"} <= set(refusals(sessions))
    assert unbacked_grants_of(sessions) == [
        ("account", registrar.username),
        ("account", "rogue.revealer"),
        ("api_token", rogue_record.token_id),
        ("api_token", slipped_record.token_id),
        ("workstation", "ws-rogue"),
    ]
    with pytest.raises(SystemExit) as exited:
        main(["grants", "check"])
    assert exited.value.code == 1
    assert "workstation ws-rogue: no grant event on record" in capsys.readouterr().out


def test_a_password_hash_written_around_the_service_opens_nothing(
    client: TestClient,
    make_staff: MakeStaff,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    """A DBA who writes a hash of their own password onto an officer's account, to log in as
    the officer (the API asks no second factor), is refused: the hash is not the one the
    account's last password event bound. The officer's own password no longer works either,
    and `grants check` names the account."""
    officer = make_staff(Role.OFFICER)
    login = "/api/v1/auth/token"
    mine = "a password the DBA chose"
    assert (
        client.post(login, json={"username": officer.username, "password": officer.password})
    ).status_code == 201
    with sessions.begin() as db:
        db.execute(
            update(StaffAccount)
            .where(StaffAccount.username == officer.username)
            .values(password_hash=password_hasher(settings).hash(mine))
        )
    refused = client.post(login, json={"username": officer.username, "password": mine})
    assert refused.status_code == 401
    assert "cst_" not in refused.text
    assert unbacked_grants_of(sessions) == [("password of account", officer.username)]
    # Copying another account's hash and event index does not bind it either: the event
    # names the account it was made for.
    other = make_staff(Role.REGISTRAR)
    with sessions.begin() as db:
        source = get_account(db, other.username)
        db.execute(
            update(StaffAccount)
            .where(StaffAccount.username == officer.username)
            .values(password_hash=source.password_hash, password_idx=source.password_idx)
        )
    copied = client.post(login, json={"username": officer.username, "password": other.password})
    assert copied.status_code == 401


def unbacked_grants_of(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as db:
        return [(found.kind, found.name) for found in unbacked_grants(db)]


def test_cli_grants_check_passes_on_a_clean_database(
    make_staff: MakeStaff, capsys: pytest.CaptureFixture[str]
) -> None:
    make_staff(Role.VAULT_REVEALER, workstation=True)
    with pytest.raises(SystemExit) as exited:
        main(["grants", "check"])
    assert exited.value.code == 0
    assert "every grant is backed" in capsys.readouterr().out


def test_an_admin_alone_cannot_make_a_revealer(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    """The admin chooses the password, uses it first, registers a workstation of their own:
    the account still counts for nothing until a security officer approves it."""
    admin = make_staff(Role.ADMIN)
    body = {"username": "chosen.one", "display_name": "C", "role": "vault_revealer"}
    created = client.post(
        "/api/v1/admin/accounts", headers=admin.auth, json={**body, "password": PASSWORD}
    )
    assert created.status_code == 201 and created.json()["awaiting_approval"]
    change = {"username": "chosen.one", "password": PASSWORD, "new_password": "admin's pick 2"}
    assert client.post("/api/v1/auth/password", json=change).status_code == 204
    key = Ed25519PrivateKey.generate()
    registered = client.post(
        "/api/v1/admin/workstations",
        headers=admin.auth,
        json={"name": "ws-chosen", "custodian": "chosen.one", "public_key_pem": pem(key)},
    )
    assert registered.status_code == 201
    login = {"username": "chosen.one", "password": "admin's pick 2"}
    refused = client.post("/api/v1/auth/token", json=login)
    assert refused.status_code == 403 and "security officer" in refused.json()["detail"]
    approve = "/api/v1/security/accounts/chosen.one/approve"
    assert client.post(approve, headers=admin.auth).status_code == 403


def pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_the_approver_is_another_person_than_the_proposer_and_the_holder(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    admin = make_staff(Role.ADMIN)
    security = make_staff(Role.SECURITY_OFFICER)
    with sessions.begin() as db:
        proposer = actor_of(get_account(db, admin.username))
        # Security-officer accounts of the admin's own person and of "P-SELF", approved by
        # a real second person.
        for username, person in (("admin.as.so", proposer.person), ("self.so", "P-SELF")):
            propose_account(db, proposer, username, Role.SECURITY_OFFICER, PASSWORD, person=person)
            approve_account(db, get_account(db, security.username), username)
        propose_account(db, proposer, "new.revealer", Role.VAULT_REVEALER, PASSWORD)
        propose_account(db, proposer, "self.officer", Role.OFFICER, PASSWORD, person="P-SELF")
    with sessions.begin() as db, pytest.raises(Conflict, match="two different persons"):
        approve_account(db, get_account(db, "admin.as.so"), "new.revealer")
    with sessions.begin() as db, pytest.raises(Conflict, match="of their own"):
        approve_account(db, get_account(db, "self.so"), "self.officer")
    pending = client.get("/api/v1/security/accounts/pending", headers=security.auth)
    assert {a["username"] for a in pending.json()} == {"new.revealer", "self.officer"}
    approve = "/api/v1/security/accounts/new.revealer/approve"
    assert client.post(approve, headers=security.auth).status_code == 200
    assert client.post(approve, headers=security.auth).status_code == 409


def test_one_person_holds_one_account_per_role(client: TestClient, make_staff: MakeStaff) -> None:
    admin = make_staff(Role.ADMIN)
    for username, status in (("first.officer", 201), ("second.officer", 409)):
        body = {"username": username, "display_name": "X", "role": "officer", "person": "P-007"}
        response = client.post("/api/v1/admin/accounts", headers=admin.auth, json=body)
        assert response.status_code == status, response.text
    assert "already holds the officer account 'first.officer'" in response.json()["detail"]
    body = {"username": "p7.registrar", "display_name": "X", "role": "registrar", "person": "P-007"}
    assert client.post("/api/v1/admin/accounts", headers=admin.auth, json=body).status_code == 201
    id_like = {**body, "username": "p8", "person": "11010519491231002X"}
    refused = client.post("/api/v1/admin/accounts", headers=admin.auth, json=id_like)
    assert refused.status_code == 422 and "11010519491231002X" not in refused.text


def test_one_person_with_two_officer_accounts_approves_a_revocation_once(
    session: Session,
) -> None:
    digest = secrets.token_hex(32)
    first = Actor("li.one", 1, "officer", person="P-LI")
    second = Actor("li.two", 2, "officer", person="P-LI")
    approve_revocation(session, first, "revocation:7", digest, "wrong conclusion")
    with pytest.raises(Conflict, match="second person"):
        approve_revocation(session, second, "revocation:7", digest, "wrong conclusion")
    other = Actor("wang", 3, "officer", person="P-WANG")
    approve_revocation(session, other, "revocation:7", digest, "wrong conclusion")


def test_rows_from_before_grants_are_adopted_with_an_event(empty_db_url: str) -> None:
    """An install upgraded to grants keeps its staff: the migration marks the rows it found,
    `certsvc init` gives each its event (once, in the log); a row added later is not adopted."""
    engine = make_engine(empty_db_url, create=True)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0010")
        connection.execute(
            text(
                "INSERT INTO staff_accounts (username, display_name, role, password_hash,"
                " active, created_at) VALUES ('old.officer', 'Old', 'officer', 'x', :yes, :now)"
            ),
            {"yes": True, "now": datetime.now(UTC)},
        )
    upgrade_database(empty_db_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as db:
        old = get_account(db, "old.officer")
        assert not account_backed(db, old)
        create_account(db, "new.rogue", Role.OFFICER, PASSWORD)
    with sessions.begin() as db:
        assert not password_backed(db, get_account(db, "old.officer"))
        assert adopt_legacy_grants(db, INIT_PROVISIONER) == [
            "account old.officer",
            "password old.officer",
        ]
    with sessions.begin() as db:
        assert account_backed(db, get_account(db, "old.officer"))
        assert password_backed(db, get_account(db, "old.officer"))
        assert adopt_legacy_grants(db, INIT_PROVISIONER) == []
        assert [(g.kind, g.name) for g in unbacked_grants(db)] == [("account", "new.rogue")]
    engine.dispose()
