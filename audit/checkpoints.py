"""Checkpoints: C2SP `tlog-checkpoint` text inside a C2SP `signed-note`, ECDSA P-256 (type 0x02).

Pure formatting and verification here; `publish.py` decides when to sign and stores the notes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_TYPE_ECDSA = b"\x02"
SIGNATURE_PREFIX = "\u2014 "


class InvalidNote(ValueError):
    """A checkpoint note that is malformed or not signed by the expected key."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes

    def text(self) -> str:
        """The checkpoint body: origin, decimal size, base64 root, each ending in a newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root_hash).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise InvalidNote("checkpoint: needs origin, size and root hash lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise InvalidNote("checkpoint: bad origin or tree size line")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise InvalidNote("checkpoint: root hash is not base64") from None
    if len(root) != 32:
        raise InvalidNote("checkpoint: root hash is not 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root_hash=root)


def public_key_der(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(name: str, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256(key name ‖ 0x0A ‖ 0x02 ‖ DER SubjectPublicKeyInfo)[:4]."""
    material = name.encode() + b"\n" + SIGNATURE_TYPE_ECDSA + public_key_der(public_key)
    return hashlib.sha256(material).digest()[:4]


def sign_note(
    text: str,
    name: str,
    public_key: ec.EllipticCurvePublicKey,
    sign_der: Callable[[bytes], bytes],
) -> str:
    """`text` followed by a blank line and one signature line; `sign_der` returns an ASN.1 DER
    ECDSA-SHA256 signature over the bytes it is given (made on the token)."""
    if not text.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError("note text: must end in a newline and hold no control characters")
    if not name or " " in name or "+" in name or "\n" in name:
        raise ValueError("key name: non-empty, no spaces, plus signs or newlines")
    signature = sign_der(text.encode())
    blob = base64.b64encode(key_id(name, public_key) + signature).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{name} {blob}\n"


def open_note(note: str, name: str, public_key: ec.EllipticCurvePublicKey) -> str:
    """The note's text if a signature by (`name`, `public_key`) verifies; InvalidNote else."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise InvalidNote("note: no blank line before the signatures")
    text, signatures = note[: split + 1], note[split + 2 :]
    wanted = key_id(name, public_key)
    for line in signatures.rstrip("\n").split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise InvalidNote("note: malformed signature line")
        line_name, _, blob_text = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except binascii.Error:
            raise InvalidNote("note: signature is not base64") from None
        if line_name != name or blob[:4] != wanted:
            continue
        try:
            public_key.verify(blob[4:], text.encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise InvalidNote(f"note: the signature by {name} does not verify") from None
        return text
    raise InvalidNote(f"note: not signed by {name}")
