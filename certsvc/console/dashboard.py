"""The security officer's dashboard: the key report (`audit.query.key_usage`, as
`GET /api/v1/audit/report/keys` answers it), reveals and lookups per person, failed sign-ins and
refused workstation proofs, and the alerts (`audit.query.alerts`), laid out per day with charts
drawn on the server as SVG geometry (no script on the page) and their numbers in tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.events import decode_leaf
from audit.query import (
    WATCHED_REFUSALS,
    AlertPolicy,
    KeyUsage,
    PersonDay,
    alert_kind,
    alerts,
    key_usage,
    people_per_day,
    refusals_per_day,
)
from signer.models import SigningKey

DAYS = 14
CHART_WIDTH = 560
CHART_HEIGHT = 140
CHART_BASE = 120  # the bars' baseline; the day labels sit below it
COLOURS = {
    "made": "#15803d",
    "refused": "#b91c1c",
    "reveals": "#1d4ed8",
    "lookups": "#0f766e",
    "misses": "#b91c1c",
    "sign-in": "#b45309",
    "workstation": "#7e22ce",
}


@dataclass(frozen=True)
class DayRow:
    day: str
    made: int
    refused: int
    rules: str  # "rule ×n" for each rule that refused that day


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # "made" | "refused"
    title: str


@dataclass
class KeyPanel:
    name: str
    purpose: str = ""
    used: int | None = None
    limit: int | None = None
    days: list[DayRow] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    labels: list[tuple[float, str]] = field(default_factory=list)
    peak: int = 0

    @property
    def used_percent(self) -> int | None:
        if self.used is None or not self.limit:
            return None
        return min(100, round(100 * self.used / self.limit))


@dataclass(frozen=True)
class AlertRow:
    index: int
    occurred_at: str
    kind: str
    action: str
    actor: str
    object: str
    reason: str


@dataclass(frozen=True)
class Dashboard:
    since: date
    until: date
    keys: list[KeyPanel]
    tokens: list[KeyUsage]
    alerts: list[AlertRow]
    people: list[PersonDay]
    people_chart: Chart
    refusals: list[tuple[str, dict[str, int]]]  # (day, label → count), days with any
    refusals_chart: Chart


def _days(since: date) -> list[date]:
    return [since + timedelta(days=n) for n in range(DAYS)]


@dataclass(frozen=True)
class Chart:
    """A bar chart of counts per day, drawn on the server: one bar per series and day."""

    bars: list[Bar]
    labels: list[tuple[float, str]]
    peak: int


def chart(days: list[str], series: list[tuple[str, list[int]]]) -> Chart:
    """Bars for each (kind, count per day) series, side by side within a day's slot."""
    peak = max([sum(counts[n] for _, counts in series) for n in range(len(days))] + [1])
    slot = CHART_WIDTH / len(days)
    scale = (CHART_BASE - 10) / peak
    width = slot * 0.7 / len(series)
    bars, labels = [], []
    for n, day in enumerate(days):
        x = n * slot + slot * 0.15
        for offset, (kind, counts) in enumerate(series):
            height = counts[n] * scale
            bars.append(
                Bar(
                    x + offset * width,
                    CHART_BASE - height,
                    width,
                    height,
                    kind,
                    f"{day}: {counts[n]}",
                )
            )
        if n % 2 == 0:
            labels.append((n * slot + slot / 2, day[5:]))
    return Chart(bars, labels, peak)


def _panel(name: str, usage: KeyUsage | None, key: SigningKey | None, days: list[date]) -> KeyPanel:
    panel = KeyPanel(name)
    if key is not None:
        panel.purpose = key.purpose.value
        panel.used, panel.limit = key.usage_count, key.usage_limit
    made = usage.signatures_per_day if usage else {}
    refused = usage.refused_per_day if usage else {}
    for day in days:
        text = day.isoformat()
        rules = refused.get(text, {})
        panel.days.append(
            DayRow(
                text,
                made.get(text, 0),
                sum(rules.values()),
                ", ".join(f"{rule} ×{n}" for rule, n in rules.items()),
            )
        )
    drawn = chart(
        [row.day for row in panel.days],
        [
            ("made", [row.made for row in panel.days]),
            ("refused", [row.refused for row in panel.days]),
        ],
    )
    panel.bars, panel.labels, panel.peak = drawn.bars, drawn.labels, drawn.peak
    return panel


def build(db: Session, policy: AlertPolicy, today: date | None = None) -> Dashboard:
    """The last `DAYS` UTC days up to `today`: each key's panel (keys on record first, then any
    other key the log names), the tokens' session counts, the alerts `policy` raises."""
    today = today or datetime.now(UTC).date()
    days = _days(today - timedelta(days=DAYS - 1))
    since = datetime.combine(days[0], time(), UTC)
    usages = key_usage(db, since, None)
    by_name = {usage.object: usage for usage in usages}
    keys = {
        f"{key.token_serial}/{key.label}": key
        for key in db.scalars(select(SigningKey).order_by(SigningKey.id))
    }
    # A key is `<token>/<label>`; a token's own events (registered, sessions) name no key.
    names = list(keys) + [n for n in by_name if n not in keys and "/" in n]
    panels = [_panel(name, by_name.get(name), keys.get(name), days) for name in names]
    tokens = [usage for usage in usages if usage.object.startswith("token:")]
    rows = []
    for row in alerts(db, since, None, policy):
        leaf = decode_leaf(row.leaf)
        rows.append(
            AlertRow(
                row.idx,
                row.occurred_at.strftime("%Y-%m-%d %H:%M UTC"),
                alert_kind(row, policy),
                row.action,
                str(leaf.get("actor", "")),
                row.object,
                str(leaf.get("reason", "")),
            )
        )
    names_of_days = [day.isoformat() for day in days]
    people = people_per_day(db, since, None)
    per_day = {day: [p for p in people if p.day == day] for day in names_of_days}
    people_chart = chart(
        names_of_days,
        [
            ("reveals", [sum(p.reveals for p in per_day[day]) for day in names_of_days]),
            ("lookups", [sum(p.lookups for p in per_day[day]) for day in names_of_days]),
            ("misses", [sum(p.misses for p in per_day[day]) for day in names_of_days]),
        ],
    )
    refused = refusals_per_day(db, since, None)
    labels = [label for _, label in WATCHED_REFUSALS]
    refusals = [
        (day, {label: refused[label][day] for label in labels})
        for day in names_of_days
        if any(refused[label][day] for label in labels)
    ]
    refusals_chart = chart(
        names_of_days, [(label, [refused[label][day] for day in names_of_days]) for label in labels]
    )
    return Dashboard(
        days[0], days[-1], panels, tokens, rows, people, people_chart, refusals, refusals_chart
    )
