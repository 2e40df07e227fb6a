"""`certsvc backup` and `certsvc restore` on SQLite and PostgreSQL, as an operator runs them:
real processes, a provisioned demo (real tokens, real audit log with signed checkpoints)."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyotp
from sqlalchemy import func, make_url, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.checkpoints import parse_checkpoint
from audit.events import decode_leaf
from audit.models import AuditCheckpoint, AuditEventRow, AuditNode
from certsvc.accounts import StaffAccount
from certsvc.console.totp import begin_enrolment, check_code
from certsvc.settings import Settings
from init_cache import initialised

CERTSVC = str(Path(sys.executable).parent / "certsvc")


def _run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env or dict(os.environ),
        input=stdin,
    )


def _usernames(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as db:
        return set(db.scalars(select(StaffAccount.username)))


def _latest_note(sessions: sessionmaker[Session]) -> str:
    with sessions() as db:
        note = db.scalar(select(AuditCheckpoint.note).order_by(AuditCheckpoint.size.desc()))
    assert note is not None
    return note


def test_backup_then_restore_brings_the_data_back_and_the_log_verifies(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    initialised(settings)
    before = _usernames(sessions)
    kept = tmp_path / "checkpoint-at-backup.txt"
    kept.write_text(_latest_note(sessions))
    backup = tmp_path / "out" / "certsvc.backup"

    # On PostgreSQL the URL carries a password (the test server trusts loopback, so any will
    # do): it goes to pg_dump through PGPASSWORD and is never printed.
    env = dict(os.environ)
    password = "pw-" + os.urandom(6).hex()
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "postgresql":
        env["CERTSVC_DATABASE_URL"] = url.set(password=password).render_as_string(False)
    made = _run("backup", str(backup), env=env)
    assert made.returncode == 0, made.stderr
    assert password not in made.stdout + made.stderr
    assert backup.stat().st_mode & 0o077 == 0, "a backup holds ciphertext and hashes: owner-only"

    # Work done after the backup: a new account, an account disabled (both audited), and a
    # checkpoint published over them.
    added = _run("staff", "add", "latecomer", "--role", "registrar", "--generate-password")
    assert added.returncode == 0, added.stderr
    assert _run("staff", "disable", "registrar").returncode == 0
    assert _run("audit", "checkpoint").returncode == 0
    later = tmp_path / "checkpoint-after-backup.txt"
    later.write_text(_latest_note(sessions))
    assert "latecomer" in _usernames(sessions)

    # Going back to the backup loses the checkpointed history after it: the anchor outside the
    # database catches it, whatever the database now says.
    restored = _run("restore", str(backup), "--checkpoint", str(kept))
    assert restored.returncode == 1
    assert "anchored outside the database" in restored.stderr
    assert "older than that checkpoint" in restored.stderr
    assert "certsvc audit reanchor" in restored.stderr
    assert len(restored.stderr.strip().splitlines()) == 1
    assert _usernames(sessions) == before
    with sessions() as db:
        registrar = db.scalars(
            select(StaffAccount).where(StaffAccount.username == "registrar")
        ).one()
    assert registrar.active
    refused = _run("audit", "checkpoint")
    assert refused.returncode == 1
    assert "does not extend the checkpoint anchored outside it" in refused.stderr
    assert "NOT intact" in _run("audit", "verify").stderr

    # The restore was meant: a security officer re-anchors, on record. A wrong password or
    # another role is refused (and recorded), and nothing changes.
    officer = json.loads(settings.credentials_file.read_text())["accounts"]["security_officer"]
    admin = json.loads(settings.credentials_file.read_text())["accounts"]["admin"]
    reason = ["--reason", "restore of the 1 December backup, ticket OPS-17"]
    for who, password in (("security_officer", "not the password"), ("admin", admin["password"])):
        wrong = _run(
            "audit",
            "reanchor",
            "--officer",
            who,
            *reason,
            "--password-stdin",
            stdin=password + "\n",
        )
        assert wrong.returncode == 1 and "refused" in wrong.stderr, wrong.stderr
        assert password not in wrong.stdout + wrong.stderr
    assert _run("audit", "checkpoint").returncode == 1
    reanchored = _run(
        "audit",
        "reanchor",
        "--officer",
        "security_officer",
        *reason,
        "--password-stdin",
        stdin=officer["password"] + "\n",
    )
    assert reanchored.returncode == 0, reanchored.stderr
    verified = _run("audit", "verify", "--checkpoint", str(kept))
    assert verified.returncode == 0, verified.stderr
    with sessions() as db:
        events = [
            decode_leaf(leaf)
            for leaf in db.scalars(
                select(AuditEventRow.leaf).where(AuditEventRow.action == "audit.reanchor")
            )
        ]
    assert [(e["actor"], e["outcome"]) for e in events] == [
        ("os:" + getpass.getuser(), "refused"),
        ("os:" + getpass.getuser(), "refused"),
        ("security_officer", "ok"),
    ]
    given_up: dict[str, object] = events[-1]["details"]  # type: ignore[assignment]
    later_checkpoint = parse_checkpoint(later.read_text().rpartition("\n\n")[0] + "\n")
    assert given_up["given_up_size"] == later_checkpoint.size
    assert "anchored outside the database" in str(given_up["differs"])
    # Whoever kept the checkpoint signed after the backup sees the fork.
    forked = _run("audit", "verify", "--checkpoint", str(later))
    assert forked.returncode == 1
    assert f"the checkpoint in {later}" in forked.stderr

    # A checkpoint published after the backup was made shows the restore lost history.
    older = _run("restore", str(backup), "--checkpoint", str(later))
    assert older.returncode == 1
    assert "older than that checkpoint" in older.stderr
    assert len(older.stderr.strip().splitlines()) == 1


def test_a_tampered_backup_fails_verification_and_strangers_are_refused(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    initialised(settings)
    good = tmp_path / "good.backup"
    assert _run("backup", str(good)).returncode == 0

    # Someone with database access moves entry 2 over entry 1, consistently in every copy
    # (leaf, its hash, the query columns, the cached node): only the signed checkpoint knows.
    with sessions.begin() as db:
        assert (db.scalar(select(func.count()).select_from(AuditEventRow)) or 0) > 2
        donor = db.scalars(select(AuditEventRow).where(AuditEventRow.idx == 2)).one()
        values = {
            column: getattr(donor, column)
            for column in (
                "leaf",
                "leaf_hash",
                "occurred_at",
                "actor",
                "role",
                "workstation",
                "action",
                "object",
                "outcome",
            )
        }
        db.execute(update(AuditEventRow).where(AuditEventRow.idx == 1).values(**values))
        db.execute(
            update(AuditNode)
            .where(AuditNode.level == 0, AuditNode.idx == 1)
            .values(hash=values["leaf_hash"])
        )
    tampered = tmp_path / "tampered.backup"
    assert _run("backup", str(tampered)).returncode == 0

    # Files that are not ours, or damaged, are refused before anything is touched.

    stranger = tmp_path / "stranger.db"
    stranger.write_bytes(b"SQLite format 3\x00" + bytes(4096))
    damaged = tmp_path / "damaged.backup"
    content = bytearray(good.read_bytes())
    content[-100] ^= 0x01
    damaged.write_bytes(bytes(content))
    empty = tmp_path / "empty.backup"
    empty.write_bytes(b"")

    for path, message in (
        (stranger, "is not a certsvc backup"),
        (empty, "is not a certsvc backup"),
        (damaged, "is damaged"),
        (tmp_path / "missing.backup", "cannot read"),
    ):
        refused = _run("restore", str(path))
        assert refused.returncode == 1, (path, refused.stderr)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], refused.stderr
        assert "Traceback" not in refused.stderr

    assert _run("restore", str(good)).returncode == 0
    assert _run("audit", "verify").returncode == 0

    restored = _run("restore", str(tampered))
    assert restored.returncode == 1
    assert "audit log is NOT intact" in restored.stderr
    assert len(restored.stderr.strip().splitlines()) == 1
    verified = _run("audit", "verify")
    assert verified.returncode == 1
    assert "NOT intact" in verified.stderr


def test_restore_says_when_the_console_key_is_missing(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The console's TOTP key stays out of a backup, as the service PIN file does (whoever
    reads a backup must not open the second factors in it); a restore onto a host without
    the key says so, before the console would make a new key that opens none of them."""
    initialised(settings)
    key_file = settings.console_key_file
    with sessions.begin() as db:
        account = db.scalars(select(StaffAccount).where(StaffAccount.username == "officer")).one()
        secret, _ = begin_enrolment(db, account, key_file)
        assert check_code(db, account, pyotp.TOTP(secret).now(), key_file)
    key = key_file.read_bytes()
    backup = tmp_path / "certsvc.backup"
    made = _run("backup", str(backup))
    assert made.returncode == 0, made.stderr
    assert str(key_file) in made.stderr and key.strip() not in backup.read_bytes()

    key_file.unlink()  # the database restored on a new host, the secret store not yet
    restored = _run("restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert f"TOTP key {key_file} is missing: the 1 second factor(s)" in restored.stderr
    assert not key_file.exists()
    key_file.write_bytes(key)
    again = _run("restore", str(backup))
    assert again.returncode == 0 and "TOTP key" not in again.stderr
    with sessions.begin() as db:
        account = db.scalars(select(StaffAccount).where(StaffAccount.username == "officer")).one()
        later = pyotp.TOTP(secret).at(time.time() + 60)  # a step not used yet
        assert check_code(db, account, later, key_file, now=time.time() + 60)
