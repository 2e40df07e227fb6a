"""Checkpoints: the C2SP `tlog-checkpoint` text (origin, tree size, root hash) that the log
signs as a C2SP signed note (`audit.note`). Pure formatting here; `publish.py` decides when to
sign and stores the notes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from audit.note import InvalidNote


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
    if (
        not origin
        or not (size_text.isascii() and size_text.isdigit())
        or (size_text != "0" and size_text[0] == "0")
    ):
        raise InvalidNote("checkpoint: bad origin or tree size line")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise InvalidNote("checkpoint: root hash is not base64") from None
    if len(root) != 32:
        raise InvalidNote("checkpoint: root hash is not 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root_hash=root)
