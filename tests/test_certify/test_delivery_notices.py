"""Delivery notices on the applicant channel (二(二)3 "将证书领取时间和领取方式通过官方网站等
渠道告知申请人"): arranging a delivery publishes, in the same audited transaction, the certificate
number, the method and a pickup's place and first day to the public register; a public node
running on a copy of the register alone shows it, and nothing about the holder."""

from __future__ import annotations

import random
from datetime import date, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from audit.models import AuditEventRow
from certify.cases import CHINA
from certify.decisions import decide, sign_decisions
from certify.delivery import DeliveryPlan, arrange_delivery
from certify.issuance import approve, issue, request_revocation, sign_revocations
from certify.models import Applicant, Application, Certificate
from certsvc.public_app import PUBLIC_TABLES, create_public_app
from certsvc.settings import Settings
from common.db import Base
from test_certify.conftest import OFFICER, OFFICER_2, Body, late_ok
from vault import synthetic
from verify.models import PublicNotice

PLACE = "市政务服务中心教师资格窗口"
TODAY = date(2020, 7, 20)
SEEDS = (31, 32, 33)
PICKUP = DeliveryPlan("pickup", datetime(2020, 7, 27, 9, tzinfo=CHINA), PLACE)


def _issued(body: Body, seeds: tuple[int, ...]) -> list[str]:
    batch_id = body.batch()
    cases = [body.case(batch_id, seed) for seed in seeds]
    with body.sessions.begin() as db:
        for application_id in cases:
            late_ok(db, application_id)
            decide(db, OFFICER, application_id, "approve", "all checks passed")
    body.open("decision-1")
    sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    body.open("certificate-1")
    return issue(body.issuer, body.custodian, cases, TODAY).issued


def _public_copy(body: Body, target: Path) -> str:
    """The public register, and nothing else, in a database of its own (as the relay fills
    one)."""
    url = f"sqlite:///{target}"
    engine = create_engine(url)
    tables = [Base.metadata.tables[name] for name in PUBLIC_TABLES]
    Base.metadata.create_all(engine, tables=tables)
    with body.sessions() as source, engine.begin() as out:
        for table in tables:
            rows = [dict(row._mapping) for row in source.execute(select(table))]
            if rows:
                out.execute(table.insert(), rows)
    engine.dispose()
    return url


def test_a_delivery_notice_is_published_and_shown_by_a_public_node(
    body: Body, settings: Settings, tmp_path: Path
) -> None:
    picked, mailed, revoked = _issued(body, SEEDS)
    with body.sessions.begin() as db:
        arrange_delivery(db, OFFICER, picked, PICKUP)
        arrange_delivery(db, OFFICER, mailed, DeliveryPlan("mail", tracking_number="SF1234567890"))
        arrange_delivery(db, OFFICER, revoked, PICKUP)
        revocation = request_revocation(db, OFFICER, revoked, "error", "wrong subject at intake")
        for officer in (OFFICER, OFFICER_2):
            approve(db, officer, revocation.id, "checked against the application")
        revocation_id = revocation.id
        events = db.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "certify.delivery.arrange")
        ).all()
        assert sorted(e.object for e in events) == sorted(
            f"certificate:{n}" for n in (picked, mailed, revoked)
        )
        notice = db.get_one(PublicNotice, picked)
        assert (notice.method, notice.place, notice.available_from) == (
            "pickup",
            PLACE,
            date(2020, 7, 27),
        )
        # What the holder is: everything the public side must never show.
        private = []
        for certificate in db.scalars(select(Certificate)):
            application = db.get_one(Application, certificate.application_id)
            applicant = db.get_one(Applicant, application.applicant_id)
            private += [
                certificate.masked_name,
                certificate.verification_id,
                applicant.name_token,
                applicant.id_number_token,
                applicant.birth_date.isoformat(),
            ]
        tokens = [applicant.name_token for applicant in db.scalars(select(Applicant))]
    for seed in SEEDS:  # the raw values `Body.applicant` tokenised
        rng = random.Random(seed)
        private += [synthetic.id_number(rng), synthetic.name(rng)]
    assert len(tokens) == len(SEEDS)

    body.open("revocation-1")
    assert sign_revocations(body.issuer, body.custodian, [revocation_id], TODAY).signed
    url = _public_copy(body, tmp_path / "public.db")
    public = settings.model_copy(update={"database_url": url, "home": tmp_path / "public-home"})
    app = create_public_app(public)
    with TestClient(app) as client:
        shown = client.get(f"/api/v1/notices/{picked}")
        assert shown.status_code == 200
        assert shown.json() == {
            "number": picked,
            "method": "pickup",
            "place": PLACE,
            "available_from": "2020-07-27",
            "text": f"证书编号 {picked} 的教师资格证书已制作完成，"
            f"请于2020年7月27日起到{PLACE}领取。",
        }
        by_mail = client.get(f"/api/v1/notices/{mailed}").json()
        assert by_mail["method"] == "mail" and by_mail["place"] is None
        assert "SF1234567890" not in client.get(f"/api/v1/notices/{mailed}").text
        assert client.get(f"/api/v1/notices/{revoked}").status_code == 404
        unknown = client.get("/api/v1/notices/20204100009999999")
        malformed = client.get("/api/v1/notices/not-a-number")
        assert unknown.status_code == malformed.status_code == 404
        assert unknown.json() == malformed.json()
        answers = shown.text + client.get(f"/api/v1/notices/{mailed}").text
        for value in private:
            assert value not in answers
    app.state.engine.dispose()
