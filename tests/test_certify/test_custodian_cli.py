"""`certsvc custodian`, the custodian's client at their workstation, against a real
`certsvc serve`: it signs decisions, issues and prints certificates with a PIN asked for once
and never shown, and says clearly why when the service refuses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from sqlalchemy import select

from certify.decisions import decide
from certify.models import Certificate, Decision
from server_support import CERTSVC, serving
from test_certify.conftest import OFFICER, Body, late_ok

WORKSTATION = "ws-custodian-01"


def _custodian(*args: str, env: dict[str, str], pin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, "custodian", *args],
        input=pin + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_custodian_signs_issues_and_prints_from_the_workstation(body: Body, tmp_path: Path) -> None:
    batch_id = body.batch()
    approved, refused = body.case(batch_id, 41), body.case(batch_id, 42, skip=("degree",))
    with body.sessions.begin() as db:
        for case, outcome in ((approved, "approve"), (refused, "refuse")):
            late_ok(db, case)
            decide(db, OFFICER, case, outcome, "checks as recorded")
    credentials = json.loads(Path(os.environ["CERTSVC_HOME"], "credentials.json").read_text())
    pin = body.usbkey["user_pin"]
    env = {
        **os.environ,
        "CERTSVC_API_TOKEN": credentials["accounts"]["custodian"]["api_token"],
        "CERTSVC_WORKSTATION": WORKSTATION,
        "CERTSVC_WORKSTATION_KEY": credentials["workstations"][WORKSTATION]["private_key"],
    }
    usbkey = ("--usbkey", body.usbkey["serial"])
    with serving() as server:
        env["CERTSVC_SERVER"] = server.base
        signed = _custodian("sign-decisions", str(batch_id), *usbkey, env=env, pin=pin)
        assert signed.returncode == 0, signed.stderr
        assert "2 signed" in signed.stderr
        issued = _custodian("issue", str(batch_id), *usbkey, env=env, pin=pin)
        assert issued.returncode == 0, issued.stderr
        [number] = issued.stdout.split()
        out = tmp_path / "certificate.pdf"
        by_label = ("--usbkey", "USBKEY-01")
        printed = _custodian("pdf", number, "--out", str(out), *by_label, env=env, pin=pin)
        assert printed.returncode == 0, printed.stderr
        wrong = _custodian("issue", str(batch_id), *usbkey, env=env, pin="00000000")
        no_token = _custodian(
            "issue", str(batch_id), *usbkey, env={**env, "CERTSVC_API_TOKEN": ""}, pin=pin
        )
    assert out.read_bytes().startswith(b"%PDF")
    assert wrong.returncode == 1
    assert "wrong PIN" in wrong.stderr and "Traceback" not in wrong.stderr
    assert no_token.returncode == 1 and "CERTSVC_API_TOKEN" in no_token.stderr
    for answer in (signed, issued, printed, wrong):
        assert pin not in answer.stdout + answer.stderr
    with body.sessions() as db:
        decisions = list(db.scalars(select(Decision).where(Decision.signed_at.is_not(None))))
        certificate = db.scalar(select(Certificate).where(Certificate.number == number))
    assert len(decisions) == 2
    assert certificate is not None and certificate.status == "issued"


def test_custodian_commands_say_what_is_missing() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CERTSVC_WORKSTATION", "CERTSVC_API"))
    }
    helped = subprocess.run(
        [CERTSVC, "custodian", "issue", "--help"], env=env, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--usbkey" in helped.stdout
    missing = _custodian("issue", "1", "--usbkey", "0123abcd", env=env, pin="")
    assert missing.returncode == 1
    assert "--workstation NAME --workstation-key PATH" in missing.stderr
