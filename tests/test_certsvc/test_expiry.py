"""Expiry warnings at 90, 30 and 7 days: one audit alert per object and threshold, shown by
`certsvc status` and counted on the staff service's `/healthz` (never turning it to 503)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from certsvc.accounts import Role, create_account, issue_api_token, password_hasher
from certsvc.app import create_app
from certsvc.cli_status import collect
from certsvc.expiry import ALERT_ACTION, raise_alerts
from certsvc.settings import Settings
from common.dbtypes import utcnow
from init_cache import initialised
from signer.models import KeyPurpose, SigningKey


def _alerts(db: Session) -> list[str]:
    rows = db.scalars(select(AuditEventRow.object).where(AuditEventRow.action == ALERT_ACTION))
    return sorted(rows)


def test_each_threshold_alerts_once_per_key_and_root(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    initialised(settings)
    with sessions() as db:
        keys = list(db.scalars(select(SigningKey)))
    certificate = next(k for k in keys if k.purpose is KeyPurpose.CERTIFICATE)
    root = next(k for k in keys if k.purpose is KeyPurpose.ROOT)
    issued = [k for k in keys if k.purpose is not KeyPurpose.ROOT]
    end = certificate.not_after

    with sessions.begin() as db:
        assert raise_alerts(db, end - timedelta(days=100)) == []
        first = raise_alerts(db, end - timedelta(days=60))
        assert {(a.threshold, a.what) for a in first} == {(90, "key certificate")}
        assert len(first) == len(issued)
        assert raise_alerts(db, end - timedelta(days=59)) == []  # once per threshold
        assert {a.threshold for a in raise_alerts(db, end - timedelta(days=20))} == {30}
        assert {a.threshold for a in raise_alerts(db, end - timedelta(days=3))} == {7}
        assert raise_alerts(db, end - timedelta(days=1)) == []
        [root_alert] = raise_alerts(db, root.not_after - timedelta(days=45))
        assert (root_alert.what, root_alert.threshold) == ("root certificate", 90)
    with sessions() as db:
        alerts = _alerts(db)
    assert len(alerts) == 3 * len(issued) + 1
    assert f"key:{certificate.token_serial}/{certificate.label}@7d" in alerts


def test_api_tokens_warn_only_within_their_life(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as db:
        account = create_account(
            db, "clerk", Role.REGISTRAR, "correct horse battery", hasher=password_hasher(settings)
        )
        _, token = issue_api_token(db, account, 90)
        start, token_id = token.created_at, token.token_id
    with sessions.begin() as db:
        # A 90-day token is not "expiring within 90 days" the day it is issued.
        assert raise_alerts(db, start + timedelta(days=1)) == []
        [alert] = raise_alerts(db, start + timedelta(days=61))
    assert (alert.what, alert.threshold, alert.object) == (
        "API token",
        30,
        f"api-token:{token_id}",
    )
    assert "clerk" in alert.name


def test_status_and_staff_healthz_show_what_expires(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    initialised(settings)
    with sessions.begin() as db:
        db.execute(
            update(SigningKey)
            .where(SigningKey.purpose == KeyPurpose.DECISION)
            .values(not_after=utcnow() + timedelta(days=20, hours=1))
        )
    report = collect(settings)
    assert [(e["what"], e["warning"]) for e in report["expiring"]] == [("key certificate", 30)]
    [alert] = report["alerts_since_yesterday"]
    assert "decision-1" in alert and "expires in 20 days" in alert
    assert report["attention"] == []  # 30 days out: a warning, not yet an emergency
    assert collect(settings)["alerts_since_yesterday"] == [alert]  # not alerted twice

    app = create_app(settings)
    try:
        with TestClient(app) as client:
            health = client.get("/healthz")
    finally:
        app.state.engine.dispose()
    assert health.status_code == 200
    body = health.json()
    assert (body["expiring_within_90_days"], body["expiring_within_30_days"]) == (1, 1)
    assert body["expiring_within_7_days"] == 0
    assert "decision-1" not in health.text
