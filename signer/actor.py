"""Who acts on the signer, as the service authenticated them: the signer trusts these facts
and records them, but never looks up accounts itself (it must not import the service)."""

from __future__ import annotations

from dataclasses import dataclass

CUSTODIAN_ROLE = "custodian"
OFFICER_ROLE = "officer"


@dataclass(frozen=True)
class Actor:
    """A staff member: username, account id, role, the workstation that proved the request
    (None for requests not signed by a workstation) and the natural person holding the account
    (None for the service's own actors), whom dual control and limits count."""

    username: str
    account_id: int
    role: str
    workstation: str | None = None
    person: str | None = None
