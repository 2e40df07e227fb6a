"""Staff and operator actions as audit events: who (account or OS user), under which role."""

from __future__ import annotations

import getpass

from sqlalchemy.orm import Session

from audit.events import AuditEvent, DetailValue
from audit.log import append
from certsvc.accounts import StaffAccount

SYSTEM_ROLE = "system"


def operator() -> str:
    """The person at the server's shell, for CLI actions: the OS account running it."""
    try:
        return f"os:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "os:unknown"


def record(
    db: Session,
    actor: StaffAccount | None,
    action: str,
    subject: str,
    outcome: str = "ok",
    reason: str = "",
    workstation: str | None = None,
    **details: DetailValue,
) -> None:
    """Append the event in `db`'s transaction: it commits with the action or not at all.
    With no account, the actor is the shell's operator."""
    name, role = (actor.username, actor.role.value) if actor else (operator(), SYSTEM_ROLE)
    append(
        db,
        AuditEvent(
            actor=name,
            role=role,
            action=action,
            object=subject,
            outcome=outcome,
            workstation=workstation,
            reason=reason,
            details=details,
        ),
    )
