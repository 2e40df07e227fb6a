"""After tokenising and importing known values, none of them is in the database file, the
PostgreSQL dump, the logs, an audit event, the audit log's published tiles (entry bundles
included) or the relay's static files — only ciphertext and tokens are."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from certify.applicant_import import import_applicants
from certify.intake import ApplicantTokens
from certsvc.app import create_app
from certsvc.audit_keys import CHECKPOINTER, CheckpointKeyHolder
from certsvc.bootstrap import DEMO_REVEALER_WORKSTATION
from certsvc.public_static import StaticFiles
from service_helpers import demo_member
from test_vault.conftest import VaultEnv, case_for

VALUES = {
    "id_number": "11010519491231002X",
    "phone": "13987654321",
    "email": "unique.person@example.org",
    "name": "司马相如",
    "address": "河南省洛阳市西工区唐宫路88号",
}
NEEDLES = [
    *VALUES.values(),
    "139 8765 4321",
    "41130219900307123",  # the first 17 digits of the imported ID number
]


def database_bytes(db_url: str, tmp_path: Path) -> bytes:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        # every byte the database holds: main file and write-ahead log
        return b"".join(
            path.read_bytes()
            for path in Path(url.database).parent.glob(Path(url.database).name + "*")
        )
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "pg_dump is needed to scan the PostgreSQL test database"
    dump = tmp_path / "dump.sql"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run([pg_dump, "--no-owner", "-f", str(dump), plain], check=True, timeout=60)
    return dump.read_bytes()


def test_raw_values_are_nowhere(
    vault_env: VaultEnv, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = vault_env.settings
    secrets = json.loads(settings.credentials_file.read_text())
    registrar = {"Authorization": f"Bearer {secrets['accounts']['registrar']['api_token']}"}
    revealer = demo_member(secrets, "vault_revealer", DEMO_REVEALER_WORKSTATION)
    app = create_app(settings)
    with TestClient(app) as client:
        items = [{"kind": kind, "value": value} for kind, value in VALUES.items()]
        tokens = client.post("/api/v1/vault/tokenise", json={"items": items}, headers=registrar)
        assert tokens.status_code == 200
        listed = [t["token"] for t in tokens.json()["tokens"]]
        bad = client.post(
            "/api/v1/vault/tokenise",
            json={"items": [{"kind": "id_number", "value": VALUES["id_number"][:-1] + "1"}]},
            headers=registrar,
        )
        assert bad.status_code == 422 and VALUES["id_number"][:-1] not in bad.text
        held = {f"{kind}_token": t for kind, t in zip(VALUES, listed, strict=True)}
        case = case_for(vault_env, ApplicantTokens(**held))
        asked = json.dumps(
            {"tokens": listed, "case": case, "purpose": "scan test: reveal is audited"}
        ).encode()
        revealed = client.post(
            "/api/v1/vault/reveal",
            content=asked,
            headers={
                **revealer.signed("POST", "/api/v1/vault/reveal", asked),
                "Content-Type": "application/json",
            },
        )
        assert revealed.status_code == 200
    app.state.engine.dispose()

    csv_path = tmp_path / "in.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "id_number", "phone", "email", "address"])
        writer.writerow(["司马相如", "411302199003071232", "139 8765 4321", "", ""])
        writer.writerow(["司马相如", "411302199003071233", "", "", ""])  # bad check character
    import_applicants(vault_env.sessions, vault_env.vault, csv_path, "cli:test")
    errors = (tmp_path / "in.csv.errors.csv").read_text(encoding="utf-8-sig")

    # The log published as tiles after all of it: its entries, for anyone to mirror.
    holder = CheckpointKeyHolder(settings, vault_env.tokens, vault_env.sessions)
    holder.publish(vault_env.sessions, CHECKPOINTER)
    holder.witness()
    tiles = holder.publish_tiles(tmp_path / "tiles")
    assert tiles is not None and tiles.written
    # ...and the relay's static files for nginx or a CDN (lists, checkpoint, tiles again).
    StaticFiles(settings, vault_env.sessions, tmp_path / "static").refresh()
    published = b"".join(
        p.read_bytes()
        for directory in (tmp_path / "tiles", tmp_path / "static")
        for p in directory.rglob("*")
        if p.is_file()
    )
    assert b"vault.reveal" in published  # the scan does see the entries' text
    static = (tmp_path / "static" / "audit" / "tiles" / "checkpoint").read_bytes()
    assert static in published  # and the static files' too

    stored = database_bytes(db_url, tmp_path)
    assert listed[0].encode() in stored  # the scan does see the database's text
    logs = caplog.text
    for needle in NEEDLES:
        for encoded in {needle.encode("utf-8"), needle.encode("gb18030")}:
            assert encoded not in stored, f"a raw value is in the database: {needle[:2]}…"
            assert encoded not in published, f"a raw value is in the tiles: {needle[:2]}…"
        assert needle not in logs
        assert needle not in errors
