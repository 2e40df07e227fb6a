"""Response models shared by several routers, and the error answers every route documents
(one definition: a route or router names the status codes it gives with `answers(...)`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from certsvc.accounts import Role

# A USBKey as people name it: by the label printed on it (USBKEY-01) or the serial its module
# reports; signer.custody.find_token resolves either.
TokenName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]*$",
        description="the USBKey's label (e.g. USBKEY-01) or its serial",
    ),
]


class StaffOut(BaseModel):
    """A staff account as shown to its holder and to admins; never its password hash."""

    model_config = ConfigDict(from_attributes=True)

    username: str
    display_name: str
    role: Role
    active: bool
    created_at: datetime


class WorkstationOut(BaseModel):
    """A registered workstation; the key is shown only as its fingerprint."""

    name: str
    custodian: str = Field(description="username of the custodian answering for it")
    active: bool
    registered_at: datetime
    public_key_fingerprint: str = Field(description="first 16 hex digits of SHA-256(raw key)")


class ErrorOut(BaseModel):
    """A refusal: one line naming the field or object at fault, never a secret or a value."""

    detail: str


class ForbiddenOut(ErrorOut):
    """403: the caller's role, custody or session does not allow this, or the signing policy
    refused it (naming the rule), or the PIN was wrong (with the tries left)."""

    rule: str | None = Field(default=None, description="the signing-policy rule that refused")
    tries_left: int | None = Field(default=None, description="after a wrong PIN")


class FieldErrorOut(BaseModel):
    """Where a request breaks its schema and what is wrong; the offending value is not
    echoed."""

    loc: list[str | int]
    msg: str
    type: str


class InvalidRequestOut(BaseModel):
    """422: a list of fields breaking the request's schema, or one line naming the rule a
    value breaks."""

    detail: str | list[FieldErrorOut]


def _error(model: type[BaseModel], description: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "description": description, **extra}


def _header(description: str, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


ERROR_ANSWERS: dict[int, dict[str, Any]] = {
    400: _error(
        ErrorOut,
        "an API token in the URL (refused outright: revoke it), or a refusal without a status"
        " of its own",
    ),
    401: _error(
        ErrorOut,
        "no valid API token, or (custodian routes) no valid workstation signature",
        headers={"WWW-Authenticate": _header("Bearer, or Certsvc-Signature")},
    ),
    403: _error(ForbiddenOut, "not allowed to the caller (role, custody, session, policy, PIN)"),
    404: _error(ErrorOut, "an object named in the request does not exist"),
    409: _error(ErrorOut, "the request clashes with the current state (or the USBKey's)"),
    413: _error(ErrorOut, "the request body is larger than the service accepts"),
    422: _error(InvalidRequestOut, "the request breaks its schema or a rule"),
    423: _error(ErrorOut, "the USBKey's PIN is locked"),
    429: _error(
        ErrorOut,
        "too many requests of this kind from this client or person",
        headers={"Retry-After": _header("seconds to wait")},
    ),
    503: _error(
        ErrorOut,
        "the database, a USBKey, the vault's keys or the audit log cannot be used now, or what"
        " the request did could not be stored: nothing of it was done",
        headers={"Retry-After": _header("seconds to wait", False)},
    ),
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers for `codes`, for a route's or a router's `responses`."""
    return {code: ERROR_ANSWERS[code] for code in codes}


# What every route behind a bearer token may answer (each reads the database, and 503 is the
# answer while it is down), and every route that also needs a role.
SIGNED_IN = answers(400, 401, 413, 422, 503)
ROLE_GATED = answers(400, 401, 403, 413, 422, 503)
