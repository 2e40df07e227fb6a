"""C2SP tlog-witness and tlog-cosignature, pure: the `add-checkpoint` request body, the 409
answer's size, witness vkeys and Ed25519 `cosignature/v1` lines — made and checked here, for the
witness (`certsvc.witness_server`) and the log's client (`certsvc.witness_client`) alike.

A cosignature is a signed-note line whose key ID is SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4] and
whose signature is a big-endian u64 timestamp followed by an Ed25519 signature over
`cosignature/v1\\ntime <timestamp>\\n` and the checkpoint's text (c2sp.org/tlog-cosignature).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.checkpoints import Checkpoint, parse_checkpoint
from audit.merkle import EMPTY_ROOT, verify_consistency
from audit.note import SIGNATURE_PREFIX, InvalidNote, NoteKey, split_note

COSIGNATURE_V1 = 0x04
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
# The spec puts no bound on a body; a checkpoint with its signatures is well under this.
MAX_BODY = 16 * 1024


class BadRequest(ValueError):
    """An `add-checkpoint` body not in the protocol's form (the witness answers 400)."""


class Unprocessable(ValueError):
    """A checkpoint that is not consistent with what the witness saw (422)."""


@dataclass(frozen=True)
class WitnessKey:
    """A witness's cosigning key: its name and 32-byte Ed25519 public key."""

    name: str
    public: bytes

    @property
    def note_key(self) -> NoteKey:
        return NoteKey(self.name, COSIGNATURE_V1, self.public)

    @property
    def key_id(self) -> bytes:
        return self.note_key.key_id

    def vkey(self) -> str:
        return self.note_key.vkey()


def witness_key(name: str, public: Ed25519PublicKey) -> WitnessKey:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return WitnessKey(name, raw)


def parse_witness_vkey(vkey: str) -> WitnessKey:
    """A witness's vkey (`<name>+<hex key ID>+<base64(0x04 ‖ key)>`), its key ID checked."""
    name, _, rest = vkey.strip().partition("+")
    hex_id, _, blob = rest.partition("+")
    try:
        key_id = bytes.fromhex(hex_id)
        material = base64.b64decode(blob, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidNote("witness vkey: bad hex key ID or base64 key") from None
    if len(material) != 33 or material[0] != COSIGNATURE_V1:
        raise InvalidNote("witness vkey: must be an Ed25519 cosignature key (type 0x04)")
    key = WitnessKey(name, material[1:])
    if key.key_id != key_id:  # NoteKey also refuses an empty name or one with spaces
        raise InvalidNote("witness vkey: key ID does not match the key")
    return key


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(name: str, private: Ed25519PrivateKey, text: str, timestamp: int) -> str:
    """The `cosignature/v1` line of the witness `name` over the checkpoint `text`."""
    if not 0 < timestamp < 2**63:
        raise ValueError("timestamp: a positive POSIX time")
    key = witness_key(name, private.public_key())
    signature = private.sign(cosigned_message(text, timestamp))
    blob = key.key_id + timestamp.to_bytes(8, "big") + signature
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Cosignature:
    witness: WitnessKey
    timestamp: int


def cosignatures(note: str, witnesses: Iterable[WitnessKey]) -> list[Cosignature]:
    """The cosignatures on `note` by `witnesses` (one each at most); lines of other keys are
    ignored, and a line matching a witness's name and key ID must verify or `InvalidNote`."""
    text, lines = split_note(note)
    trusted = list(witnesses)
    found: dict[str, Cosignature] = {}
    for line in lines:
        for key in trusted:
            if (key.name, key.key_id) != (line.name, line.key_id):
                continue
            if len(line.signature) != 72:
                raise InvalidNote(f"cosignature of {key.name}: not a timestamp and a signature")
            timestamp = int.from_bytes(line.signature[:8], "big")
            try:
                Ed25519PublicKey.from_public_bytes(key.public).verify(
                    line.signature[8:], cosigned_message(text, timestamp)
                )
            except (InvalidSignature, ValueError):
                raise InvalidNote(f"cosignature of {key.name}: does not verify") from None
            found[key.name] = Cosignature(key, timestamp)
    return list(found.values())


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The request body: `old <size>`, one base64 hash a line, a blank line, the note."""
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: list[bytes]
    note: str
    checkpoint: Checkpoint


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """The request, in form only (signatures and consistency are the witness's next steps)."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"body: more than {MAX_BODY} bytes")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise BadRequest("body: not UTF-8") from None
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise BadRequest("body: no blank line before the checkpoint")
    lines = head.split("\n")
    old_size = parse_size_line(lines[0], "old ")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise BadRequest(f"proof: more than {MAX_PROOF_LINES} lines")
    proof = []
    for line in lines[1:]:
        try:
            digest = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise BadRequest("proof: a line is not base64") from None
        if len(digest) != 32:
            raise BadRequest("proof: a line is not a 32-byte hash")
        proof.append(digest)
    try:
        checkpoint = parse_checkpoint(split_note(note)[0])
    except InvalidNote as exc:
        raise BadRequest(f"checkpoint: {exc}") from None
    if old_size > checkpoint.size:
        raise BadRequest("old: larger than the checkpoint's size")
    return AddCheckpoint(old_size, proof, note, checkpoint)


def parse_size_line(line: str, prefix: str = "") -> int:
    """A decimal size without leading zeroes after `prefix` (`old 12`, or a 409's `12`)."""
    digits = line.removeprefix(prefix) if line.startswith(prefix) else ""
    if not (digits.isascii() and digits.isdigit()) or (digits != "0" and digits[0] == "0"):
        raise BadRequest(f"size line: expected {prefix!r} and a decimal size")
    return int(digits)


def check_consistent(request: AddCheckpoint, known: Checkpoint | None) -> None:
    """What the witness checks once the old size matches what it knows (`known`, None for a
    log it never cosigned): the empty tree's root at size 0, an empty proof from 0, the same
    root at the same size, else a consistency proof that verifies. `Unprocessable` if not."""
    new = request.checkpoint
    if new.size == 0 and new.root_hash != EMPTY_ROOT:
        raise Unprocessable("a checkpoint of size 0 must have the empty tree's root")
    if known is None or known.size == 0:
        if request.proof:
            raise Unprocessable("from size 0 the consistency proof must be empty")
        return
    if not verify_consistency(known.size, new.size, request.proof, known.root_hash, new.root_hash):
        raise Unprocessable(
            f"not consistent with the checkpoint at {known.size} this witness cosigned"
        )
