"""What any staff member may see and do about their own account and tokens."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict

from audit.trail import record
from certsvc.accounts import list_api_tokens, revoke_api_token
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep, StaffDep
from certsvc.routes.schemas import SIGNED_IN, StaffOut, answers

router = APIRouter(prefix="/api/v1/staff", tags=["staff"], responses=SIGNED_IN)


class ApiTokenOut(BaseModel):
    """An API token's public record; the token itself is never shown again."""

    model_config = ConfigDict(from_attributes=True)

    token_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@router.get("/me")
def me(account: StaffDep) -> StaffOut:
    """The account behind the bearer token."""
    return StaffOut.model_validate(account)


@router.get("/me/tokens")
def my_tokens(account: StaffDep, session: SessionDep) -> list[ApiTokenOut]:
    """Every API token of the account, revoked and expired ones included."""
    return [ApiTokenOut.model_validate(token) for token in list_api_tokens(session, account)]


@router.delete(
    "/me/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=answers(404)
)
def revoke_my_token(token_id: str, account: StaffDep, session: SessionDep) -> Response:
    """Revoke one of the account's own tokens (404 for any other)."""
    revoke_api_token(session, token_id, account=account)
    record(session, actor_of(account), "service.api_token.revoke", token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
