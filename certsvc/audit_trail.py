"""Who acts, as the service names them in the audit log (`audit.trail`): a staff account (and
the workstation that proved its request), or the person at the server's shell."""

from __future__ import annotations

import getpass

from certsvc.accounts import StaffAccount
from certsvc.workstations import Workstation
from signer.actor import Actor

SYSTEM_ROLE = "system"
# `certsvc init` provisioning: grants the first accounts and tokens, asks the signing gate for
# what provisioning signs.
INIT_PROVISIONER = Actor(username="certsvc-init", account_id=0, role=SYSTEM_ROLE)


def operator() -> str:
    """The person at the server's shell, for CLI actions: the OS account running it."""
    try:
        return f"os:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "os:unknown"


def operator_actor() -> Actor:
    """The shell's operator as an actor: no staff account behind it (id 0)."""
    return Actor(operator(), 0, SYSTEM_ROLE)


def actor_of(account: StaffAccount, workstation: Workstation | None = None) -> Actor:
    """The authenticated staff member (and the workstation that proved the request)."""
    return Actor(
        username=account.username,
        account_id=account.id,
        role=account.role.value,
        workstation=workstation.name if workstation is not None else None,
        person=account.person,
    )
