"""A verifier for C2SP signed notes and checkpoints written from the specifications alone
(c2sp.org/signed-note, c2sp.org/tlog-checkpoint, RFC 6962) for the tests: it shares no code with
`audit`, so the service's notes are checked by an implementation that could disagree with it.
Only `cryptography`, `hashlib` and `cbor2` (to read event leaves) are used."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Rejected(Exception):
    """The note, key or checkpoint does not meet the specification."""


@dataclass(frozen=True)
class Verifier:
    """A vkey: `<name>+<hex key ID>+<base64(signature type || public key)>`."""

    name: str
    key_id: bytes
    kind: int
    public: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        parts = vkey.split("+", 2)  # the name and the hex ID hold no "+"; base64 may
        if len(parts) != 3:
            raise Rejected("a vkey has three parts")
        name, hex_id, blob = parts
        material = base64.b64decode(blob, validate=True)
        verifier = cls(name, bytes.fromhex(hex_id), material[0], material[1:])
        # Ed25519 (0x01): SHA-256(name || 0x0A || 0x01 || key)[:4]. ECDSA (0x02): "the key ID for
        # these signatures is the truncated SHA-256 hash of the DER encoded public key in SPKI".
        if verifier.kind == 0x01:
            expected = hashlib.sha256(name.encode() + b"\n\x01" + verifier.public).digest()[:4]
        elif verifier.kind == 0x02:
            expected = hashlib.sha256(verifier.public).digest()[:4]
        else:
            raise Rejected(f"signature type {verifier.kind} is not supported here")
        if expected != verifier.key_id:
            raise Rejected("the key ID is not the key's")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            if self.kind == 0x01:
                Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
            else:
                key = serialization.load_der_public_key(self.public)
                assert isinstance(key, ec.EllipticCurvePublicKey)
                key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Line:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[Line]]:
    """The text (with its final newline) and the signature lines, per the Format section."""
    if not note.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in note):
        raise Rejected("a note ends in a newline and holds no other control character")
    head, separator, tail = note.rpartition("\n\n")
    if not separator:
        raise Rejected("no blank line before the signatures")
    lines = []
    for line in tail[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise Rejected("a signature line starts with an em dash and a space")
        name, _, blob = line[2:].partition(" ")
        raw = base64.b64decode(blob, validate=True)
        if not name or "+" in name or len(raw) < 5:
            raise Rejected("bad signature line")
        lines.append(Line(name, raw[:4], raw[4:]))
    return head + "\n", lines


def open_note(note: str, vkeys: Iterable[str]) -> tuple[str, list[Verifier]]:
    """The text and the known keys that signed it: unknown keys are ignored, a known key's
    signature must verify, and at least one must."""
    verifiers = [Verifier.parse(vkey) for vkey in vkeys]
    text, lines = split_note(note)
    signed = []
    for line in lines:
        for verifier in verifiers:
            if (verifier.name, verifier.key_id) != (line.name, line.key_id):
                continue
            if not verifier.verify(text.encode(), line.signature):
                raise Rejected(f"the signature of {line.name} does not verify")
            signed.append(verifier)
    if not signed:
        raise Rejected("not signed by a known key")
    return text, signed


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[0]:
        raise Rejected("origin, tree size and root hash lines")
    if not lines[1].isascii() or not lines[1].isdigit() or (lines[1] != "0" and lines[1][0] == "0"):
        raise Rejected("the tree size is decimal without leading zeroes")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Rejected("the root hash is 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), root)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 §2.1: MTH of the leaves' bytes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(
        b"\x01" + merkle_root(leaves[:split]) + merkle_root(leaves[split:])
    ).digest()


def follow(
    pinned: Iterable[str], notes: Sequence[str], leaves: Sequence[bytes], origin: str
) -> set[str]:
    """Walk the log's checkpoints in order, trusting only `pinned` at first: each checkpoint
    must be signed by a trusted key and commit to the leaves; the key announcements it covers
    (events `audit.checkpoint_key.add` / `.retire`, vkey in the details) change the trusted
    set for the checkpoints after it. The vkeys trusted at the end."""
    trusted = set(pinned)
    covered = 0
    for note in notes:
        text, _ = open_note(note, trusted)
        checkpoint = parse_checkpoint(text)
        if checkpoint.origin != origin or checkpoint.size < covered:
            raise Rejected("a checkpoint of another log, or one going back")
        if merkle_root(leaves[: checkpoint.size]) != checkpoint.root:
            raise Rejected(f"the checkpoint at {checkpoint.size} does not commit to the leaves")
        for leaf in leaves[covered : checkpoint.size]:
            event = cbor2.loads(leaf)
            vkey = event.get("details", {}).get("vkey")
            if event["action"] == "audit.checkpoint_key.add":
                trusted.add(vkey)
            elif event["action"] == "audit.checkpoint_key.retire":
                trusted.discard(vkey)
        covered = checkpoint.size
    return trusted


def verify_cosignature(note: str, vkey: str) -> int:
    """The timestamp of the witness `vkey`'s cosignature on `note`, checked as
    c2sp.org/tlog-cosignature says: a vkey of type 0x04 whose key ID is SHA-256(name || 0x0A ||
    0x04 || key)[:4]; a line of that name and key ID whose signature is a big-endian u64
    timestamp then an Ed25519 signature over "cosignature/v1\\ntime <timestamp>\\n" and the
    checkpoint's text."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise Rejected("a vkey has three parts")
    name, hex_id, blob = parts
    material = base64.b64decode(blob, validate=True)
    if len(material) != 33 or material[0] != 0x04:
        raise Rejected("an Ed25519 cosigner key is type 0x04 and 32 bytes")
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + material[1:]).digest()[:4]
    if key_id.hex() != hex_id:
        raise Rejected("the key ID is not the key's")
    text, lines = split_note(note)
    for line in lines:
        if (line.name, line.key_id) != (name, key_id):
            continue
        if len(line.signature) != 8 + 64:
            raise Rejected("a timestamped signature is 72 bytes")
        timestamp = int.from_bytes(line.signature[:8], "big")
        if not 0 < timestamp < 2**63:
            raise Rejected("the timestamp is not zero and below 2^63")
        message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
        try:
            Ed25519PublicKey.from_public_bytes(material[1:]).verify(line.signature[8:], message)
        except InvalidSignature:
            raise Rejected(f"the cosignature of {name} does not verify") from None
        return timestamp
    raise Rejected(f"no cosignature by {name}")
