"""What security officers ask of the log: filtered pages of events, and per-key usage."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import ColumnElement, func, or_, select
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


# Events that are alerts in themselves: security alerts (many lookup misses by one person),
# privileges no grant event backs, certificates nearing expiry, witnesses short of a quorum.
ALERT_ACTIONS = ("security.alert", "service.grant.refused", "alert.expiry", "audit.witness.quorum")
OFFICE_ZONE = timezone(timedelta(hours=8), "CST")
# The role whose signatures are people's work (`certsvc.accounts.Role.CUSTODIAN`); the
# service's own (checkpoints, register proofs, provisioning) are made at any hour.
SIGNING_ROLE = "custodian"
# Signer refusals saying a token is locked or gone (`signer.errors`).
_TOKEN_TROUBLE = ("locked", "not inserted", "stopped answering")


def _weekday(day: date) -> bool:
    return day.weekday() < 5


@dataclass(frozen=True)
class AlertPolicy:
    """What is unusual enough to show: a custodian's signature outside office hours (China
    Standard Time, on working days), and the reveal that brings one person's UTC day to
    `reveal_spike`. The working days are the caller's: the certifying body's calendar knows
    the holidays and the weekends worked in their place, which Monday-to-Friday does not."""

    office_hours: tuple[int, int] = (8, 18)
    reveal_spike: int = 50
    working_day: Callable[[date], bool] = _weekday

    def outside_office_hours(self, moment: datetime) -> bool:
        local = moment.astimezone(OFFICE_ZONE)
        opens, closes = self.office_hours
        return not self.working_day(local.date()) or not opens <= local.hour < closes


def alert_kind(row: AuditEventRow, policy: AlertPolicy = AlertPolicy()) -> str:
    """Why an event of `alerts` is one, in a few words."""
    if row.action == "signer.sign" and row.outcome == "ok":
        return "signing outside office hours"
    if row.action == "vault.reveal":
        return f"reveal spike ({policy.reveal_spike} in a day)"
    if row.action.startswith("signer."):
        return "token locked or removed"
    if row.action.startswith("audit."):
        return "checkpoint or witness failure"
    return {
        "security.alert": "security alert",
        "service.grant.refused": "privilege without grant",
        "alert.expiry": "certificate expiring",
    }.get(row.action, row.action)


def _within(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """The conditions keeping events in [since, until)."""
    found = []
    if since:
        found.append(AuditEventRow.occurred_at >= since)
    if until:
        found.append(AuditEventRow.occurred_at < until)
    return found


def alerts(
    db: Session,
    since: datetime | None,
    until: datetime | None,
    policy: AlertPolicy = AlertPolicy(),
) -> list[AuditEventRow]:
    """Events a security officer must act on, oldest first: alert events (`ALERT_ACTIONS`),
    failed checkpoint or witness steps, signer refusals for a locked or removed token, and
    what `policy` finds unusual: custodians' signatures outside office hours, and the reveal
    that brings a person's day to its spike."""
    within = _within(since, until)
    alerting = or_(
        AuditEventRow.action.in_(ALERT_ACTIONS),
        AuditEventRow.action.startswith("audit.") & (AuditEventRow.outcome == "failed"),
    )
    found = list(db.scalars(select(AuditEventRow).where(alerting, *within)))
    signer = select(AuditEventRow).where(
        AuditEventRow.action.startswith("signer."), AuditEventRow.outcome != "ok", *within
    )
    for row in db.scalars(signer.execution_options(yield_per=1000)):
        reason = str(decode_leaf(row.leaf).get("reason", "")).lower()
        if any(word in reason for word in _TOKEN_TROUBLE):
            found.append(row)
    signed = select(AuditEventRow).where(
        AuditEventRow.action == "signer.sign", AuditEventRow.outcome == "ok", *within
    )
    found += [
        row
        for row in db.scalars(signed.execution_options(yield_per=1000))
        if policy.outside_office_hours(row.occurred_at)
        and decode_leaf(row.leaf).get("role") == SIGNING_ROLE
    ]
    reveals: Counter[tuple[str, str]] = Counter()
    revealed = select(AuditEventRow).where(
        AuditEventRow.action == "vault.reveal", AuditEventRow.outcome == "ok", *within
    )
    for row in db.scalars(revealed.order_by(AuditEventRow.idx).execution_options(yield_per=1000)):
        person_day = (row.actor, row.occurred_at.date().isoformat())
        reveals[person_day] += 1
        if reveals[person_day] == policy.reveal_spike:
            found.append(row)
    return sorted(found, key=lambda row: row.idx)


@dataclass
class PersonDay:
    """One person's reveals and lookups in one UTC day: values revealed, values looked up,
    lookup misses, and reveals or lookups refused."""

    actor: str
    day: str
    reveals: int = 0
    lookups: int = 0
    misses: int = 0
    refused: int = 0


def people_per_day(db: Session, since: datetime | None, until: datetime | None) -> list[PersonDay]:
    """Reveals and lookups per person and UTC day, by day then person."""
    query = select(AuditEventRow).where(
        AuditEventRow.action.in_(("vault.reveal", "vault.lookup")), *_within(since, until)
    )
    found: dict[tuple[str, str], PersonDay] = {}
    for row in db.scalars(query.execution_options(yield_per=1000)):
        day = row.occurred_at.date().isoformat()
        entry = found.setdefault((day, row.actor), PersonDay(row.actor, day))
        if row.outcome != "ok":
            entry.refused += 1
        elif row.action == "vault.reveal":
            entry.reveals += 1
        else:
            details = decode_leaf(row.leaf).get("details")
            if isinstance(details, dict):
                entry.lookups += _count(details.get("values"))
                entry.misses += _count(details.get("misses"))
    return [found[key] for key in sorted(found)]


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


# Refusals a security officer watches: (action, label).
WATCHED_REFUSALS = (("service.login", "sign-in"), ("service.workstation_proof", "workstation"))


def refusals_per_day(
    db: Session, since: datetime | None, until: datetime | None
) -> dict[str, Counter[str]]:
    """Failed sign-ins (API and console) and refused workstation proofs: label → UTC day →
    count."""
    labels = dict(WATCHED_REFUSALS)
    query = select(AuditEventRow.action, AuditEventRow.occurred_at).where(
        AuditEventRow.action.in_(labels), AuditEventRow.outcome == "refused", *_within(since, until)
    )
    found: dict[str, Counter[str]] = {label: Counter() for label in labels.values()}
    for action, occurred_at in db.execute(query):
        found[labels[action]][occurred_at.date().isoformat()] += 1
    return found
