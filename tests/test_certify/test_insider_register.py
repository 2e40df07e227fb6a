"""Insiders with database access, tried on a real round (SQLite and PostgreSQL): each tampering
with the public register, the revocation list, a decision or the trust list is refused where it
would take effect, and `certsvc audit reconcile` names it; a clean round has no finding."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from audit.models import AuditEventRow
from audit.trail import record
from certify.decisions import decide, sign_decisions
from certify.issuance import approve, issue, request_revocation, sign_revocations
from certify.models import Application, Certificate, Decision
from certsvc.app import REFUSED_ACTION, create_app
from certsvc.public_app import create_public_app
from certsvc.reconcile import reconcile
from certsvc.settings import Settings
from common.dbtypes import utcnow
from test_certify.conftest import OFFICER, OFFICER_2, Body, late_ok
from verify.models import PublicCertificate, SignedRevocationList, SignedTrustList
from verify.payload import new_verification_id
from verify.trust import canonical, latest_trust_list

TODAY = date(2020, 7, 20)
CERTSVC = str(Path(sys.executable).parent / "certsvc")


@dataclass
class Round:
    kept: str  # a valid certificate's number
    revoked: str  # a revoked one's
    refused_decision: int  # a refusal, decided and not yet signed


@pytest.fixture
def round_(body: Body) -> Round:
    """Two certificates issued, one of them revoked under dual control; a refusal on file."""
    batch_id = body.batch()
    cases = [body.case(batch_id, seed) for seed in (11, 12)]
    refused = body.case(batch_id, 13)
    with body.sessions.begin() as db:
        late_ok(db, refused)
        for application_id in cases:
            late_ok(db, application_id)
            decide(db, OFFICER, application_id, "approve", "all checks passed")
    body.open("decision-1")
    sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    body.open("certificate-1")
    kept, revoked = issue(body.issuer, body.custodian, cases, TODAY).issued
    with body.sessions.begin() as db:
        revocation = request_revocation(db, OFFICER, revoked, "error", "conclusion corrected")
        approve(db, OFFICER, revocation.id, "checked")
        approve(db, OFFICER_2, revocation.id, "checked again")
        revocation_id = revocation.id
    body.open("revocation-1")
    sign_revocations(body.issuer, body.custodian, [revocation_id], TODAY)
    with body.sessions.begin() as db:  # after the batch's decisions were signed
        decision = decide(db, OFFICER, refused, "refuse", "the degree check was forged")
        return Round(kept, revoked, decision.id)


@pytest.fixture
def public(settings: Settings) -> Iterator[TestClient]:
    """A public node on the same register, its anchors pinned by `certsvc init`."""
    app = create_public_app(settings)
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def _findings(body: Body, settings: Settings) -> list[str]:
    with body.sessions() as db:
        return [str(f) for f in reconcile(db, settings.pinned_anchors())]


def _vid(body: Body, number: str) -> str:
    with body.sessions() as db:
        found = db.scalar(select(Certificate.verification_id).where(Certificate.number == number))
    assert found is not None
    return found


def test_a_clean_round_reconciles(body: Body, settings: Settings, round_: Round) -> None:
    assert _findings(body, settings) == []
    done = subprocess.run(
        [CERTSVC, "audit", "reconcile"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "reconciled" in done.stdout


def test_unrevoking_a_row_still_answers_revoked_and_is_named(
    body: Body, settings: Settings, round_: Round, public: TestClient
) -> None:
    vid = _vid(body, round_.revoked)
    with body.sessions.begin() as db:
        db.execute(
            update(PublicCertificate)
            .where(PublicCertificate.verification_id == vid)
            .values(status="valid", revoked_on=None, revocation_category=None)
        )
    answer = public.get(f"/api/v1/verify/{vid}").json()
    assert answer["status"] == "revoked"  # as the signed revocation list says
    assert answer["revocation_category"]["code"] == "error"
    findings = _findings(body, settings)
    assert findings == [f"certificate {round_.revoked}: register says valid, the records revoked"]
    done = subprocess.run(
        [CERTSVC, "audit", "reconcile"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and f"certificate {round_.revoked}" in done.stderr


def test_unrevoking_the_records_too_is_named(
    body: Body, settings: Settings, round_: Round, public: TestClient
) -> None:
    """The case record and the register row both edited back to valid: the signed revocation
    list and the audit log still say revoked."""
    vid = _vid(body, round_.revoked)
    with body.sessions.begin() as db:
        db.execute(
            update(PublicCertificate)
            .where(PublicCertificate.verification_id == vid)
            .values(status="valid", revoked_on=None, revocation_category=None)
        )
        db.execute(
            update(Certificate).where(Certificate.number == round_.revoked).values(status="issued")
        )
    assert public.get(f"/api/v1/verify/{vid}").json()["status"] == "revoked"
    assert _findings(body, settings) == [
        f"certificate {round_.revoked}: the records say issued, the revocation list or log "
        f"revoked it",
        "revocation list version 2: lists 1 certificates, the records revoked 0",
    ]


def test_an_older_revocation_list_is_refused(
    body: Body, settings: Settings, round_: Round, public: TestClient
) -> None:
    """The newest list deleted and the row edited back (a restored backup): a node that has
    used the list keeps it, one restarted answers no row rather than an un-revoked one, and
    reconcile names the version the audit log recorded."""
    vid = _vid(body, round_.revoked)
    assert public.get(f"/api/v1/verify/{vid}").json()["status"] == "revoked"
    with body.sessions.begin() as db:
        db.execute(delete(SignedRevocationList))
        db.execute(
            update(PublicCertificate)
            .where(PublicCertificate.verification_id == vid)
            .values(status="valid", revoked_on=None, revocation_category=None)
        )
    assert public.get(f"/api/v1/verify/{vid}").json()["status"] == "revoked"
    restarted = create_public_app(settings)  # remembers the version through its watermark
    with TestClient(restarted) as client:
        assert client.get(f"/api/v1/verify/{vid}").status_code == 404
        assert client.get("/.well-known/certsvc/revocations.json").status_code == 404
    restarted.state.engine.dispose()
    assert "revocation list: the audit log recorded version 2, the newest on file is 0" in (
        _findings(body, settings)
    )


def test_a_made_up_row_answers_404_and_is_named(
    body: Body, settings: Settings, round_: Round, public: TestClient
) -> None:
    real = _vid(body, round_.kept)
    with body.sessions.begin() as db:
        copied = db.get_one(PublicCertificate, real)
        made_up = new_verification_id()
        db.add(
            PublicCertificate(
                verification_id=made_up,
                number="20204100009999999",
                qualification=copied.qualification,
                subject=copied.subject,
                body_code=copied.body_code,
                issue_date=copied.issue_date,
                masked_name=copied.masked_name,
                status="valid",
                revoked_on=None,
                revocation_category=None,
                payload=copied.payload,  # a real signature, bound to another id
                updated_at=utcnow(),
            )
        )
    assert public.get(f"/api/v1/verify/{made_up}").status_code == 404
    assert public.get(f"/api/v1/verify/{real}").json()["status"] == "valid"
    service = create_app(settings)  # the full service has an audit log: one event, once
    with TestClient(service) as client:
        for _ in range(3):
            assert client.get(f"/api/v1/verify/{made_up}").status_code == 404
    service.state.engine.dispose()
    with body.sessions() as db:
        refused = db.scalars(
            select(AuditEventRow.object).where(AuditEventRow.action == REFUSED_ACTION)
        ).all()
    assert refused == ["certificate:20204100009999999"]
    findings = _findings(body, settings)
    assert findings[0] == "register row 20204100009999999: no certificate on file behind it"
    assert findings[1].startswith("register row 20204100009999999: its signed payload does not")
    assert len(findings) == 2


def test_an_edited_row_answers_404(
    body: Body, settings: Settings, round_: Round, public: TestClient
) -> None:
    vid = _vid(body, round_.kept)
    with body.sessions.begin() as db:
        db.execute(
            update(PublicCertificate)
            .where(PublicCertificate.verification_id == vid)
            .values(subject="01")
        )
    assert public.get(f"/api/v1/verify/{vid}").status_code == 404
    assert _findings(body, settings) == [
        f"register row {round_.kept}: its fields differ from its signed payload"
    ]


def test_a_refusal_turned_into_an_approval_is_not_signed(
    body: Body, settings: Settings, round_: Round
) -> None:
    with body.sessions.begin() as db:
        db.execute(
            update(Decision).where(Decision.id == round_.refused_decision).values(outcome="approve")
        )
        batch_id = db.scalar(
            select(Application.batch_id)
            .join(Decision, Decision.application_id == Application.id)
            .where(Decision.id == round_.refused_decision)
        )
    assert batch_id is not None
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert [r.rule for r in report.refused] == ["as-recorded"]
    assert report.signed == []
    assert _findings(body, settings) == [
        f"decision {round_.refused_decision}: differs from what the audit log recorded when it "
        f"was decided"
    ]


def _own_root() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "an insider's own root")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def test_a_trust_list_signed_by_a_root_of_ones_own_is_not_served(
    body: Body, settings: Settings, round_: Round, tmp_path: Path
) -> None:
    with body.sessions() as db:
        genuine = latest_trust_list(db)
        assert genuine is not None
        document = json.loads(genuine.document)
    key, root = _own_root()
    forged = {
        **document,
        "version": genuine.version + 1,
        "bodies": [
            {
                **document["bodies"][0],
                "root_certificate": root.public_bytes(serialization.Encoding.PEM).decode(),
            }
        ],
    }
    signature = key.sign(canonical(forged), ec.ECDSA(hashes.SHA256()))
    with body.sessions.begin() as db:
        db.add(
            SignedTrustList(
                version=forged["version"],
                document=canonical(forged).decode(),
                signature=signature,
                signed_at=utcnow(),
            )
        )
    app = create_public_app(settings)
    with TestClient(app) as client:
        served = client.get("/.well-known/certsvc/trust-list.json").json()
        assert served["trust_list"]["version"] == genuine.version  # the newest that opens
        assert served["signature"] == base64.b64encode(genuine.signature).decode()
        kept = client.get(f"/api/v1/verify/{_vid(body, round_.kept)}").json()
        assert kept["status"] == "valid"
    app.state.engine.dispose()
    saved = tmp_path / "trust-list.json"
    saved.write_text(
        json.dumps({"trust_list": forged, "signature": base64.b64encode(signature).decode()})
    )
    with body.sessions() as db:
        qr = db.scalar(select(Certificate.qr_text).where(Certificate.number == round_.kept))
    assert qr is not None
    offline = subprocess.run(
        [CERTSVC, "verify-qr", qr, "--trust-list", str(saved)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert offline.returncode == 2 and "not pinned" in offline.stderr
    findings = _findings(body, settings)
    assert len(findings) == 1 and "not pinned" in findings[0]
    assert findings[0].startswith(f"trust list version {forged['version']}: ")


def test_a_decision_recorded_before_digests_is_held_to_its_outcome(
    body: Body, settings: Settings
) -> None:
    """An install upgraded with unsigned decisions: their events name the outcome only."""
    batch_id = body.batch()
    application_id = body.case(batch_id, 21)
    with body.sessions.begin() as db:
        late_ok(db, application_id)
        decision = Decision(
            application_id=application_id,
            outcome="refuse",
            reasons="decided before digests",
            decided_by="officer",
        )
        db.add(decision)
        db.flush()
        record(
            db,
            OFFICER,
            "certify.decision.make",
            f"decision:{decision.id}",
            details={"outcome": "refuse"},
        )
        decision.outcome = "approve"
        decision_id = decision.id
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert [r.rule for r in report.refused] == ["as-recorded"]
    with body.sessions.begin() as db:
        db.get_one(Decision, decision_id).outcome = "refuse"
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert report.signed == [f"DEC-{decision_id}"]
