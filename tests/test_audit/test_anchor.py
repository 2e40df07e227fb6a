"""The anchor outside the database, on SQLite and PostgreSQL: the log signs only heads that
extend it, and `verify_log` names the first entry a rewritten or rolled-back database changed —
where the database's own checkpoints, rewritten along with it, say nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.anchor import LEAVES, STATE, Anchor, AnchorDamaged
from audit.events import AuditEvent
from audit.log import append, tree_root
from audit.models import AuditCheckpoint, AuditEventRow, AuditHead
from audit.note import note_key
from audit.publish import CheckpointSigner, InconsistentLog, Published, publish_checkpoint
from audit.verify import Kept, verify_log
from tests_audit_support import recompute_nodes, rewrite_history

ORIGIN = "certsvc.test/410000/audit"
KEY = Ed25519PrivateKey.generate()
VERIFIER = note_key(ORIGIN, KEY.public_key())
SIGNER = CheckpointSigner(ORIGIN, [VERIFIER], lambda: [(VERIFIER, KEY.sign)])


def decision(n: int) -> AuditEvent:
    return AuditEvent(
        "officer", "officer", "certify.decision", f"case:{n}", "refused" if n == 6 else "ok"
    )


def fill(sessions: sessionmaker[Session], start: int, count: int) -> None:
    with sessions.begin() as db:
        for n in range(start, start + count):
            append(db, decision(n))


def publish(sessions: sessionmaker[Session], anchor: Anchor) -> Published:
    with sessions.begin() as db:
        published = publish_checkpoint(db, SIGNER, anchor)
    published.anchor_in(anchor)
    return published


@pytest.fixture
def anchor(tmp_path: Path) -> Anchor:
    return Anchor(tmp_path / "anchor")


@pytest.fixture
def checkpointed(sessions: sessionmaker[Session], anchor: Anchor) -> sessionmaker[Session]:
    """20 decisions, checkpointed at 12 and 20 and anchored; entry 6 is a refusal."""
    fill(sessions, 0, 12)
    publish(sessions, anchor)
    fill(sessions, 12, 8)
    assert publish(sessions, anchor).row.size == 20
    return sessions


def test_the_anchor_follows_each_checkpoint_and_is_private(
    checkpointed: sessionmaker[Session], anchor: Anchor
) -> None:
    anchored = anchor.read([VERIFIER])
    assert anchored is not None and anchored.size == 20
    with checkpointed() as db:
        assert anchored.checkpoint.root_hash == tree_root(db, 20)
        assert verify_log(db, ORIGIN, [VERIFIER], anchor).ok
    for path in (anchor.directory, anchor.directory / STATE, anchor.directory / LEAVES):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert (anchor.directory / LEAVES).stat().st_size == 20 * 32


def test_a_rewritten_history_is_refused_and_its_entry_named(
    checkpointed: sessionmaker[Session], anchor: Anchor
) -> None:
    """The attack of issue 13: a refused decision turned into an approval, every copy made
    consistent, the checkpoints above it deleted. The database alone no longer tells."""
    with checkpointed.begin() as db:
        rewrite_history(db, 6, outcome="ok")
    fill(checkpointed, 20, 3)
    with checkpointed() as db:
        assert verify_log(db, ORIGIN, [VERIFIER]).ok, "the attack is not what it says"
        verdict = verify_log(db, ORIGIN, [VERIFIER], anchor)
    assert not verdict.ok
    assert verdict.problems[0].startswith("entry 6 is not the one anchored outside the database")
    with pytest.raises(InconsistentLog, match="does not extend the checkpoint anchored"):
        publish(checkpointed, anchor)
    with checkpointed() as db:
        assert db.scalar(select(AuditCheckpoint.size)) is None  # none signed over the rewrite
    anchored = anchor.read([VERIFIER])
    assert anchored is not None and anchored.size == 20  # the last good checkpoint stays


def test_a_rolled_back_log_is_refused_and_the_missing_entries_named(
    checkpointed: sessionmaker[Session], anchor: Anchor
) -> None:
    """An older copy of the database comes back: shorter than what was checkpointed."""
    with checkpointed.begin() as db:
        db.execute(delete(AuditEventRow).where(AuditEventRow.idx >= 15))
        db.execute(update(AuditHead).values(size=15))
        db.execute(delete(AuditCheckpoint).where(AuditCheckpoint.size > 15))
        recompute_nodes(db)
    with checkpointed() as db:
        assert verify_log(db, ORIGIN, [VERIFIER]).ok
        verdict = verify_log(db, ORIGIN, [VERIFIER], anchor)
    assert "covers 20 entries but the database holds 15" in verdict.problems[0]
    assert "entries from 15 on are missing" in verdict.problems[0]
    with pytest.raises(InconsistentLog, match="does not extend the checkpoint anchored"):
        publish(checkpointed, anchor)
    # Written again from there on, the first rewritten entry is named.
    fill(checkpointed, 100, 10)
    with checkpointed() as db:
        verdict = verify_log(db, ORIGIN, [VERIFIER], anchor)
    assert verdict.problems[0].startswith("entry 15 is not the one anchored")
    with pytest.raises(InconsistentLog, match="does not extend the checkpoint anchored"):
        publish(checkpointed, anchor)


def test_kept_checkpoints_are_checked_too(
    checkpointed: sessionmaker[Session], anchor: Anchor, tmp_path: Path
) -> None:
    with checkpointed() as db:
        note = db.scalar(select(AuditCheckpoint.note).where(AuditCheckpoint.size == 12))
    assert note is not None
    kept = Kept("the checkpoint in kept.txt", note)
    with checkpointed() as db:
        assert verify_log(db, ORIGIN, [VERIFIER], None, [kept]).ok
    with checkpointed.begin() as db:
        rewrite_history(db, 3, object="case:x")
    with checkpointed() as db:
        verdict = verify_log(db, ORIGIN, [VERIFIER], None, [kept])
    assert verdict.problems[0] == (
        "the log's first 12 entries do not match the checkpoint in kept.txt: an entry before 12 "
        "was rewritten"
    )
    stranger = Ed25519PrivateKey.generate()
    forged = note.rpartition("\n\n")[0] + "\n\n" + f"\u2014 {ORIGIN} " + "AAAA" * 10 + "\n"
    with checkpointed() as db:
        verdict = verify_log(db, ORIGIN, [note_key(ORIGIN, stranger.public_key())], None, [kept])
    assert verdict.problems[0].startswith("the checkpoint in kept.txt: note: not signed")
    with checkpointed() as db:
        verdict = verify_log(db, ORIGIN, [VERIFIER], None, [Kept("forged", forged)])
    assert verdict.problems[0].startswith("forged: note:")


def test_signed_checkpoints_without_an_anchor_are_refused(
    checkpointed: sessionmaker[Session], tmp_path: Path
) -> None:
    """The anchor cannot be lost quietly: a log signed before must be anchored on purpose."""
    fill(checkpointed, 20, 1)
    elsewhere = Anchor(tmp_path / "elsewhere")
    with pytest.raises(InconsistentLog, match="none is anchored outside the database"):
        publish(checkpointed, elsewhere)
    fill(checkpointed, 21, 1)  # what a re-anchoring records first
    with checkpointed.begin() as db:
        published = publish_checkpoint(db, SIGNER, elsewhere, restart=True)
    published.anchor_in(elsewhere)
    anchored = elsewhere.read([VERIFIER])
    assert anchored is not None and anchored.size == 22
    with checkpointed() as db:
        assert verify_log(db, ORIGIN, [VERIFIER], elsewhere).ok


def test_a_restart_keeps_what_was_anchored_aside(
    checkpointed: sessionmaker[Session], anchor: Anchor
) -> None:
    before = (anchor.directory / STATE).read_text()
    fill(checkpointed, 20, 1)
    with checkpointed.begin() as db:
        published = publish_checkpoint(db, SIGNER, anchor, restart=True)
    published.anchor_in(anchor)
    [kept] = list(anchor.directory.glob("replaced-*"))
    assert (kept / STATE).read_text() == before
    assert (kept / LEAVES).stat().st_size == 20 * 32


def test_the_anchor_survives_a_crash_between_its_two_writes(
    checkpointed: sessionmaker[Session], anchor: Anchor
) -> None:
    """Hashes appended, then the process dies before `anchor.json` is replaced: they are
    ignored, then overwritten."""
    with (anchor.directory / LEAVES).open("ab") as leaves:
        leaves.write(os.urandom(32 * 3))
    with checkpointed() as db:
        assert verify_log(db, ORIGIN, [VERIFIER], anchor).ok
    fill(checkpointed, 20, 2)
    assert publish(checkpointed, anchor).signed
    with checkpointed() as db:
        assert verify_log(db, ORIGIN, [VERIFIER], anchor).ok
    assert (anchor.directory / LEAVES).stat().st_size == 22 * 32


def test_a_late_or_repeated_advance_changes_nothing(
    checkpointed: sessionmaker[Session], anchor: Anchor
) -> None:
    """Two workers: one anchors 24, the other then brings 22 (checked against an older
    anchor): the anchor stays at 24."""
    fill(checkpointed, 20, 2)
    with checkpointed.begin() as db:
        late = publish_checkpoint(db, SIGNER, anchor)
    fill(checkpointed, 22, 2)
    assert publish(checkpointed, anchor).row.size == 24
    assert late.row.size == 22 and not late.anchor_in(anchor)
    anchored = anchor.read([VERIFIER])
    assert anchored is not None and anchored.size == 24


def test_an_anchor_others_can_write_or_that_contradicts_itself_is_refused(
    checkpointed: sessionmaker[Session], anchor: Anchor
) -> None:
    (anchor.directory / STATE).chmod(0o644)
    with pytest.raises(AnchorDamaged, match="private"):
        anchor.read([VERIFIER])
    (anchor.directory / STATE).chmod(0o600)
    with pytest.raises(AnchorDamaged, match="not signed by any trusted key"):
        anchor.read([note_key(ORIGIN, Ed25519PrivateKey.generate().public_key())])
    with (anchor.directory / LEAVES).open("r+b") as leaves:
        leaves.truncate(10 * 32)
    with pytest.raises(AnchorDamaged, match="cut short"):
        anchor.read([VERIFIER])
    with checkpointed() as db:
        verdict = verify_log(db, ORIGIN, [VERIFIER], anchor)
    assert "cut short" in verdict.problems[0]
