"""Checkpoint keys over time, on real tokens and both databases. An install made before the
Ed25519 key and the spec's 0x02 key ID is upgraded by `certsvc init`: its old notes keep
verifying, the new key is announced in the log and vouched for by the old one. A rotation is
followed, through the log alone, by a verifier written from the spec that pinned only the old
key."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append
from audit.models import AuditCheckpoint, AuditEventRow
from audit.note import ECDSA, NoteKey
from certsvc import bootstrap
from certsvc.audit_keys import CHECKPOINTER, CheckpointKeyHolder
from certsvc.bootstrap import AUDIT_USBKEY, DEMO_TOKENS, ROOT_USBKEY, initialise
from certsvc.hsm import open_tokens
from certsvc.settings import Settings
from init_cache import initialised
from signer.models import KeyStatus, SigningKey
from spec_note import Rejected, follow, split_note
from spec_note import open_note as spec_open

CERTSVC = str(Path(sys.executable).parent / "certsvc")


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=dict(os.environ),
        input=stdin,
    )


def _vkeys() -> list[str]:
    shown = _run("audit", "vkeys")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.splitlines()


def _log(sessions: sessionmaker[Session]) -> tuple[list[str], list[bytes]]:
    """Every checkpoint note in order, and every leaf: what a mirror of the log holds."""
    with sessions() as db:
        notes = list(db.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.size)))
        leaves = [
            bytes(leaf)
            for leaf in db.scalars(select(AuditEventRow.leaf).order_by(AuditEventRow.idx))
        ]
    return notes, leaves


def _legacy_key_id(key: NoteKey) -> bytes:
    """The ECDSA key ID this service used before it followed the spec's 0x02 rule."""
    material = key.name.encode() + b"\n\x02" + key.public
    return hashlib.sha256(material).digest()[:4]


@pytest.fixture
def old_install(
    settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """An install as the previous version left it: one ECDSA P-256 checkpoint key, notes whose
    0x02 line carries the generic key ID, no key announced in the log, nothing anchored."""
    spec_key_id = NoteKey.key_id.fget  # type: ignore[attr-defined]
    old_tokens = tuple(
        replace(token, keys=token.keys[:1]) if token.label == AUDIT_USBKEY else token
        for token in DEMO_TOKENS
    )
    with monkeypatch.context() as old:
        old.setattr(bootstrap, "DEMO_TOKENS", old_tokens)
        old.setattr(bootstrap, "announce", lambda *args, **kwargs: None)
        old.setattr(
            NoteKey,
            "key_id",
            property(lambda k: _legacy_key_id(k) if k.type == ECDSA else spec_key_id(k)),
        )
        initialise(settings)  # not a copy: the provisioning itself is patched
        with sessions.begin() as db:
            append(db, AuditEvent("officer", "officer", "certify.decision", "case:1", "ok"))
        holder = CheckpointKeyHolder(settings, open_tokens(settings, sessions), sessions)
        try:
            holder.publish(sessions, CHECKPOINTER)
        finally:
            holder.close()
    shutil.rmtree(settings.audit_anchor_path)
    return settings


def test_an_old_install_is_upgraded_and_its_old_notes_keep_verifying(
    old_install: Settings, sessions: sessionmaker[Session]
) -> None:
    [ecdsa] = _vkeys()
    old_notes, _ = _log(sessions)
    assert len(old_notes) == 2
    for note in old_notes:
        [line] = split_note(note)[1]
        assert line.key_id != bytes.fromhex(ecdsa.split("+")[1])  # the generic recipe's ID
        with pytest.raises(Rejected):  # which is why a verifier built to the spec refused them
            spec_open(note, [ecdsa])
    unanchored = _run("audit", "checkpoint")
    assert unanchored.returncode == 1 and "none is anchored" in unanchored.stderr

    upgraded = _run("init")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "created key audit-checkpoint-ed25519-1" in upgraded.stderr
    verified = _run("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "3 signed checkpoints" in verified.stdout, verified.stdout
    ed25519, ecdsa_now = _vkeys()
    assert ecdsa_now == ecdsa

    notes, leaves = _log(sessions)
    assert notes[:2] == old_notes
    # The checkpoint covering the new key's announcement is signed by the old key, with the
    # spec's key ID: a verifier that knew only the old key learns the new one from the log.
    assert follow([ecdsa], notes[2:], leaves, old_install.audit_origin) == {ecdsa, ed25519}
    for vkey in (ed25519, ecdsa):
        spec_open(notes[-1], [vkey])
    with sessions() as db:
        actions = set(db.scalars(select(AuditEventRow.action)))
    assert {"audit.checkpoint_key.add", "audit.anchor.create"} <= actions

    again = _run("init")
    assert again.returncode == 0 and "created" not in again.stderr
    assert _log(sessions)[0] == notes


def test_a_rotated_key_is_followed_by_a_verifier_that_pinned_the_old_one(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    initialised(settings)
    old_ed25519, ecdsa = _vkeys()
    root_pin = json.loads(settings.credentials_file.read_text())["tokens"][ROOT_USBKEY]["user_pin"]

    wrong = _run("audit", "rotate-key", "--root-pin-stdin", stdin="000000\n")
    assert wrong.returncode == 1 and "000000" not in wrong.stdout + wrong.stderr
    rotated = _run(
        "audit", "rotate-key", "--algorithm", "ed25519", "--root-pin-stdin", stdin=root_pin + "\n"
    )
    assert rotated.returncode == 0, rotated.stderr
    assert root_pin not in rotated.stdout + rotated.stderr
    new_ed25519, ecdsa_now = _vkeys()
    assert new_ed25519 != old_ed25519 and ecdsa_now == ecdsa
    assert new_ed25519 in rotated.stdout

    notes, leaves = _log(sessions)
    # A witness that pinned only the old Ed25519 key follows the rotation through the log.
    trusted = follow([old_ed25519], notes, leaves, settings.audit_origin)
    assert new_ed25519 in trusted and old_ed25519 not in trusted
    spec_open(notes[-1], [new_ed25519])
    with pytest.raises(Rejected):  # the old key signs no more, and is trusted no more
        spec_open(notes[-1], [old_ed25519])
    with sessions() as db:
        old_key = db.scalars(
            select(SigningKey).where(SigningKey.label == "audit-checkpoint-ed25519-1")
        ).one()
    assert old_key.status is KeyStatus.RETIRED
    verified = _run("audit", "verify")
    assert verified.returncode == 0, verified.stderr
