"""Response models shared by several routers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from certsvc.service.accounts import Role


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
