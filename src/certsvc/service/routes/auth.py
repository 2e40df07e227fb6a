"""Log in: username and password in, a new API token out (shown once)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, SecretStr

from certsvc.audit.events import AuditEvent
from certsvc.audit.log import append
from certsvc.service.accounts import (
    PASSWORD_MAX,
    account_exists,
    authenticate,
    issue_api_token,
)
from certsvc.service.auth import HasherDep, SessionDep, SettingsDep

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenRequest(BaseModel):
    username: str = Field(max_length=64)
    password: SecretStr = Field(max_length=PASSWORD_MAX)


class TokenResponse(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`; shown only now")
    token_id: str = Field(description="public id, to list or revoke the token")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth 2 token type)
    expires_at: datetime


@router.post(
    "/token",
    status_code=status.HTTP_201_CREATED,
    responses={401: {"description": "wrong username or password"}},
)
def create_token(
    body: TokenRequest, session: SessionDep, settings: SettingsDep, hasher: HasherDep
) -> TokenResponse:
    """Exchange a username and password for a new API token."""
    account = authenticate(
        session,
        body.username,
        body.password.get_secret_value(),
        hasher=hasher,
    )
    if account is None:
        # A username is logged only if it is one: people type passwords into it by mistake.
        known = account_exists(session, body.username)
        if known:
            logger.warning("login failed for %s", body.username)
        else:
            logger.warning("login failed for an unknown username")
        append(
            session,
            AuditEvent(
                body.username if known else "unknown",
                "staff",
                "service.login",
                "api",
                "refused",
                reason="wrong username or password",
            ),
        )
        session.commit()
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    text, record = issue_api_token(session, account, settings.api_token_days)
    append(
        session,
        AuditEvent(account.username, account.role.value, "service.login", record.token_id, "ok"),
    )
    session.commit()
    logger.info("login: %s received token %s", account.username, record.token_id)
    return TokenResponse(token=text, token_id=record.token_id, expires_at=record.expires_at)
