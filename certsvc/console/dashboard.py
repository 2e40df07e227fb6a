"""The security officer's dashboard: the key report (`audit.query.key_usage`, as
`GET /api/v1/audit/report/keys` answers it) and the alerts (`audit.query.alerts`), laid out per
key and day with a chart drawn on the server as SVG geometry (no script on the page)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.events import decode_leaf
from audit.query import KeyUsage, alerts, key_usage
from signer.models import SigningKey

DAYS = 14
CHART_WIDTH = 560
CHART_HEIGHT = 140
CHART_BASE = 120  # the bars' baseline; the day labels sit below it


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


def _days(since: date) -> list[date]:
    return [since + timedelta(days=n) for n in range(DAYS)]


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
    panel.peak = max([row.made + row.refused for row in panel.days] + [1])
    slot = CHART_WIDTH / len(days)
    scale = (CHART_BASE - 10) / panel.peak
    for n, row in enumerate(panel.days):
        x = n * slot + slot * 0.15
        width = slot * 0.35
        for offset, count, kind in ((0.0, row.made, "made"), (width, row.refused, "refused")):
            height = count * scale
            panel.bars.append(
                Bar(x + offset, CHART_BASE - height, width, height, kind, f"{row.day}: {count}")
            )
        if n % 2 == 0:
            panel.labels.append((n * slot + slot / 2, row.day[5:]))
    return panel


def build(db: Session, today: date | None = None) -> Dashboard:
    """The last `DAYS` UTC days up to `today`: each key's panel (keys on record first, then any
    other key the log names), the tokens' session counts, the alerts."""
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
    for row in alerts(db, since, None):
        leaf = decode_leaf(row.leaf)
        rows.append(
            AlertRow(
                row.idx,
                row.occurred_at.strftime("%Y-%m-%d %H:%M UTC"),
                row.action,
                str(leaf.get("actor", "")),
                row.object,
                str(leaf.get("reason", "")),
            )
        )
    return Dashboard(days[0], days[-1], panels, tokens, rows)
