"""Certify's audit events: who did what to which case, in the caller's transaction (fail
closed). Objects are case ids and numbers, never a personal value."""

from __future__ import annotations

from sqlalchemy.orm import Session

from audit.events import AuditEvent, DetailValue
from audit.log import append
from signer.actor import Actor


def audit(
    db: Session, actor: Actor, action: str, subject: str, reason: str = "", **details: DetailValue
) -> None:
    append(
        db,
        AuditEvent(
            actor=actor.username,
            role=actor.role,
            action=action,
            object=subject,
            outcome="ok",
            workstation=actor.workstation,
            reason=reason[:500],
            details=details,
        ),
    )
