"""Printing a certificate is a reveal of the holder's name by the custodian, on both databases:
an audit event and a `VaultReveal` row each time, under the custodian's print limit; over it the
PDF route answers 429 with Retry-After, the refusal is audited and no PDF is made."""

from __future__ import annotations

import json
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certify.decisions import decide, sign_decisions
from certify.issuance import issue
from certify.models import Applicant, Application, Certificate
from certsvc.app import create_app
from certsvc.settings import Settings
from service_helpers import demo_member
from test_certify.conftest import OFFICER, WORKSTATION, Body, late_ok
from vault.models import VaultReveal

TODAY = date(2020, 7, 20)
SESSIONS = "/api/v1/signing/sessions"


def _issued(body: Body, seeds: tuple[int, ...]) -> list[str]:
    """Certificates issued for new applicants, the custodian's USBKey session closed after."""
    batch_id = body.batch()
    cases = [body.case(batch_id, seed) for seed in seeds]
    with body.sessions.begin() as db:
        for case in cases:
            late_ok(db, case)
            decide(db, OFFICER, case, "approve", "all checks passed")
    body.open("decision-1")
    sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    body.open("certificate-1")
    numbers = issue(body.issuer, body.custodian, cases, TODAY).issued
    body.signing.end(body.usbkey["serial"])
    return numbers


def _name_token(body: Body, number: str) -> str:
    with body.sessions() as db:
        return db.execute(
            select(Applicant.name_token)
            .join(Application, Application.applicant_id == Applicant.id)
            .join(Certificate, Certificate.application_id == Application.id)
            .where(Certificate.number == number)
        ).scalar_one()


def test_printing_reveals_the_name_under_the_custodians_limit(
    body: Body, settings: Settings
) -> None:
    first, second = _issued(body, (31, 32))
    secrets = json.loads(settings.credentials_file.read_text())
    custodian = demo_member(secrets, "custodian", WORKSTATION)
    app = create_app(settings.model_copy(update={"print_reveal_limit": 1}))
    with TestClient(app) as client:
        opening = json.dumps(
            {
                "token_serial": body.usbkey["serial"],
                "key_label": "certificate-1",
                "pin": body.usbkey["user_pin"],
            }
        ).encode()
        headers = {
            **custodian.signed("POST", SESSIONS, opening),
            "Content-Type": "application/json",
        }
        assert client.post(SESSIONS, content=opening, headers=headers).status_code == 201
        printed, refused = (
            client.get(
                f"/api/v1/certificates/{n}/pdf",
                headers=custodian.signed("GET", f"/api/v1/certificates/{n}/pdf"),
            )
            for n in (first, second)
        )
        path = f"{SESSIONS}/{body.usbkey['serial']}"
        client.delete(path, headers=custodian.signed("DELETE", path))
    app.state.engine.dispose()

    assert printed.status_code == 200 and printed.content.startswith(b"%PDF-")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert not refused.content.startswith(b"%PDF")
    assert "at most 1 values per 60 minutes" in refused.json()["detail"]
    with body.sessions() as db:
        events = [
            decode_leaf(leaf)
            for leaf in db.scalars(
                select(AuditEventRow.leaf)
                .where(AuditEventRow.action == "vault.reveal")
                .order_by(AuditEventRow.idx)
            )
        ]
        reveals = [(r.actor, r.token) for r in db.scalars(select(VaultReveal))]
    shown = [(e["object"], e["outcome"], e["actor"], e["role"], e["ws"]) for e in events]
    assert shown == [
        (_name_token(body, first), "ok", "custodian", "custodian", WORKSTATION),
        (_name_token(body, second), "refused", "custodian", "custodian", WORKSTATION),
    ]
    assert events[0]["reason"] == f"print certificate {first}"
    assert reveals == [("custodian", _name_token(body, first))]
