"""Log in: username and password in, a new API token out (shown once)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from argon2 import PasswordHasher
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.trail import event, keep_events
from certsvc import state
from certsvc.accounts import (
    PASSWORD_MAX,
    account_exists,
    authenticate,
    exposure_notices,
)
from certsvc.audit_trail import actor_of
from certsvc.auth import HasherDep, SessionDep, SettingsDep
from certsvc.grants import TOKEN_LOGIN, account_backed, grant_token, set_own_password
from certsvc.routes.schemas import answers
from certsvc.settings import Settings
from signer.actor import Actor

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
    notices: list[str] = Field(
        default_factory=list,
        description="what the holder must know, e.g. a token revoked because it was in a URL",
    )


@router.post(
    "/token",
    status_code=status.HTTP_201_CREATED,
    responses=answers(401, 413, 422, 429, 503),
)
async def create_token(
    body: TokenRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    hasher: HasherDep,
) -> TokenResponse:
    """Exchange a username and password for a new API token. Attempts are limited per client
    (guessing passwords is slow); a failed attempt is audited, and attempts refused by the limit
    are counted into one audit event per client and minute (a flood must not write the log)."""
    await limit_attempts(request)
    return await run_in_threadpool(_login, body, session, settings, hasher)


async def limit_attempts(request: Request) -> None:
    """429 once the client is over the password-attempt limit. Fails closed:
    `RateLimitUnavailable` (503) while the shared counter cannot be reached."""
    limiter = state.login_limiter(request)
    address = request.client.host if request.client else "unknown"
    retry = await limiter.hit(address)
    if retry is not None:
        state.refused_logins(request).count(address)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many login attempts: wait and try again",
            headers={"Retry-After": str(int(retry) + 1)},
        )


def refuse_login(session: Session, username: str, reason: str, via: str = "api") -> None:
    """Audit a refused login (through the API or the console, `via`), kept on record although
    the request fails; the typed name only if it is an account (it may be a password)."""
    known = account_exists(session, username)
    fields = {"event": "service.login", "outcome": "refused", "reason": reason}
    if known:
        logger.warning("login failed for %s: %s", username, reason, extra=fields)
    else:
        logger.warning("login failed for an unknown username: %s", reason, extra=fields)
    who = Actor(username if known else "unknown", 0, "staff")
    keep_events(session, [event(who, "service.login", via, outcome="refused", reason=reason)])


def _login(
    body: TokenRequest, session: Session, settings: Settings, hasher: PasswordHasher
) -> TokenResponse:
    account = authenticate(
        session,
        body.username,
        body.password.get_secret_value(),
        hasher=hasher,
    )
    if account is None:
        refuse_login(session, body.username, "wrong username or password")
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if account.must_set_password:
        refuse_login(session, body.username, "the holder has not set their own password yet")
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="this password only lets you set your own: POST /api/v1/auth/password",
        )
    if not account_backed(session, account):
        refuse_login(session, body.username, "account not granted")
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="this account is not granted yet: a security officer must approve it",
        )
    who = actor_of(account)
    text, issued = grant_token(session, who, account, settings.api_token_days, TOKEN_LOGIN)
    notices = exposure_notices(session, account)
    logger.info("login: %s received token %s", account.username, issued.token_id)
    return TokenResponse(
        token=text, token_id=issued.token_id, expires_at=issued.expires_at, notices=notices
    )


class PasswordChange(BaseModel):
    username: str = Field(max_length=64)
    password: SecretStr = Field(max_length=PASSWORD_MAX, description="the current password")
    new_password: SecretStr = Field(
        max_length=PASSWORD_MAX, description="at least 12 characters, chosen by the holder"
    )


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, responses=answers(401, 422, 429))
async def change_password(
    body: PasswordChange,
    request: Request,
    session: SessionDep,
    hasher: HasherDep,
) -> None:
    """Set one's own password. A new account's initial password (chosen by whoever proposed
    it) works here once and nowhere else. Limited per client like logins."""
    await limit_attempts(request)
    await run_in_threadpool(_change_password, body, session, hasher)


def _change_password(body: PasswordChange, session: Session, hasher: PasswordHasher) -> None:
    account = set_own_password(
        session,
        body.username,
        body.password.get_secret_value(),
        body.new_password.get_secret_value(),
        hasher=hasher,
    )
    if account is None:
        refuse_login(session, body.username, "wrong username or password")
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
