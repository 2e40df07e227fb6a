"""What security officers ask of the log: filtered pages of events, and per-key usage."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from audit.events import decode_leaf
from audit.merkle import leaf_hash
from audit.models import AuditEventRow

MAX_PAGE = 500


@dataclass(frozen=True)
class EventFilter:
    actor: str | None = None
    action: str | None = None
    # Any of these names; a thing the log calls by several (a USBKey: its serial, its keys
    # `SERIAL/label`, its sessions `token:SERIAL`) is searched by all of them.
    objects: tuple[str, ...] = ()
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def query_events(
    db: Session, where: EventFilter, after: int = -1, limit: int = 100
) -> list[AuditEventRow]:
    """Events matching `where`, in log order, starting after index `after` (keyset paging).

    Each of `objects` matches exactly or as a prefix up to a '/' (a token serial finds its
    keys)."""
    query = select(AuditEventRow).where(AuditEventRow.idx > after)
    if where.actor:
        query = query.where(AuditEventRow.actor == where.actor)
    if where.action:
        query = query.where(
            or_(
                AuditEventRow.action == where.action,
                AuditEventRow.action.startswith(where.action + ".", autoescape=True),
            )
        )
    if where.objects:
        query = query.where(
            or_(
                *(
                    condition
                    for name in where.objects
                    for condition in (
                        AuditEventRow.object == name,
                        AuditEventRow.object.startswith(name + "/", autoescape=True),
                    )
                )
            )
        )
    if where.outcome:
        query = query.where(AuditEventRow.outcome == where.outcome)
    if where.since:
        query = query.where(AuditEventRow.occurred_at >= where.since)
    if where.until:
        query = query.where(AuditEventRow.occurred_at < where.until)
    limit = max(1, min(limit, MAX_PAGE))
    return list(db.scalars(query.order_by(AuditEventRow.idx).limit(limit)))


def ok_leaves(
    db: Session, actions: Sequence[str], objects: Sequence[str] | None = None
) -> dict[tuple[str, str], list[dict[str, object]]]:
    """The leaves of the ok events of `actions` (on `objects`, or all), by (action, object), in
    log order: what was recorded when each act was done, to hold the records against later. A
    leaf that no longer hashes to its stored hash is left out (`audit verify` names it)."""
    query = select(
        AuditEventRow.action, AuditEventRow.object, AuditEventRow.leaf, AuditEventRow.leaf_hash
    ).where(AuditEventRow.action.in_(actions), AuditEventRow.outcome == "ok")
    if objects is not None:
        query = query.where(AuditEventRow.object.in_(objects))
    found: dict[tuple[str, str], list[dict[str, object]]] = {}
    for action, obj, leaf, stored in db.execute(query.order_by(AuditEventRow.idx)):
        if leaf_hash(leaf) == stored:
            found.setdefault((action, obj), []).append(decode_leaf(leaf))
    return found


def event_range(db: Session, since: datetime | None, until: datetime | None) -> tuple[int, int]:
    """The index range [start, end) of the events in a time range."""
    first = select(func.min(AuditEventRow.idx))
    last = select(func.max(AuditEventRow.idx))
    if since:
        first = first.where(AuditEventRow.occurred_at >= since)
        last = last.where(AuditEventRow.occurred_at >= since)
    if until:
        first = first.where(AuditEventRow.occurred_at < until)
        last = last.where(AuditEventRow.occurred_at < until)
    start, end = db.scalar(first), db.scalar(last)
    if start is None or end is None:
        return 0, 0
    return int(start), int(end) + 1


@dataclass
class KeyUsage:
    object: str
    signatures_per_day: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    sessions: int = 0
    pin_failures: int = 0
    # Day → rule that refused (the event's reason) → attempts.
    refused_per_day: dict[str, dict[str, int]] = field(default_factory=dict)


def _key_name(action: str, obj: str, leaf: dict[str, object]) -> str:
    """What a signer event is about: a signature names its key in its details
    (`<token>/<label>`, its object being the document); other events by their object."""
    details = leaf.get("details")
    if action.startswith("signer.sign") and isinstance(details, dict):
        token, label = details.get("token"), details.get("key")
        if isinstance(token, str) and isinstance(label, str):
            return f"{token}/{label}"
    return obj


def key_usage(db: Session, since: datetime | None, until: datetime | None) -> list[KeyUsage]:
    """Per key (signatures) and per token (session events): signatures per day, refused
    attempts (per day and rule), sessions opened, wrong PINs. Days are UTC dates."""
    query = select(AuditEventRow).where(AuditEventRow.action.startswith("signer."))
    if since:
        query = query.where(AuditEventRow.occurred_at >= since)
    if until:
        query = query.where(AuditEventRow.occurred_at < until)
    report: dict[str, KeyUsage] = {}
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    refused_per_day: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for row in db.scalars(query.order_by(AuditEventRow.idx).execution_options(yield_per=1000)):
        leaf = decode_leaf(row.leaf)
        name = _key_name(row.action, row.object, leaf)
        usage = report.setdefault(name, KeyUsage(name))
        day = row.occurred_at.date().isoformat()
        if row.outcome == "refused":
            usage.refused += 1
            reason = str(leaf.get("reason", ""))
            refused_per_day[name][day][reason] += 1
            if "pin" in reason.lower():
                usage.pin_failures += 1
        elif row.action.startswith("signer.session.open"):
            usage.sessions += 1
        elif row.action.startswith("signer.sign") and row.outcome == "ok":
            per_day[name][day] += 1
    for name, days in per_day.items():
        report[name].signatures_per_day = dict(sorted(days.items()))
    for name, refusals in refused_per_day.items():
        report[name].refused_per_day = {
            day: dict(sorted(rules.items())) for day, rules in sorted(refusals.items())
        }
    return [report[name] for name in sorted(report)]


ALERT_ACTIONS = ("security.alert", "service.grant.refused")


def alerts(db: Session, since: datetime | None, until: datetime | None) -> list[AuditEventRow]:
    """Events a security officer must act on: alerts (such as many lookup misses by one
    person) and privileges refused because no grant event backs them, oldest first."""
    query = select(AuditEventRow).where(AuditEventRow.action.in_(ALERT_ACTIONS))
    if since:
        query = query.where(AuditEventRow.occurred_at >= since)
    if until:
        query = query.where(AuditEventRow.occurred_at < until)
    return list(db.scalars(query.order_by(AuditEventRow.idx)))
