"""Admins propose staff accounts; a security officer approves those whose role reveals,
decides, approves or signs (`certsvc.grants`). Admins cannot sign, decide or reveal."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field, SecretStr

from audit.trail import record
from certsvc.accounts import (
    DISPLAY_NAME_MAX,
    PASSWORD_MAX,
    Role,
    StaffAccount,
    disable_account,
    list_accounts,
)
from certsvc.audit_trail import actor_of
from certsvc.auth import HasherDep, SessionDep, require_roles
from certsvc.console.factor_reset import approve_reset, propose_reset
from certsvc.grants import SECOND_PERSON_ROLES, account_pending, approve_account, propose_account
from certsvc.routes.schemas import ROLE_GATED, StaffOut, answers
from common.errors import Conflict

AdminDep = Annotated[StaffAccount, Depends(require_roles(Role.ADMIN))]
SecurityOfficerDep = Annotated[StaffAccount, Depends(require_roles(Role.SECURITY_OFFICER))]
router = APIRouter(prefix="/api/v1/admin/accounts", tags=["admin"], responses=ROLE_GATED)
approvals = APIRouter(
    prefix="/api/v1/security/accounts", tags=["security officer"], responses=ROLE_GATED
)


class AccountCreate(BaseModel):
    username: str = Field(max_length=64, description="3–32 characters of a-z, 0-9, . _ -")
    display_name: str = Field(max_length=DISPLAY_NAME_MAX)
    role: Role
    person: str | None = Field(
        default=None,
        max_length=64,
        description="the holder's personnel number (default: the username); limits and dual "
        "control count persons, and a person holds one account per role",
    )
    password: SecretStr | None = Field(
        default=None,
        max_length=PASSWORD_MAX,
        description="at least 12 characters; omit to have one generated and shown once. It "
        "only lets the holder set their own (POST /api/v1/auth/password)",
    )


class AccountCreated(BaseModel):
    account: StaffOut
    initial_password: str | None = Field(
        description="the generated password, shown only now; null when one was given"
    )
    awaiting_approval: bool = Field(
        description="the role reveals, decides, approves or signs: a security officer who is "
        "another person must approve the account before it counts"
    )


@router.get("")
def get_accounts(_: AdminDep, session: SessionDep) -> list[StaffOut]:
    """Every staff account."""
    return [StaffOut.model_validate(account) for account in list_accounts(session)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=answers(409))
def post_account(
    body: AccountCreate, admin: AdminDep, session: SessionDep, hasher: HasherDep
) -> AccountCreated:
    """Propose an account with one role; a person with two duties gets two accounts. Its
    password works once, for the holder to set their own."""
    generated: str | None = None
    if body.password is None:
        password = generated = secrets.token_urlsafe(18)
    else:
        password = body.password.get_secret_value()
    account = propose_account(
        session,
        actor_of(admin),
        body.username,
        body.role,
        password,
        body.display_name,
        person=body.person,
        hasher=hasher,
    )
    return AccountCreated(
        account=StaffOut.model_validate(account),
        initial_password=generated,
        awaiting_approval=account.role in SECOND_PERSON_ROLES,
    )


@router.post("/{username}/disable", responses=answers(404, 409))
def post_disable(username: str, admin: AdminDep, session: SessionDep) -> StaffOut:
    """Disable an account and revoke its tokens; an admin cannot disable their own."""
    if username == admin.username:
        raise Conflict("username: you cannot disable your own account")
    account = disable_account(session, username)
    record(session, actor_of(admin), "service.account.disable", account.username)
    return StaffOut.model_validate(account)


class FactorResetProposed(BaseModel):
    username: str
    proposal: int = Field(description="the proposal's audit event index")
    awaiting_approval: bool = Field(
        default=True, description="a security officer who is another person approves it"
    )


class FactorResetDone(BaseModel):
    username: str
    proposed_by: str
    security_keys_removed: int
    totp_removed: bool


@router.post("/{username}/second-factor-reset", responses=answers(404, 409))
def post_factor_reset(username: str, admin: AdminDep, session: SessionDep) -> FactorResetProposed:
    """Propose resetting the holder's console second factor (a lost phone or security key).
    Nothing changes until a security officer approves; refused (409) for one's own."""
    proposal = propose_reset(session, admin, username)
    return FactorResetProposed(username=username, proposal=proposal)


@approvals.post("/{username}/second-factor-reset", responses=answers(404, 409))
def post_factor_reset_approval(
    username: str, officer: SecurityOfficerDep, session: SessionDep
) -> FactorResetDone:
    """Approve the pending reset: the account's TOTP secret and security keys are removed and
    its console sessions end; the holder enrols anew at the next sign-in. Refused (409)
    without a pending proposal, for one's own account, or by the proposer's person."""
    reset = approve_reset(session, officer, username)
    return FactorResetDone(
        username=reset.username,
        proposed_by=reset.proposed_by,
        security_keys_removed=reset.security_keys_removed,
        totp_removed=reset.totp_removed,
    )


@approvals.get("/pending")
def get_pending(_: SecurityOfficerDep, session: SessionDep) -> list[StaffOut]:
    """Accounts proposed by an admin and awaiting a security officer's approval."""
    return [
        StaffOut.model_validate(account)
        for account in list_accounts(session)
        if account.active and account_pending(session, account)
    ]


@approvals.post("/{username}/approve", responses=answers(404, 409))
def post_approve(username: str, officer: SecurityOfficerDep, session: SessionDep) -> StaffOut:
    """Approve a proposed account: its role counts from now on. Refused (409) for one's own
    account, one proposed by another account of one's own person, or one not awaiting it."""
    return StaffOut.model_validate(approve_account(session, officer, username))
