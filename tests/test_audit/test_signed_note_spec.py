"""The service's checkpoints as a verifier built to the specifications sees them: a verifier
written from c2sp.org/signed-note in the tests (`spec_note`, no code shared with `audit`)
opens the published checkpoint with the published vkeys — the Ed25519 line (type 0x01) and the
ECDSA line with the spec's 0x02 key ID, each on its own. Both that verifier and the service's
note module pass the published test vectors of the spec and of transparency-dev/formats."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.models import AuditEventRow
from audit.note import InvalidNote, open_note, parse_vkey
from certsvc.app import create_app
from certsvc.settings import Settings
from init_cache import initialised
from spec_note import Rejected, Verifier, merkle_root, parse_checkpoint, split_note
from spec_note import open_note as spec_open
from test_audit.note_vectors import BAD_NAME, BAD_SIGNATURE, BAD_VKEYS, VALID


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v[0].split("+")[0])
def test_both_verifiers_open_the_published_vectors(vector: tuple[str, str]) -> None:
    vkey, note = vector
    text, signed = spec_open(note, [vkey])
    assert [v.name for v in signed] == [vkey.split("+")[0]]
    ours = parse_vkey(vkey)
    assert ours.vkey() == vkey
    assert open_note(note, [ours]).text == text


@pytest.mark.parametrize("vector", (BAD_NAME, BAD_SIGNATURE), ids=["other-name", "bad-signature"])
def test_both_verifiers_refuse_the_published_bad_notes(vector: tuple[str, str]) -> None:
    vkey, note = vector
    with pytest.raises(Rejected):
        spec_open(note, [vkey])
    with pytest.raises(InvalidNote):
        open_note(note, [parse_vkey(vkey)])


@pytest.mark.parametrize("vkey", BAD_VKEYS)
def test_both_verifiers_refuse_the_published_bad_vkeys(vkey: str) -> None:
    with pytest.raises((Rejected, ValueError)):
        Verifier.parse(vkey)
    with pytest.raises(InvalidNote):
        parse_vkey(vkey)


@pytest.fixture
def served(settings: Settings) -> Iterator[TestClient]:
    initialised(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def test_the_published_checkpoint_verifies_to_the_spec(
    served: TestClient, settings: Settings
) -> None:
    vkeys = served.get("/.well-known/certsvc/audit-vkeys")
    assert vkeys.status_code == 200 and vkeys.headers["content-type"].startswith("text/plain")
    ed25519, ecdsa = vkeys.text.splitlines()
    origin = settings.audit_origin
    assert [Verifier.parse(ed25519).kind, Verifier.parse(ecdsa).kind] == [0x01, 0x02]
    assert {ed25519.split("+")[0], ecdsa.split("+")[0]} == {origin}
    # The 0x02 key ID is the spec's: SHA-256 of the DER SPKI, not of name and type with it.
    spki = base64.b64decode(ecdsa.split("+", 2)[2])[1:]
    assert ecdsa.split("+")[1] == hashlib.sha256(spki).hexdigest()[:8]

    note = served.get("/.well-known/certsvc/audit-checkpoint").text
    text, lines = split_note(note)
    assert [line.name for line in lines] == [origin, origin]
    for vkey in (ed25519, ecdsa):  # each line verifies on its own, as a witness would check it
        opened, signed = spec_open(note, [vkey])
        assert opened == text and [v.kind for v in signed] == [Verifier.parse(vkey).kind]
    checkpoint = parse_checkpoint(text)
    assert checkpoint.origin == origin
    with served.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        leaves = [
            bytes(leaf)
            for leaf in db.scalars(select(AuditEventRow.leaf).order_by(AuditEventRow.idx))
        ]
    assert merkle_root(leaves[: checkpoint.size]) == checkpoint.root
    with pytest.raises(Rejected):
        spec_open(note.replace(f"\n{checkpoint.size}\n", f"\n{checkpoint.size + 1}\n"), [ecdsa])
    # The CLI shows what the URL serves.
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "certsvc"), "audit", "vkeys"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert shown.stdout == vkeys.text
