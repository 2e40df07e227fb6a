"""Types for the staff fixtures of `conftest.py`, importable by tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from certsvc.accounts import Role
from certsvc.workstations import WorkstationPrivateKey, load_workstation_key, sign_request


@dataclass(frozen=True)
class StaffMember:
    """A staff account made for a test, with its secrets (a real person would hold them)."""

    username: str
    role: Role
    password: str
    token: str
    token_id: str
    workstation: str | None = None
    workstation_key: WorkstationPrivateKey | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def signed(
        self, method: str, path: str, body: bytes = b"", now: float | None = None
    ) -> dict[str, str]:
        """Authorization plus the workstation's signature headers for this request."""
        assert self.workstation is not None and self.workstation_key is not None
        authorization = self.auth["Authorization"]
        proof = sign_request(
            self.workstation_key, self.workstation, method, path, body, authorization, now
        )
        return {**self.auth, **proof}


MakeStaff = Callable[..., StaffMember]


def demo_member(
    secrets: dict[str, Any], username: str, workstation: str | None = None
) -> StaffMember:
    """A demo account from `certsvc init`'s credentials file, with its workstation key."""
    account = secrets["accounts"][username]
    key: WorkstationPrivateKey | None = None
    if workstation is not None:
        key = load_workstation_key(secrets["workstations"][workstation]["private_key"])
    return StaffMember(
        username=username,
        role=Role(account["role"]),
        password=account["password"],
        token=account["api_token"],
        token_id="",
        workstation=workstation,
        workstation_key=key,
    )
