"""A lost phone or security key: the console's second factor reset under dual control. An admin
proposes, a security officer who is another person than the proposer and the holder approves;
the approval removes the account's TOTP secret and security keys and ends its console sessions,
and the holder enrols a new factor at their next sign-in (password first, as always). Both
steps are audit events; the approval is the reset event the console's "enrolled before" checks
start from (`certsvc.console.enrolments`), so deleting the rows alone still locks the account."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from audit.grants import grant_event
from audit.models import AuditEventRow
from audit.trail import record
from certsvc.accounts import Role, StaffAccount, get_account
from certsvc.audit_trail import actor_of
from certsvc.console import sessions
from certsvc.console.enrolments import RESET_ACTION, last_reset
from certsvc.console.models import ConsoleSecurityKey, ConsoleTotp
from common.errors import Conflict

PROPOSE_ACTION = "console.factor_reset.propose"


@dataclass(frozen=True)
class Reset:
    """What an approved reset removed."""

    username: str
    proposed_by: str
    security_keys_removed: int
    totp_removed: bool


def _since_last_reset(db: Session, username: str) -> AuditEventRow | None:
    """The newest proposal for `username` after its last reset, if any."""
    query = select(AuditEventRow).where(
        AuditEventRow.action == PROPOSE_ACTION,
        AuditEventRow.object == username,
        AuditEventRow.outcome == "ok",
        AuditEventRow.idx > last_reset(db, username),
    )
    return db.scalars(query.order_by(AuditEventRow.idx.desc()).limit(1)).first()


def pending_resets(db: Session) -> list[AuditEventRow]:
    """The proposals still awaiting a security officer, one per account (its newest), oldest
    first."""
    usernames = db.scalars(
        select(AuditEventRow.object).where(AuditEventRow.action == PROPOSE_ACTION).distinct()
    )
    found = [_since_last_reset(db, name) for name in usernames]
    return sorted((row for row in found if row is not None), key=lambda row: row.idx)


def propose_reset(db: Session, admin: StaffAccount, username: str) -> int:
    """An admin's proposal to reset `username`'s second factor; its event's index."""
    if admin.role is not Role.ADMIN:
        raise Conflict("proposer: only an admin proposes a second-factor reset")
    account = get_account(db, username)
    if account.person == admin.person:
        raise Conflict("username: nobody proposes the reset of their own second factor")
    return record(db, actor_of(admin), PROPOSE_ACTION, account.username)


def approve_reset(db: Session, officer: StaffAccount, username: str) -> Reset:
    """A security officer's approval of the pending proposal: the factor is removed now.
    Refused (409) without a pending proposal, for the officer's own account, or when the
    officer is the proposer's person."""
    if officer.role is not Role.SECURITY_OFFICER:
        raise Conflict("approver: only a security officer approves a second-factor reset")
    account = get_account(db, username)
    proposal = _since_last_reset(db, account.username)
    if proposal is None:
        raise Conflict(f"username: no second-factor reset of {username!r} is awaiting approval")
    # The proposal as its leaf says (intact, an admin's), not as its columns may have been edited.
    proposed = grant_event(db, proposal.idx, {PROPOSE_ACTION: frozenset({Role.ADMIN.value})})
    if proposed is None or proposed.get("object") != account.username:
        raise Conflict(f"username: reset proposal {proposal.idx} is not an admin's intact event")
    if account.person == officer.person:
        raise Conflict("username: nobody approves the reset of their own second factor")
    proposer = db.scalar(select(StaffAccount).where(StaffAccount.username == proposed["actor"]))
    if proposer is None or proposer.person == officer.person:
        raise Conflict("username: the proposer and the approver must be two different persons")
    keys = len(
        db.scalars(
            select(ConsoleSecurityKey.id).where(ConsoleSecurityKey.account_id == account.id)
        ).all()
    )
    totp = db.get(ConsoleTotp, account.id) is not None
    db.execute(delete(ConsoleSecurityKey).where(ConsoleSecurityKey.account_id == account.id))
    db.execute(delete(ConsoleTotp).where(ConsoleTotp.account_id == account.id))
    sessions.end_all(db, account.id)
    record(
        db,
        actor_of(officer),
        RESET_ACTION,
        account.username,
        details={
            "proposed_by": proposer.username,
            "proposal": proposal.idx,
            "security_keys_removed": keys,
            "totp_removed": totp,
        },
    )
    return Reset(account.username, proposer.username, keys, totp)
