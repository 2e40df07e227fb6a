"""What the security officer's report (`audit.query`) shows from the log: the alerts that
are not alert events of their own (signing outside office hours, a reveal spike, a locked
token, a witness failure), and reveals, lookups and refusals counted per person and day."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append
from audit.models import AuditEventRow
from audit.query import AlertPolicy, alert_kind, alerts, people_per_day, refusals_per_day
from certsvc.alert_policy import alert_policy
from certsvc.settings import Settings

SUNDAY_NIGHT = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # 23:00 in Beijing, a Sunday
MONDAY_MORNING = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, a Monday
NATIONAL_DAY = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)  # 10:00 on a Thursday, a holiday
WORKED_SATURDAY = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)  # 10:00, worked for the holiday
REVEAL_SPIKE = AlertPolicy().reveal_spike


def _at(db: Session, index: int, moment: datetime) -> None:
    db.execute(update(AuditEventRow).where(AuditEventRow.idx == index).values(occurred_at=moment))


def test_alerts_name_each_thing_to_act_on_once(sessions: sessionmaker[Session]) -> None:
    sign = {"token": "T1", "key": "sign-2026"}
    with sessions.begin() as db:
        late = append(db, AuditEvent("c1", "custodian", "signer.sign", "doc:1", "ok", details=sign))
        _at(db, late, SUNDAY_NIGHT)
        service = append(
            db, AuditEvent("certsvc", "system", "signer.sign", "checkpoint:9", "ok", details=sign)
        )
        _at(db, service, SUNDAY_NIGHT)  # the service's own signature: any hour
        office = append(
            db, AuditEvent("c1", "custodian", "signer.sign", "doc:2", "ok", details=sign)
        )
        _at(db, office, MONDAY_MORNING)
        locked = "USBKey T1 is locked after too many wrong PINs"
        append(
            db,
            AuditEvent(
                "c1", "custodian", "signer.session.open", "token:T1", "refused", reason=locked
            ),
        )
        append(
            db,
            AuditEvent(
                "c1",
                "custodian",
                "signer.sign",
                "doc:3",
                "refused",
                reason="key-usage-limit",
                details=sign,
            ),
        )
        append(
            db,
            AuditEvent(
                "certsvc",
                "system",
                "audit.witness.quorum",
                "audit-checkpoint:9",
                "failed",
                reason="1 of 2 witnesses cosigned",
            ),
        )
        append(
            db,
            AuditEvent(
                "certsvc-expiry",
                "system",
                "alert.expiry",
                "key:T1/sign@30d",
                "ok",
                reason="key certificate sign-2026 expires in 29 days",
            ),
        )
        for n in range(REVEAL_SPIKE + 2):
            append(
                db,
                AuditEvent(
                    "alice",
                    "officer",
                    "vault.reveal",
                    f"tok:{n}",
                    "ok",
                    reason="checking the case file",
                ),
            )
        for n in range(REVEAL_SPIKE - 1):
            append(
                db,
                AuditEvent(
                    "bob",
                    "officer",
                    "vault.reveal",
                    f"tok:{n}",
                    "ok",
                    reason="checking the case file",
                ),
            )
    with sessions() as db:
        found = alerts(db, None, None)
        kinds = Counter(alert_kind(row) for row in found)
        assert [row.idx for row in found] == sorted(row.idx for row in found)
        spike = next(row for row in found if row.action == "vault.reveal")
    assert kinds == {
        "signing outside office hours": 1,
        "token locked or removed": 1,
        "checkpoint or witness failure": 1,
        "certificate expiring": 1,
        f"reveal spike ({REVEAL_SPIKE} in a day)": 1,
    }
    assert spike.actor == "alice"


def test_people_and_refusals_are_counted_per_day(sessions: sessionmaker[Session]) -> None:
    lookup = {"values": 5, "found": 3, "misses": 2}
    with sessions.begin() as db:
        for _ in range(3):
            append(
                db,
                AuditEvent(
                    "alice",
                    "officer",
                    "vault.reveal",
                    "tok:a",
                    "ok",
                    reason="checking the case file",
                ),
            )
        append(
            db,
            AuditEvent("alice", "officer", "vault.reveal", "tok:b", "refused", reason="rate limit"),
        )
        append(db, AuditEvent("bob", "registrar", "vault.lookup", "vault", "ok", details=lookup))
        yesterday = append(
            db, AuditEvent("bob", "registrar", "vault.lookup", "vault", "ok", details=lookup)
        )
        _at(db, yesterday, SUNDAY_NIGHT)
        for who in ("mallory", "mallory", "eve"):
            append(
                db,
                AuditEvent(
                    who,
                    "staff",
                    "service.login",
                    "api",
                    "refused",
                    reason="wrong username or password",
                ),
            )
        proof = append(
            db,
            AuditEvent(
                "c1",
                "custodian",
                "service.workstation_proof",
                "POST /api/v1/x",
                "refused",
                reason="bad signature",
            ),
        )
        _at(db, proof, SUNDAY_NIGHT)
    with sessions() as db:
        people = people_per_day(db, None, None)
        refused = refusals_per_day(db, None, None)
    today = datetime.now(UTC).date().isoformat()
    rows = {(p.day, p.actor): (p.reveals, p.lookups, p.misses, p.refused) for p in people}
    assert rows == {
        ("2026-11-29", "bob"): (0, 5, 2, 0),
        (today, "alice"): (3, 0, 0, 1),
        (today, "bob"): (0, 5, 2, 0),
    }
    assert refused == {"sign-in": Counter({today: 3}), "workstation": Counter({"2026-11-29": 1})}


def _signatures(db: Session, *moments: datetime) -> list[int]:
    sign = {"token": "T1", "key": "sign-2026"}
    indexes = []
    for n, moment in enumerate(moments):
        index = append(
            db, AuditEvent("c1", "custodian", "signer.sign", f"doc:{n}", "ok", details=sign)
        )
        _at(db, index, moment)
        indexes.append(index)
    return indexes


def test_office_hours_follow_the_work_calendar_and_the_settings(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    evening = datetime(2026, 11, 30, 11, 30, tzinfo=UTC)  # 19:30 on a Monday
    with sessions.begin() as db:
        holiday, saturday, _monday, late = _signatures(
            db, NATIONAL_DAY, WORKED_SATURDAY, MONDAY_MORNING, evening
        )
    with sessions() as db:
        weekdays = {row.idx for row in alerts(db, None, None)}
        calendar = {row.idx for row in alerts(db, None, None, alert_policy(db, settings))}
        longer = alert_policy(db, settings.model_copy(update={"office_hours_end": 20}))
        until_eight = {row.idx for row in alerts(db, None, None, longer)}
    # Monday to Friday alone takes the holiday for a working day and the worked Saturday not.
    assert weekdays == {saturday, late}
    # The body's calendar knows both; the evening is outside 08–18.
    assert calendar == {holiday, late}
    assert until_eight == {holiday}


def test_the_reveal_spike_is_configured(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    with sessions.begin() as db:
        for n in range(4):
            append(db, AuditEvent("carol", "officer", "vault.reveal", f"tok:{n}", "ok"))
    with sessions() as db:
        assert alerts(db, None, None) == []
        policy = alert_policy(db, settings.model_copy(update={"reveal_spike": 3}))
        found = alerts(db, None, None, policy)
        assert [(row.actor, alert_kind(row, policy)) for row in found] == [
            ("carol", "reveal spike (3 in a day)")
        ]
