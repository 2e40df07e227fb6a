"""The log on SQLite and PostgreSQL: appends, proofs, checkpoints, and tampering detected."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from audit.bundle import build_bundle, verify_bundle
from audit.checkpoints import parse_checkpoint
from audit.events import AuditEvent, InvalidEvent, decode_leaf
from audit.log import append, consistency_proof, inclusion_proof, size, tree_root
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.models import AuditCheckpoint, AuditEventRow, AuditNode
from audit.note import InvalidNote, note_key, open_note
from audit.publish import CheckpointSigner, InconsistentLog, publish_checkpoint
from audit.query import EventFilter, query_events
from audit.verify import verify_log
from signer.x509 import issue_root_certificate  # noqa: F401  (import check: no cycle)

ORIGIN = "certsvc.test/410000/audit"


def event(n: int, actor: str = "custodian") -> AuditEvent:
    return AuditEvent(
        actor=actor,
        role="custodian",
        workstation="ws-1",
        action="signer.sign",
        object=f"0011223344556677/certificate-{n % 3}",
        outcome="ok" if n % 5 else "refused",
        reason="" if n % 5 else "key expired",
        document_sha256=f"{n:064x}",
        details={"n": n},
    )


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def signer(key: ec.EllipticCurvePrivateKey) -> CheckpointSigner:
    verifier = note_key(ORIGIN, key.public_key())
    return CheckpointSigner(
        ORIGIN,
        [verifier],
        lambda: [(verifier, lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())))],
    )


def fill(sessions: sessionmaker[Session], count: int, start: int = 0) -> None:
    with sessions.begin() as db:
        for n in range(start, start + count):
            append(db, event(n))


def checkpoint(sessions: sessionmaker[Session], signer: CheckpointSigner) -> int:
    with sessions.begin() as db:
        return publish_checkpoint(db, signer).row.size


def test_appends_number_the_leaves_and_prove_inclusion(sessions: sessionmaker[Session]) -> None:
    fill(sessions, 37)
    with sessions() as db:
        assert size(db) == 37
        rows = list(db.scalars(select(AuditEventRow).order_by(AuditEventRow.idx)))
        assert [r.idx for r in rows] == list(range(37))
        assert decode_leaf(rows[5].leaf)["reason"] == "key expired"
        root = tree_root(db, 37)
        for index in (0, 1, 17, 36):
            proof = inclusion_proof(db, index, 37)
            assert verify_inclusion(leaf_hash(rows[index].leaf), index, 37, proof, root)
        for old in (1, 8, 20, 37):
            proof = consistency_proof(db, old, 37)
            assert verify_consistency(old, 37, proof, tree_root(db, old), root)


def test_an_action_that_rolls_back_leaves_no_event(sessions: sessionmaker[Session]) -> None:
    fill(sessions, 3)
    with pytest.raises(RuntimeError), sessions.begin() as db:
        append(db, event(3))
        raise RuntimeError("the action failed after its event was appended")
    fill(sessions, 1, start=3)
    with sessions() as db:
        assert size(db) == 4
        assert db.scalar(select(AuditEventRow.idx).order_by(AuditEventRow.idx.desc())) == 3


def test_events_refuse_unsafe_fields() -> None:
    with pytest.raises(InvalidEvent, match="action"):
        AuditEvent("a", "r", "Sign Now", "o", "ok")
    with pytest.raises(InvalidEvent, match="outcome"):
        AuditEvent("a", "r", "signer.sign", "o", "maybe")
    with pytest.raises(InvalidEvent, match="document_sha256"):
        AuditEvent("a", "r", "signer.sign", "o", "ok", document_sha256="not-a-hash")


def test_checkpoint_note_is_c2sp_and_verifies(
    sessions: sessionmaker[Session], signer: CheckpointSigner
) -> None:
    fill(sessions, 10)
    assert checkpoint(sessions, signer) == 10
    with sessions() as db:
        note = db.scalar(select(AuditCheckpoint.note).where(AuditCheckpoint.size == 10))
        root = tree_root(db, 10)
    assert note is not None
    body, _, signature = note.partition("\n\n")
    assert body.split("\n") == [ORIGIN, "10", base64.b64encode(root).decode()]
    assert signature.startswith(f"\u2014 {ORIGIN} ")
    assert parse_checkpoint(open_note(note, signer.keys).text).root_hash == root
    other = note_key(ORIGIN, ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(InvalidNote):
        open_note(note, [other])
    with pytest.raises(InvalidNote):
        open_note(note.replace("\n10\n", "\n11\n"), signer.keys)
    assert checkpoint(sessions, signer) == 10  # nothing new: the same checkpoint


def test_log_refuses_to_sign_a_rewritten_history(
    sessions: sessionmaker[Session], signer: CheckpointSigner
) -> None:
    fill(sessions, 8)
    checkpoint(sessions, signer)
    fill(sessions, 4, start=8)
    with sessions.begin() as db:
        db.execute(
            update(AuditNode)
            .where(AuditNode.level == 3, AuditNode.idx == 0)
            .values(hash=b"\x00" * 32)
        )
    with pytest.raises(InconsistentLog, match="refusing to sign"):
        checkpoint(sessions, signer)


Tamper = Callable[[Session], None]


def _raw(db: Session, sql: str, **params: object) -> None:
    db.execute(text(sql), params)


TAMPERING: dict[str, tuple[Tamper, str]] = {
    "changed bytes": (
        lambda db: _raw(db, "UPDATE audit_events SET leaf = :leaf WHERE idx = 6", leaf=b"\xa0"),
        "entry 6",
    ),
    "changed column": (
        lambda db: _raw(db, "UPDATE audit_events SET actor = 'someone' WHERE idx = 9"),
        "entry 9 was changed (column actor)",
    ),
    "changed time": (
        lambda db: db.execute(
            update(AuditEventRow)
            .where(AuditEventRow.idx == 10)
            .values(occurred_at=datetime(2001, 1, 1, tzinfo=UTC))
        ),
        "entry 10 was changed (column occurred_at)",
    ),
    "deleted row": (
        lambda db: _raw(db, "DELETE FROM audit_events WHERE idx = 4"),
        "entry 4 is missing",
    ),
    "swapped rows": (
        lambda db: (
            _raw(db, "UPDATE audit_events SET idx = -1 WHERE idx = 3"),
            _raw(db, "UPDATE audit_events SET idx = 3 WHERE idx = 7"),
            _raw(db, "UPDATE audit_events SET idx = 7 WHERE idx = -1"),
        ),
        "entry 3 holds the event of entry 7 (moved)",
    ),
    "truncated tail": (
        lambda db: (
            _raw(db, "DELETE FROM audit_events WHERE idx >= 15"),
            _raw(db, "UPDATE audit_head SET size = 15"),
        ),
        "log truncated",
    ),
    "inserted row": (
        lambda db: _raw(
            db,
            "INSERT INTO audit_events (idx, leaf, leaf_hash, occurred_at, actor, role, "
            "workstation, action, object, outcome) SELECT 20, leaf, leaf_hash, occurred_at, "
            "actor, role, workstation, action, object, outcome FROM audit_events WHERE idx = 2",
        ),
        "entry 20 repeats entry 2 (inserted",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_detected_and_named(
    case: str, sessions: sessionmaker[Session], signer: CheckpointSigner
) -> None:
    fill(sessions, 12)
    checkpoint(sessions, signer)
    fill(sessions, 8, start=12)
    checkpoint(sessions, signer)
    with sessions() as db:
        assert verify_log(db, ORIGIN, signer.keys).ok
    tamper, expected = TAMPERING[case]
    with sessions.begin() as db:
        tamper(db)
    with sessions() as db:
        verdict = verify_log(db, ORIGIN, signer.keys)
    assert not verdict.ok
    assert expected in verdict.problems[0], verdict.problems


def test_history_rewritten_with_its_hashes_fails_at_the_checkpoint(
    sessions: sessionmaker[Session], signer: CheckpointSigner
) -> None:
    """A database administrator recomputes every hash after editing an event: only the signed
    checkpoint still tells."""
    fill(sessions, 10)
    checkpoint(sessions, signer)
    with sessions.begin() as db:
        row = db.get(AuditEventRow, 5)
        assert row is not None
        forged = bytes(row.leaf).replace(b"custodian", b"custodiam")
        row.leaf = forged
        row.leaf_hash = leaf_hash(forged)
        row.actor = row.role = "custodiam"
        db.execute(delete(AuditNode).where(AuditNode.level == 0, AuditNode.idx == 5))
    with sessions() as db:
        verdict = verify_log(db, ORIGIN, signer.keys)
    assert not verdict.ok
    assert "do not match their signed checkpoint" in verdict.problems[0]


def test_a_time_moved_out_of_a_query_is_named(
    sessions: sessionmaker[Session], signer: CheckpointSigner
) -> None:
    """`occurred_at` set to 2001: a security officer's "since today" query and the export leave
    the event out; the time inside its leaf still says when it happened."""
    fill(sessions, 8)
    checkpoint(sessions, signer)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with sessions.begin() as db:
        db.execute(
            update(AuditEventRow)
            .where(AuditEventRow.idx == 5)
            .values(occurred_at=datetime(2001, 1, 1, tzinfo=UTC))
        )
    with sessions() as db:
        seen = [row.idx for row in query_events(db, EventFilter(since=today))]
        verdict = verify_log(db, ORIGIN, signer.keys)
    assert 5 not in seen and len(seen) == 7
    assert verdict.problems == ["entry 5 was changed (column occurred_at)"]


def test_a_forged_checkpoint_is_refused(
    sessions: sessionmaker[Session], signer: CheckpointSigner
) -> None:
    fill(sessions, 5)
    checkpoint(sessions, signer)
    with sessions.begin() as db:
        db.execute(update(AuditCheckpoint).values(note=AuditCheckpoint.note + "x"))
    with sessions() as db:
        verdict = verify_log(db, ORIGIN, signer.keys)
    assert not verdict.ok and "checkpoint at 5" in verdict.problems[0]


def test_bundle_verifies_alone_and_catches_edits(
    sessions: sessionmaker[Session], signer: CheckpointSigner, key: ec.EllipticCurvePrivateKey
) -> None:
    from tests_audit_support import self_signed

    fill(sessions, 9)
    checkpoint(sessions, signer)
    fill(sessions, 7, start=9)
    checkpoint(sessions, signer)
    with sessions() as db:
        bundle = build_bundle(db, ORIGIN, [self_signed(key)], 3, 14)
    verdict = verify_bundle(bundle)
    assert verdict.ok, verdict.problems
    assert verdict.events == 11 and verdict.checkpoints == 2
    edited = dict(bundle, events=[dict(e) for e in bundle["events"]])
    leaf = base64.b64decode(edited["events"][4]["leaf"]).replace(b"custodian", b"custodiam")
    edited["events"][4]["leaf"] = base64.b64encode(leaf).decode()
    assert "entry 7" in verify_bundle(edited).problems[0]
    stranger = ec.generate_private_key(ec.SECP256R1())
    swapped = dict(
        bundle,
        certificates=[self_signed(stranger).public_bytes(serialization.Encoding.PEM).decode()],
    )
    assert not verify_bundle(swapped).ok


def test_an_action_whose_event_cannot_be_written_does_not_happen(
    sessions: sessionmaker[Session],
) -> None:
    from audit.log import AuditUnavailable
    from audit.trail import record
    from certsvc.accounts import StaffAccount, create_account
    from certsvc.audit_trail import operator_actor

    with sessions.begin() as db:
        db.execute(text("DELETE FROM audit_head"))
    with pytest.raises(AuditUnavailable), sessions.begin() as db:
        account = create_account(db, "zhao.admin", "admin", "a long enough password")
        record(db, operator_actor(), "service.account.create", account.username)
    with sessions() as db:
        assert db.scalar(select(StaffAccount).where(StaffAccount.username == "zhao.admin")) is None


def test_batched_appends_build_the_same_tree(
    sessions: sessionmaker[Session], signer: CheckpointSigner
) -> None:
    from audit.log import append_many
    from audit.merkle import node_hash, split_point

    n = 0
    for batch in (1, 3, 7, 2, 13, 1, 5):
        with sessions.begin() as db:
            indexes = append_many(db, [event(n + k) for k in range(batch)])
        assert indexes == list(range(n, n + batch))
        n += batch
    with sessions() as db:
        leaves = [
            bytes(r) for r in db.scalars(select(AuditEventRow.leaf).order_by(AuditEventRow.idx))
        ]

        def mth(part: list[bytes]) -> bytes:
            if len(part) == 1:
                return leaf_hash(part[0])
            k = split_point(len(part))
            return node_hash(mth(part[:k]), mth(part[k:]))

        assert tree_root(db, n) == mth(leaves)
        assert tree_root(db, 11) == mth(leaves[:11])
    checkpoint(sessions, signer)
    with sessions() as db:
        assert verify_log(db, ORIGIN, signer.keys).ok
