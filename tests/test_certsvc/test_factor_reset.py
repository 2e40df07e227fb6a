"""A lost second factor: an admin proposes the reset, a security officer who is another person
approves it; only then are the account's TOTP secret and security keys gone and the holder
enrols anew. Rows deleted by a database administrator alone still lock the account."""

from __future__ import annotations

import secrets

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from audit.trail import record
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.console import security_keys, totp
from certsvc.console import sessions as console_sessions
from certsvc.console.models import ConsoleSecurityKey, ConsoleSession, ConsoleTotp
from certsvc.settings import Settings
from service_helpers import MakeStaff, StaffMember

PROPOSE = "/api/v1/admin/accounts/{}/second-factor-reset"
APPROVE = "/api/v1/security/accounts/{}/second-factor-reset"


def _account(db: Session, member: StaffMember) -> StaffAccount:
    return db.scalars(select(StaffAccount).where(StaffAccount.username == member.username)).one()


def _enrol_both(db: Session, account: StaffAccount, settings: Settings) -> None:
    """A confirmed TOTP secret and one security key, each with its enrolment event."""
    secret, _uri = totp.begin_enrolment(db, account, settings.console_key_file)
    assert totp.check_code(db, account, pyotp.TOTP(secret).now(), settings.console_key_file)
    db.add(
        ConsoleSecurityKey(
            account_id=account.id,
            credential_id=secrets.token_bytes(32),
            public_key=secrets.token_bytes(77),
            rp_id="localhost",
            name="key 1",
        )
    )
    record(db, actor_of(account), security_keys.ENROL_ACTION, account.username)


def test_a_reset_takes_an_admin_and_a_security_officer_and_starts_the_account_afresh(
    client: TestClient,
    make_staff: MakeStaff,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    holder = make_staff(Role.REGISTRAR)
    admin, officer = make_staff(Role.ADMIN), make_staff(Role.SECURITY_OFFICER)
    with sessions.begin() as db:
        account = _account(db, holder)
        _enrol_both(db, account, settings)
        _token, live = console_sessions.start(db, account, True)
        live_id = live.id_hash

    # A DBA deleting the rows frees nothing: the log says a factor was enrolled.
    with sessions.begin() as db:
        db.query(ConsoleTotp).filter(ConsoleTotp.account_id == account.id).delete()
        assert totp.ever_enrolled(db, account) and security_keys.ever_enrolled(db, account)

    # Nothing to approve yet; an admin's proposal alone changes nothing.
    assert client.post(APPROVE.format(holder.username), headers=officer.auth).status_code == 409
    proposed = client.post(PROPOSE.format(holder.username), headers=admin.auth)
    assert proposed.status_code == 200, proposed.text
    assert proposed.json()["awaiting_approval"] is True
    with sessions() as db:
        assert security_keys.keys_of(db, account) != []

    approved = client.post(APPROVE.format(holder.username), headers=officer.auth)
    assert approved.status_code == 200, approved.text
    assert approved.json() == {
        "username": holder.username,
        "proposed_by": admin.username,
        "security_keys_removed": 1,
        "totp_removed": False,  # the DBA had deleted it
    }
    with sessions() as db:
        assert security_keys.keys_of(db, account) == []
        assert not totp.ever_enrolled(db, account) and not security_keys.ever_enrolled(db, account)
        ended = db.get(ConsoleSession, live_id)
        assert ended is not None and ended.ended_at is not None
        event = db.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "console.factor_reset")
        ).one()
        assert (event.actor, event.object) == (officer.username, holder.username)
    # One proposal, one reset: approving again needs a new proposal.
    assert client.post(APPROVE.format(holder.username), headers=officer.auth).status_code == 409

    # The holder enrols anew, and from then on a deleted row locks the account again.
    with sessions.begin() as db:
        secret, _uri = totp.begin_enrolment(db, account, settings.console_key_file)
        assert totp.check_code(db, account, pyotp.TOTP(secret).now(), settings.console_key_file)
        db.query(ConsoleTotp).filter(ConsoleTotp.account_id == account.id).delete()
        assert totp.ever_enrolled(db, account)


def test_nobody_resets_their_own_factor_or_alone(client: TestClient, make_staff: MakeStaff) -> None:
    admin, officer = make_staff(Role.ADMIN), make_staff(Role.SECURITY_OFFICER)
    other_officer = make_staff(Role.SECURITY_OFFICER)
    own = client.post(PROPOSE.format(admin.username), headers=admin.auth)
    assert own.status_code == 409 and "their own" in own.json()["detail"]
    # An officer's reset proposed by an admin is approved by another officer, not by them.
    assert client.post(PROPOSE.format(officer.username), headers=admin.auth).status_code == 200
    mine = client.post(APPROVE.format(officer.username), headers=officer.auth)
    assert mine.status_code == 409 and "their own" in mine.json()["detail"]
    assert (
        client.post(APPROVE.format(officer.username), headers=other_officer.auth).status_code == 200
    )
    # Roles: an officer does not propose, an admin does not approve; nobody resets a stranger.
    assert client.post(PROPOSE.format(admin.username), headers=officer.auth).status_code == 403
    assert client.post(APPROVE.format(officer.username), headers=admin.auth).status_code == 403
    assert client.post(PROPOSE.format("nobody-here"), headers=admin.auth).status_code == 404


def test_a_proposal_edited_in_the_table_approves_nothing(
    client: TestClient, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    """A DBA who moves an admin's proposal onto another account (its `object` column) gets
    no reset of that account: the approval reads the proposal from its leaf."""
    first, second = make_staff(Role.REGISTRAR), make_staff(Role.REGISTRAR)
    admin, officer = make_staff(Role.ADMIN), make_staff(Role.SECURITY_OFFICER)
    proposal = client.post(PROPOSE.format(first.username), headers=admin.auth).json()["proposal"]
    with sessions.begin() as db:
        db.execute(
            update(AuditEventRow)
            .where(AuditEventRow.idx == proposal)
            .values(object=second.username)
        )
    moved = client.post(APPROVE.format(second.username), headers=officer.auth)
    assert moved.status_code == 409 and "intact" in moved.json()["detail"]
