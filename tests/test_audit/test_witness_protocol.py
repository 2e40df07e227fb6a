"""C2SP tlog-witness between real processes: `certsvc witness serve` on loopback, asked by the
log's client (`certsvc.witness_client`) and by hand. The log here holds its key in software
and its tree in a list; trees and consistency proofs are computed the RFC 6962 way in this file,
and cosignatures checked by the verifier written from the spec (`spec_note`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoints import Checkpoint
from audit.note import note_key, sign_note
from audit.witness_protocol import add_checkpoint_body, parse_witness_vkey
from certsvc.witness_client import Witness, WitnessClient, Witnessing
from spec_note import merkle_root, verify_cosignature
from witness_support import WitnessProcess, make_witness, running

ORIGIN = "log.test/certsvc/410000/audit"
LOG_KEY = Ed25519PrivateKey.generate()
LOG = note_key(ORIGIN, LOG_KEY.public_key())


def leaves(history: str, size: int) -> list[bytes]:
    """`size` entries of a history: histories with other names differ from their first entry."""
    return [f"{history}:{n}".encode() for n in range(size)]


def signed(entries: list[bytes], key: Ed25519PrivateKey = LOG_KEY) -> tuple[Checkpoint, str]:
    checkpoint = Checkpoint(ORIGIN, len(entries), merkle_root(entries))
    signer = note_key(ORIGIN, key.public_key())
    return checkpoint, sign_note(checkpoint.text(), [(signer, key.sign)])


def subproof(m: int, entries: list[bytes], complete: bool) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(entries)
    if m == n:
        return [] if complete else [merkle_root(entries)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, entries[:k], complete), merkle_root(entries[k:])]
    return [*subproof(m - k, entries[k:], False), merkle_root(entries[:k])]


def client(witnesses: list[WitnessProcess], quorum: int) -> WitnessClient:
    return WitnessClient([Witness(parse_witness_vkey(w.vkey), w.url) for w in witnesses], quorum)


def witness(log: WitnessClient, entries: list[bytes], previous: str | None = None) -> Witnessing:
    checkpoint, note = signed(entries)
    return log.witness(note, checkpoint, lambda old: subproof(old, entries, True), previous)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[WitnessProcess, WitnessProcess]]:
    first = make_witness(tmp_path, "inspect.test/w1")
    second = make_witness(tmp_path, "neighbour.test/w2")
    with running(first, [LOG.vkey()]), running(second, [LOG.vkey()]):
        yield first, second


def test_two_witnesses_cosign_and_the_quorum_is_met(
    two: tuple[WitnessProcess, WitnessProcess],
) -> None:
    log = client(list(two), quorum=2)
    first = witness(log, leaves("a", 5))
    assert first.met and first.cosigned == 2, first.problems()
    second = witness(log, leaves("a", 13), previous=first.note)
    assert second.met and second.cosigned == 2, second.problems()
    for w in two:
        assert verify_cosignature(second.note, w.vkey) > 0
        state = json.loads((w.state / "state.json").read_text())
        assert state["logs"][ORIGIN].startswith(f"{ORIGIN}\n13\n")
        origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
        kept = httpx.get(f"{w.url}/{origin_hash}/checkpoint").text
        assert verify_cosignature(kept, w.vkey) > 0
    assert second.note.startswith(signed(leaves("a", 13))[1].split("\n\n")[0])


def test_a_stopped_witness_leaves_the_quorum_unmet(
    two: tuple[WitnessProcess, WitnessProcess],
) -> None:
    log = client(list(two), quorum=2)
    assert witness(log, leaves("a", 4)).met
    two[1].stop()
    below = witness(log, leaves("a", 6))
    assert not below.met and below.cosigned == 1
    assert below.problems() == ["neighbour.test/w2 unreachable (ConnectError)"]
    assert verify_cosignature(below.note, two[0].vkey) > 0


def test_a_forked_history_is_refused_and_reported(
    two: tuple[WitnessProcess, WitnessProcess],
) -> None:
    log = client(list(two), quorum=1)
    assert witness(log, leaves("a", 8)).met
    # Another history of the same size, a longer one, and one cut back: a new client (a
    # restarted log) learns each witness's size from its 409 first.
    for fork, size in (("b", 8), ("b", 11), ("a", 5)):
        answers = witness(client(list(two), quorum=1), leaves(fork, size))
        assert not answers.met
        kinds = {a.kind for a in answers.answers}
        assert kinds == ({"rollback"} if size < 8 else {"422"}), answers.problems()
        for problem in answers.problems():
            assert "another history" in problem or "rolled back" in problem
    # The history they cosigned still goes on.
    assert witness(client(list(two), quorum=2), leaves("a", 9)).met


def test_the_witness_answers_as_the_spec_says(tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    with running(make_witness(tmp_path, "inspect.test/w1"), [LOG.vkey()]) as w:

        def post(body: bytes) -> httpx.Response:
            return httpx.post(f"{w.url}/add-checkpoint", content=body)

        entries = leaves("a", 6)
        _, note = signed(entries)
        foreign = signed(entries, other)[1]
        assert post(add_checkpoint_body(0, [], foreign)).status_code == 403
        tampered = note[:-10] + ("A" if note[-10] != "A" else "B") + note[-9:]
        assert post(add_checkpoint_body(0, [], tampered)).status_code == 403
        unknown = note.replace(ORIGIN, "elsewhere.test/log", 1)
        assert post(add_checkpoint_body(0, [], unknown)).status_code == 404
        assert post(b"old 01\n\n" + note.encode()).status_code == 400
        assert post(add_checkpoint_body(7, [], note)).status_code == 400
        wrong_proof = [hashlib.sha256(b"x").digest()]
        assert post(add_checkpoint_body(0, wrong_proof, note)).status_code == 422
        empty = Checkpoint(ORIGIN, 0, hashlib.sha256(b"x").digest())
        empty_note = sign_note(empty.text(), [(LOG, LOG_KEY.sign)])
        assert post(add_checkpoint_body(0, [], empty_note)).status_code == 422

        accepted = post(add_checkpoint_body(0, [], note))
        assert accepted.status_code == 200
        assert accepted.text.startswith("\u2014 inspect.test/w1 ")
        assert verify_cosignature(note + accepted.text, w.vkey) > 0

        conflict = post(add_checkpoint_body(0, [], signed(leaves("a", 9))[1]))
        assert conflict.status_code == 409
        assert conflict.headers["content-type"] == "text/x.tlog.size"
        assert conflict.text == "6\n"
        bigger = leaves("a", 9)
        proof = subproof(6, bigger, True)
        bad = [*proof[:-1], proof[0]]
        assert post(add_checkpoint_body(6, bad, signed(bigger)[1])).status_code == 422
        assert post(add_checkpoint_body(6, proof, signed(bigger)[1])).status_code == 200
    # The state outlives the process: restarted, it knows the size it cosigned last.
    with running(w, [LOG.vkey()]):
        again = httpx.post(f"{w.url}/add-checkpoint", content=add_checkpoint_body(0, [], note))
        assert (again.status_code, again.text) == (409, "9\n")
