"""Signer acts as audit events, appended in the caller's transaction (fail closed: the act and
its event commit together or not at all)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from audit.events import AuditEvent, DetailValue
from audit.log import append
from signer.actor import Actor


def actor_event(
    actor: Actor,
    action: str,
    obj: str,
    outcome: str = "ok",
    reason: str = "",
    document_sha256: str | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> AuditEvent:
    """The event of `actor`'s act, for `append` or `append_many`."""
    return AuditEvent(
        actor=actor.username,
        role=actor.role,
        action=action,
        object=obj,
        outcome=outcome,
        workstation=actor.workstation,
        reason=reason,
        document_sha256=document_sha256,
        details=dict(details or {}),
    )


def record(
    db: Session,
    actor: Actor,
    action: str,
    obj: str,
    outcome: str = "ok",
    reason: str = "",
    document_sha256: str | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> int:
    """Append one event for `actor`'s act; its index in the log."""
    return append(db, actor_event(actor, action, obj, outcome, reason, document_sha256, details))
