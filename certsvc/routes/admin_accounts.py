"""Admins provision staff accounts. They cannot sign, decide or reveal: those need other roles."""

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
    create_account,
    disable_account,
    list_accounts,
)
from certsvc.audit_trail import actor_of
from certsvc.auth import HasherDep, SessionDep, require_roles
from certsvc.routes.schemas import ROLE_GATED, StaffOut, answers
from common.errors import Conflict

AdminDep = Annotated[StaffAccount, Depends(require_roles(Role.ADMIN))]
router = APIRouter(prefix="/api/v1/admin/accounts", tags=["admin"], responses=ROLE_GATED)


class AccountCreate(BaseModel):
    username: str = Field(max_length=64, description="3–32 characters of a-z, 0-9, . _ -")
    display_name: str = Field(max_length=DISPLAY_NAME_MAX)
    role: Role
    password: SecretStr | None = Field(
        default=None,
        max_length=PASSWORD_MAX,
        description="at least 12 characters; omit to have one generated and shown once",
    )


class AccountCreated(BaseModel):
    account: StaffOut
    initial_password: str | None = Field(
        description="the generated password, shown only now; null when one was given"
    )


@router.get("")
def get_accounts(_: AdminDep, session: SessionDep) -> list[StaffOut]:
    """Every staff account."""
    return [StaffOut.model_validate(account) for account in list_accounts(session)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=answers(409))
def post_account(
    body: AccountCreate, admin: AdminDep, session: SessionDep, hasher: HasherDep
) -> AccountCreated:
    """Create an account with one role; a person with two duties gets two accounts."""
    generated: str | None = None
    if body.password is None:
        password = generated = secrets.token_urlsafe(18)
    else:
        password = body.password.get_secret_value()
    account = create_account(
        session, body.username, body.role, password, body.display_name, hasher=hasher
    )
    record(
        session,
        actor_of(admin),
        "service.account.create",
        account.username,
        details={"role": account.role.value},
    )
    return AccountCreated(account=StaffOut.model_validate(account), initial_password=generated)


@router.post("/{username}/disable", responses=answers(404, 409))
def post_disable(username: str, admin: AdminDep, session: SessionDep) -> StaffOut:
    """Disable an account and revoke its tokens; an admin cannot disable their own."""
    if username == admin.username:
        raise Conflict("username: you cannot disable your own account")
    account = disable_account(session, username)
    record(session, actor_of(admin), "service.account.disable", account.username)
    return StaffOut.model_validate(account)
