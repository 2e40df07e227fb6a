"""`certsvc demo --out DIR` (a contract): the manifest, its QR images decoded, each URL
followed on the app, the revoked certificate shown revoked, the round reconciled; a second run
works too."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certsvc.app import create_app
from certsvc.cli import main
from certsvc.settings import Settings
from vault.models import VaultReveal
from verify.qrimage import decode_image


def test_demo_round(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for run, held in (("one", 4), ("two", 8)):
        with pytest.raises(SystemExit) as done:
            main(["demo", "--out", str(tmp_path / run)])
        assert done.value.code == 0
        captured = capsys.readouterr()
        said = " ".join(captured.err.split())  # rich wraps its lines
        assert f"the register now holds {held} demo certificates" in said
        assert "reconciled: records, signatures and audit log agree" in captured.out
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert len(manifest) == 4
    assert [m["status"] for m in manifest].count("revoked") == 1
    app = create_app(settings)
    with TestClient(app) as client:
        for entry in manifest + json.loads((tmp_path / "two" / "manifest.json").read_text()):
            assert 1 <= entry["qr_version"] <= 10
            pdf = Path(entry["pdf"]).read_bytes()
            assert pdf.startswith(b"%PDF-") and b"/ByteRange" in pdf  # signed (PAdES)
            text = decode_image(Path(entry["qr_png"]))
            verification_id = urlsplit(entry["verification_url"]).path.rsplit("/", 1)[1]
            assert text.startswith(f"{settings.public_base_url.upper()}/V/{verification_id}#TC1:")
            path = urlsplit(entry["verification_url"]).path
            page = client.get(path)
            assert page.status_code == 200
            answer = client.get(f"/api/v1/verify/{verification_id}").json()
            assert answer["status"] == entry["status"]
            assert answer["number"] == entry["number"]
    app.state.engine.dispose()


def test_printing_reveals_the_holder_name_under_audit(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path / "run")])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    with sessions() as db:
        reasons = [
            str(decode_leaf(leaf).get("reason"))
            for leaf in db.scalars(
                select(AuditEventRow.leaf).where(AuditEventRow.action == "vault.reveal")
            )
        ]
        reveals = db.scalars(select(VaultReveal.actor)).all()
    assert sorted(reasons) == sorted(f"print certificate {m['number']}" for m in manifest)
    assert reveals == ["custodian"] * len(manifest)  # each print counts toward the limit
