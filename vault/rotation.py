"""Key versions: the first one, and rotation while the service keeps running.

A rotation makes a new key-encryption key on the token and a new version of every data key,
re-wraps the older versions under the new KEK at once (so the old KEK is destroyed within
minutes), then re-encrypts the values in batches, each its own transaction. Workers see the
new version at their next call and write with it; values not yet moved still decrypt and are
still found, because lookups search under every version in use. When no value uses an old
version any more, its keys are deleted — the database refuses while a value still refers to
one. Interrupted, `rotate` is run again and finishes the same rotation.

A job of many units (`common.unit_of_work`): it takes a sessionmaker, never a request's session,
and commits step by step and batch by batch by design; each is atomic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append
from common.unit_of_work import unit_of_work
from vault._crypto import PURPOSES, KeySet, new_key_material, unwrap_version, wrap_key
from vault._plaintext import decrypt_entry
from vault.keyring import KEK_LABEL_PREFIX, KekSession, KeyRing, Keys, kek_label
from vault.kinds import Kind
from vault.models import VaultEntry, VaultKey, VaultKeyVersion

Progress = Callable[[int, int], None]


@dataclass
class RotationReport:
    version: int
    started: bool = False
    moved: int = 0
    retired: list[int] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)


def _versions(sessions: sessionmaker[Session]) -> dict[int, str]:
    with sessions() as db:
        rows = db.execute(select(VaultKeyVersion.version, VaultKeyVersion.kek_label))
        return {int(version): str(label) for version, label in rows}


def _ensure_kek(kek: KekSession, label: str) -> None:
    if label not in kek.secret_key_labels():
        kek.generate_aes_key(label)


def _add_version(db: Session, kek: KekSession, version: int, label: str) -> None:
    material = new_key_material()
    db.add(VaultKeyVersion(version=version, kek_label=label))
    db.flush()
    for purpose in PURPOSES:
        wrapped = wrap_key(kek, label, version, purpose, material[purpose])
        db.add(VaultKey(version=version, purpose=purpose, wrapped=wrapped))
    db.flush()


def ensure_first_version(sessions: sessionmaker[Session], keyring: KeyRing) -> bool:
    """Create key version 1 (and its KEK) when the vault has none; whether it did."""
    if _versions(sessions):
        return False
    with keyring.open_kek() as kek:
        _ensure_kek(kek, kek_label(1))
        with unit_of_work(sessions) as db:
            _add_version(db, kek, 1, kek_label(1))
    return True


def rewrap(db: Session, kek: KekSession, versions: dict[int, str], label: str) -> None:
    """Put every listed version's keys under the KEK `label` (in the caller's transaction)."""
    for version, old_label in versions.items():
        if old_label == label:
            continue
        rows = db.execute(
            select(VaultKey.purpose, VaultKey.wrapped).where(VaultKey.version == version)
        )
        wrapped = {str(purpose): bytes(blob) for purpose, blob in rows}
        material = unwrap_version(kek, version, old_label, wrapped)
        for purpose, key in material.items():
            db.execute(
                update(VaultKey)
                .where(VaultKey.version == version, VaultKey.purpose == purpose)
                .values(wrapped=wrap_key(kek, label, version, purpose, key))
            )
        db.execute(
            update(VaultKeyVersion)
            .where(VaultKeyVersion.version == version)
            .values(kek_label=label)
        )


def destroy_unused_keks(sessions: sessionmaker[Session], keyring: KeyRing) -> list[str]:
    """Delete from the token every vault KEK no key version refers to any more."""
    in_use = set(_versions(sessions).values())
    destroyed = []
    with keyring.open_kek() as kek:
        for label in kek.secret_key_labels():
            if label.startswith(KEK_LABEL_PREFIX) and label not in in_use:
                kek.destroy_secret_key(label)
                destroyed.append(label)
    return destroyed


def rotate(
    sessions: sessionmaker[Session],
    keyring: KeyRing,
    actor: str,
    batch_size: int = 1000,
    grace_seconds: float = 10.0,
    progress: Progress = lambda _done, _total: None,
    rewrap_only: bool = False,
) -> RotationReport:
    """Rotate (or finish an interrupted rotation): new KEK and data keys, old versions
    re-wrapped, values re-encrypted batch by batch, old versions deleted. `rewrap_only`
    replaces the KEK alone, which needs no re-encryption.

    `grace_seconds` lets every worker notice the new version before values move: a worker
    still unaware of it could otherwise miss a moved value and store it a second time.
    """
    versions = _versions(sessions)
    if not versions:
        ensure_first_version(sessions, keyring)
        return RotationReport(version=1, started=True)
    newest = max(versions)
    report = RotationReport(version=newest)
    unfinished = len(versions) > 1
    if not unfinished:
        target = newest if rewrap_only else newest + 1
        label = kek_label(max(int(v.removeprefix(KEK_LABEL_PREFIX)) for v in versions.values()) + 1)
        with keyring.open_kek() as kek:
            _ensure_kek(kek, label)
            with unit_of_work(sessions) as db:
                if not rewrap_only:
                    _add_version(db, kek, target, label)
                rewrap(db, kek, versions, label)
        report.version = target
        report.started = True
        report.destroyed = destroy_unused_keks(sessions, keyring)
        if rewrap_only:
            _audit(sessions, actor, report, rewrap_only)
            return report
        time.sleep(grace_seconds)
    report.moved = reencrypt(sessions, keyring, report.version, batch_size, progress)
    with unit_of_work(sessions) as db:
        report.retired = sorted(
            int(v)
            for v in db.scalars(
                select(VaultKeyVersion.version).where(VaultKeyVersion.version < report.version)
            )
        )
        db.execute(delete(VaultKey).where(VaultKey.version < report.version))
        db.execute(delete(VaultKeyVersion).where(VaultKeyVersion.version < report.version))
    report.destroyed += destroy_unused_keks(sessions, keyring)
    _audit(sessions, actor, report, rewrap_only)
    return report


def reencrypt(
    sessions: sessionmaker[Session],
    keyring: KeyRing,
    target: int,
    batch_size: int,
    progress: Progress,
) -> int:
    """Move every value onto version `target`; passes repeat until none is left behind
    (a worker that wrote with an old version during the grace period)."""
    moved = 0
    with sessions() as db:
        total = int(db.scalar(select(func.count()).where(VaultEntry.key_version < target)) or 0)
    progress(0, total)
    while True:
        cursor = ""
        moved_this_pass = 0
        while True:
            with unit_of_work(sessions) as db:
                keys = keyring.current(db)
                rows = db.execute(
                    select(
                        VaultEntry.token,
                        VaultEntry.kind,
                        VaultEntry.key_version,
                        VaultEntry.ciphertext,
                    )
                    .where(VaultEntry.key_version < target, VaultEntry.token > cursor)
                    .order_by(VaultEntry.token)
                    .limit(batch_size)
                ).all()
                if not rows:
                    break
                new = keys.sets[target]
                db.execute(update(VaultEntry), [_moved(keys, new, *row) for row in rows])
                cursor = rows[-1][0]
            moved_this_pass += len(rows)
            moved += len(rows)
            progress(moved, max(total, moved))
        if moved_this_pass == 0:
            return moved


def _moved(
    keys: Keys, target: KeySet, token: str, kind_name: str, version: int, ciphertext: bytes
) -> dict[str, object]:
    """The row's columns under `target`: the value is decrypted and sealed again here, and
    goes nowhere else."""
    kind = Kind(kind_name)
    value = decrypt_entry(keys, kind, token, version, ciphertext)
    return {
        "token": token,
        "key_version": target.version,
        "blind_index": target.blind_index(kind, value),
        "ciphertext": target.seal(kind, token, value),
    }


def _audit(
    sessions: sessionmaker[Session], actor: str, report: RotationReport, rewrap_only: bool
) -> None:
    with unit_of_work(sessions) as db:
        append(
            db,
            AuditEvent(
                actor=actor,
                role="operator",
                action="vault.rotate",
                object=f"vault-keys-v{report.version}",
                outcome="ok",
                reason="KEK re-wrap only" if rewrap_only else "new key version",
                details={
                    "moved": report.moved,
                    "retired": ",".join(str(v) for v in report.retired),
                    "destroyed": ",".join(report.destroyed),
                },
            ),
        )
