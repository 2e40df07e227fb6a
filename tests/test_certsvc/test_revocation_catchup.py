"""The catch-up revocation list: an install upgraded with revocations signed before signed
revocation lists existed answers 404 for those certificates until the revocation key's
custodian signs, from their workstation, a list naming every revocation on record — each one
held to its signing event in the audit log, so a revocation written into the table alone is
refused, not signed."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from certify.models import Certificate, Revocation
from certsvc.revocation_catchup import CATCH_UP
from certsvc.settings import Settings
from server_support import CERTSVC, serving
from verify.models import SignedRevocationList
from verify.trust import latest_revocation_list

WORKSTATION = "ws-custodian-01"


def _run(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, *args], input=stdin, env=env, capture_output=True, text=True, timeout=600
    )


def test_a_catch_up_list_names_revocations_signed_before_lists_existed(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    env = dict(os.environ)
    round_ = _run("demo", "--out", str(tmp_path / "round"), env=env)
    assert round_.returncode == 0, round_.stderr
    manifest = json.loads((tmp_path / "round" / "manifest.json").read_text())
    revoked = next(m for m in manifest if m["status"] == "revoked")
    valid = next(m for m in manifest if m["status"] == "valid")
    # As before signed revocation lists: the revocation is on record, no list names it.
    with sessions.begin() as db:
        db.execute(delete(SignedRevocationList))
    settings.register_watermark_file.unlink(missing_ok=True)

    credentials = json.loads(settings.credentials_file.read_text())
    usbkey = credentials["tokens"]["USBKEY-01"]
    custodian_env = {
        **env,
        "CERTSVC_API_TOKEN": credentials["accounts"]["custodian"]["api_token"],
        "CERTSVC_WORKSTATION": WORKSTATION,
        "CERTSVC_WORKSTATION_KEY": credentials["workstations"][WORKSTATION]["private_key"],
    }
    officer = {"Authorization": f"Bearer {credentials['accounts']['officer']['api_token']}"}
    catch_up = ("custodian", "sign-revocation-list", "--usbkey", "USBKEY-01")
    with serving(env=env) as server:
        custodian_env["CERTSVC_SERVER"] = server.base

        def status(entry: dict[str, str]) -> httpx.Response:
            vid = entry["verification_url"].rsplit("/", 1)[1]
            return httpx.get(f"{server.base}/api/v1/verify/{vid}", timeout=10)

        assert status(revoked).status_code == 404
        refused = httpx.post(
            f"{server.base}/api/v1/certify/revocations/list", headers=officer, timeout=10
        )
        assert refused.status_code == 403
        # A DBA marks the valid certificate revoked in the table alone: no list is signed.
        with sessions.begin() as db:
            forged = Revocation(
                certificate_id=db.scalar(
                    select(Certificate.id).where(Certificate.number == valid["number"])
                ),
                category="fraud",
                reason="written into the table by hand",
                requested_by="dba",
                revoked_on=date.today(),
            )
            db.add(forged)
            db.flush()
            forged_id = forged.id
        refused_list = _run(*catch_up, env=custodian_env, stdin=usbkey["user_pin"] + "\n")
        assert refused_list.returncode != 0
        assert f"revocation {forged_id}: marked revoked with no signing event" in (
            refused_list.stderr
        )
        with sessions() as db:
            assert latest_revocation_list(db) is None
        assert status(valid).status_code == 200 and status(valid).json()["status"] == "valid"
        with sessions.begin() as db:
            db.execute(delete(Revocation).where(Revocation.id == forged_id))

        signed = _run(*catch_up, env=custodian_env, stdin=usbkey["user_pin"] + "\n")
        assert signed.returncode == 0, signed.stderr
        assert "version 1 signed (1 revocation(s) added)" in signed.stderr
        assert status(revoked).json()["status"] == "revoked"
        assert status(valid).json()["status"] == "valid"
        again = _run(*catch_up, env=custodian_env, stdin=usbkey["user_pin"] + "\n")
        assert again.returncode == 0, again.stderr
        assert "already names every recorded revocation" in again.stderr
    for done in (signed, again):
        assert usbkey["user_pin"] not in done.stdout + done.stderr
    with sessions() as db:
        listed = latest_revocation_list(db)
        events = db.scalars(select(AuditEventRow).where(AuditEventRow.action == CATCH_UP)).all()
    assert listed is not None and listed.version == 1
    # `certsvc init` signed the fresh body's empty version 1 the same way, then this one.
    assert [(e.actor, e.workstation, e.object) for e in events] == [
        ("custodian", WORKSTATION, "revocation-list:1")
    ] * 2
    offline = _run("verify-qr", revoked["qr_png"], env=env)
    assert offline.returncode == 1 and "REVOKED" in offline.stderr
