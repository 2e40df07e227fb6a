"""`certsvc status`: what an operator checks each morning, in one command.

Database, USBKeys (present, locked, tries running low), signing sessions open, the audit log's
newest checkpoint, certificates and API tokens nearing expiry, refused and failed attempts since
yesterday. Exit 0 when nothing needs attention, 1 when something does (so a cron job or a
monitoring probe can run it); `--json` for machines.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.log import size
from audit.models import AuditEventRow
from audit.publish import latest_checkpoint
from certify.calendar_import import imported_disagreements, package_version
from certsvc.cli_output import make_console
from certsvc.db import make_engine, make_sessionmaker, require_current_schema
from certsvc.expiry import ALERT_ACTION, THRESHOLDS, expiring, raise_alerts
from certsvc.hsm import open_tokens
from certsvc.settings import Settings, get_settings
from common.dbtypes import utcnow
from common.errors import CertsvcError
from common.unit_of_work import unit_of_work
from signer.claims import SessionClaims
from signer.custody import list_tokens
from verify.outbox import backlog as outbox_backlog

console = make_console()
ALERT_WINDOW = timedelta(days=1)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
) -> None:
    """The service's state for its operator; exit 1 when something needs attention."""
    settings = get_settings()
    report = collect(settings)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _print(report)
    if report["attention"]:
        raise typer.Exit(1)


def collect(settings: Settings) -> dict[str, Any]:
    """Everything `status` shows, as plain data."""
    now = utcnow()
    attention: list[str] = []
    engine = make_engine(settings.resolved_database_url)
    try:
        require_current_schema(engine)
        sessions = make_sessionmaker(engine)
        with unit_of_work(sessions) as db:
            raise_alerts(db, now)
        with sessions() as db:
            report: dict[str, Any] = {
                "database": engine.dialect.name,
                "tokens": _tokens(db, sessions, settings, attention),
                "audit": _audit(db, now, settings, attention),
                "expiring": _expiring(db, now, attention),
                "calendar": _calendar(db, attention),
                "register_relay": _relay(db, settings, attention),
                "alerts_since_yesterday": _recent_alerts(db, now),
                "refused_or_failed_since_yesterday": _alerts(db, now),
            }
    finally:
        engine.dispose()
    report["attention"] = attention
    return report


def _tokens(
    db: Session, sessions: sessionmaker[Session], settings: Settings, attention: list[str]
) -> list[dict[str, Any]]:
    registered = list_tokens(db)
    try:
        present = {s.serial: s for s in open_tokens(settings, sessions).statuses()}
    except CertsvcError as exc:
        attention.append(f"token module: {exc}")
        present = {}
    claims = SessionClaims(settings.signing_claims_dir)
    answer = []
    for token in registered:
        state = present.get(token.serial)
        entry = {
            "label": token.label,
            "serial": token.serial,
            "present": state is not None,
            "pin_locked": bool(state and state.pin_locked),
            "pin_tries_low": bool(state and (state.pin_count_low or state.pin_final_try)),
            "session_open": claims.held_elsewhere(token.serial),
        }
        if state is None:
            attention.append(f"USBKey {token.label} is not inserted")
        elif entry["pin_locked"]:
            attention.append(f"USBKey {token.label}: PIN locked; its SO unblocks it")
        answer.append(entry)
    return answer


def _audit(db: Session, now: datetime, settings: Settings, attention: list[str]) -> dict[str, Any]:
    latest = latest_checkpoint(db)
    events = size(db)
    if latest is None:
        attention.append("audit log: no checkpoint signed yet")
        return {"events": events, "checkpoint_size": None, "checkpoint_age_seconds": None}
    age = (now - latest.signed_at).total_seconds()
    unsigned = events - latest.size
    # The checkpointer signs every N events or M seconds: far behind means it is not running.
    if unsigned > 0 and age > 10 * settings.audit_checkpoint_seconds:
        attention.append(
            f"audit log: {unsigned} events not checkpointed for {int(age // 60)} minutes"
        )
    return {"events": events, "checkpoint_size": latest.size, "checkpoint_age_seconds": int(age)}


def _expiring(db: Session, now: datetime, attention: list[str]) -> list[dict[str, Any]]:
    """What ends within 90 days; its last week needs attention."""
    soon = []
    for item in expiring(db, now):
        soon.append(
            {
                "what": item.what,
                "name": item.name,
                "expires": item.expires.isoformat(),
                "days_left": item.days_left,
                "warning": item.threshold,
            }
        )
        if item.threshold == min(THRESHOLDS):
            attention.append(f"{item.what} {item.name} expires in {item.days_left} days")
    return soon


def _calendar(db: Session, attention: list[str]) -> list[dict[str, Any]]:
    """Imported holiday schedules the installed chinese-calendar package contradicts; one not
    acknowledged at import (a newer package, typically) needs checking against the notice."""
    answer = []
    for item in imported_disagreements(db):
        answer.append(
            {
                "year": item.year,
                "source": item.source,
                "days": [day.isoformat() for day in item.days],
                "acknowledged": item.acknowledged,
            }
        )
        if not item.acknowledged:
            attention.append(
                f"calendar {item.year}: the imported schedule ({item.source}) and "
                f"chinese-calendar {package_version()} disagree on {len(item.days)} day(s) "
                f"(first {item.days[0].isoformat()}); check the notice and import it again"
            )
    return answer


def _relay(db: Session, settings: Settings, attention: list[str]) -> dict[str, Any]:
    """The register changes waiting for the relay; too old a backlog needs attention when a
    public database is configured (without one, nothing drains the outbox)."""
    waiting, age = outbox_backlog(db)
    lag = None if age is None else int(age.total_seconds())
    configured = settings.public_database_url is not None
    if configured and lag is not None and lag > settings.relay_lag_alert_seconds:
        attention.append(
            f"register relay: {waiting} change(s) not in the public database, the oldest for "
            f"{lag // 60} minutes (is `certsvc register relay` running?)"
        )
    return {"configured": configured, "backlog": waiting, "lag_seconds": lag}


def _recent_alerts(db: Session, now: datetime) -> list[str]:
    """The alerts recorded over the last day, as they read in the audit log."""
    rows = db.scalars(
        select(AuditEventRow)
        .where(
            AuditEventRow.action == ALERT_ACTION, AuditEventRow.occurred_at >= now - ALERT_WINDOW
        )
        .order_by(AuditEventRow.idx)
    )
    return [str(decode_leaf(row.leaf).get("reason", "")) for row in rows]


def _alerts(db: Session, now: datetime) -> dict[str, int]:
    """Refused and failed attempts per action over the last day (who and why: the audit log)."""
    rows = db.execute(
        select(AuditEventRow.action, func.count())
        .where(
            AuditEventRow.outcome.in_(("refused", "failed")),
            AuditEventRow.occurred_at >= now - ALERT_WINDOW,
        )
        .group_by(AuditEventRow.action)
    )
    return {action: int(count) for action, count in rows}


def _print(report: dict[str, Any]) -> None:
    console.print(f"database: {report['database']}")
    for token in report["tokens"]:
        state = "inserted" if token["present"] else "NOT INSERTED"
        if token["pin_locked"]:
            state += ", PIN LOCKED"
        elif token["pin_tries_low"]:
            state += ", few PIN tries left"
        if token["session_open"]:
            state += ", signing session open"
        console.print(f"USBKey {token['label']} ({token['serial']}): {state}")
    audit = report["audit"]
    if audit["checkpoint_size"] is None:
        console.print(f"audit log: {audit['events']} events, no checkpoint")
    else:
        console.print(
            f"audit log: {audit['events']} events; newest checkpoint at "
            f"{audit['checkpoint_size']}, {audit['checkpoint_age_seconds'] // 60} minutes old"
        )
    for item in report["expiring"]:
        console.print(f"expires in {item['days_left']} days: {item['what']} {item['name']}")
    for year in report["calendar"]:
        state = "acknowledged at import" if year["acknowledged"] else "NOT CHECKED"
        console.print(
            f"calendar {year['year']}: imported schedule and chinese-calendar differ on "
            f"{len(year['days'])} day(s), {state}"
        )
    relay = report["register_relay"]
    waited = "" if relay["lag_seconds"] is None else f", oldest {relay['lag_seconds']} s"
    relayed = "relay configured" if relay["configured"] else "no public database configured"
    console.print(f"register outbox: {relay['backlog']} waiting{waited} ({relayed})")
    for alert in report["alerts_since_yesterday"]:
        console.print(f"alert since yesterday: {alert}")
    for action, count in sorted(report["refused_or_failed_since_yesterday"].items()):
        console.print(f"refused or failed since yesterday: {action} × {count}")
    if report["attention"]:
        console.print("[red]needs attention:[/red]")
        for line in report["attention"]:
            console.print(f"  - {line}")
    else:
        console.print("[green]nothing needs attention[/green]")
