"""Dual control in one shape: a second natural person approves what another proposed. Used for
revocations (two officers approve), replaced criminal-record results, deadline overrides and
corrected conclusions, so that the rules — an officer, not an account or person who already
took part, once, audited — are written once and cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from audit.events import DetailValue
from audit.trail import record
from common.errors import Conflict
from signer.actor import OFFICER_ROLE, Actor


@dataclass(frozen=True)
class Party:
    """Someone who already took part: their account, the natural person holding it (None when
    the records kept only the account) and what they did ("asked it", "recorded it", …)."""

    username: str
    did: str
    person: str | None = None


@dataclass(frozen=True)
class Approval:
    """What is approved (for messages), who took part before, who approved it already (for an
    approval given once), and the audit event the approval leaves."""

    what: str
    earlier: Iterable[Party]
    action: str
    obj: str
    approved_by: str | None = None
    reason: str = ""
    document_sha256: str | None = None
    details: Mapping[str, DetailValue] | None = None


class NotSecondPerson(Conflict):
    """The approver may not approve this: not an officer, or not a second person."""


def approve_as_second(db: Session, actor: Actor, approval: Approval) -> None:
    """Refuse unless `actor` may approve now, then record the approval's audit event in `db`'s
    transaction (the caller's change commits with it or not at all)."""
    if actor.role != OFFICER_ROLE:
        raise NotSecondPerson(f"only an officer approves {approval.what}")
    if approval.approved_by is not None:
        raise NotSecondPerson(f"{approval.what}: approved already by {approval.approved_by}")
    for party in approval.earlier:
        if party.username == actor.username:
            raise NotSecondPerson(
                f"{approval.what}: a second officer approves, not the one who {party.did}"
            )
        if actor.person is not None and party.person == actor.person:
            raise NotSecondPerson(
                f"{approval.what}: you {party.did} from another account of yours; a second "
                f"person approves"
            )
    record(
        db,
        actor,
        approval.action,
        approval.obj,
        reason=approval.reason,
        document_sha256=approval.document_sha256,
        details=approval.details,
    )
