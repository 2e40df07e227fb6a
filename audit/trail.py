"""Who did what, as an audit event: the one helper every package records its acts with.

The event is appended in the caller's transaction (`record`), so the act and its event commit
together or not at all (fail closed); `event` builds one for `append_many`. Objects are ids,
numbers, serials and tokens, never a personal value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sqlalchemy.orm import Session

from audit.events import REASON_MAX, AuditEvent, DetailValue
from audit.log import append


class Attributed(Protocol):
    """Who acts, as the log names them: an account (or a service's own name), its duty, and
    the workstation that proved the request (None when none did)."""

    @property
    def username(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def workstation(self) -> str | None: ...


def event(
    who: Attributed,
    action: str,
    obj: str,
    *,
    outcome: str = "ok",
    reason: str = "",
    document_sha256: str | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> AuditEvent:
    """The event of `who`'s act on `obj`; a long reason is cut to what an event holds."""
    return AuditEvent(
        actor=who.username,
        role=who.role,
        action=action,
        object=obj,
        outcome=outcome,
        workstation=who.workstation,
        reason=reason[:REASON_MAX],
        document_sha256=document_sha256,
        details=dict(details or {}),
    )


def record(
    db: Session,
    who: Attributed,
    action: str,
    obj: str,
    *,
    outcome: str = "ok",
    reason: str = "",
    document_sha256: str | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> int:
    """Append the event of `who`'s act in `db`'s transaction; its index in the log."""
    return append(
        db,
        event(
            who,
            action,
            obj,
            outcome=outcome,
            reason=reason,
            document_sha256=document_sha256,
            details=details,
        ),
    )
