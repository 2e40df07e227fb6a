"""Who did what, as an audit event: the one helper every package records its acts with.

The event is appended in the caller's transaction (`record`), so the act and its event commit
together or not at all (fail closed); `event` builds one for `append_many`. A refused or failed
attempt is recorded with `keep_events`: it stays on record although its unit of work rolls
back (`common.unit_of_work.keep`). Objects are ids, numbers, serials and tokens, never a
personal value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy.orm import Session

from audit.events import REASON_MAX, AuditEvent, DetailValue
from audit.log import append, append_many
from common.unit_of_work import keep


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


def keep_events(db: Session, events: Sequence[AuditEvent]) -> None:
    """Append `events` in `db`'s unit of work, and again on their own should it roll back:
    refusals and failures stay on record whatever becomes of the action they refused."""
    if events:
        frozen = tuple(events)
        keep(db, lambda into: append_many(into, frozen))
