"""Types for the staff fixtures of `conftest.py`, importable by tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certsvc.service.accounts import Role
from certsvc.service.workstations import sign_request


@dataclass(frozen=True)
class StaffMember:
    """A staff account made for a test, with its secrets (a real person would hold them)."""

    username: str
    role: Role
    password: str
    token: str
    token_id: str
    workstation: str | None = None
    workstation_key: Ed25519PrivateKey | None = None

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
