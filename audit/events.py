"""What an audit event says, and its canonical encoding: the bytes that become a Merkle leaf.

An event names who (actor, role, workstation), what (action, object, outcome, reason) and when,
plus the SHA-256 of any document involved. It never carries a personal value, a PIN, a
password or a key: callers pass identifiers (tokens, serials, labels, usernames) only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import cbor2

ENCODING_VERSION = 1
OUTCOMES = ("ok", "allowed", "refused", "failed")
OBJECT_MAX = 128
REASON_MAX = 500
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_-]*)+$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DetailValue = str | int | bool | None


class InvalidEvent(ValueError):
    """An event that would not be meaningful or safe in the log; the message names the field."""


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    role: str
    action: str
    object: str
    outcome: str
    workstation: str | None = None
    reason: str = ""
    document_sha256: str | None = None
    details: Mapping[str, DetailValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.actor or len(self.actor) > 64:
            raise InvalidEvent("actor: 1–64 characters")
        if not self.role or len(self.role) > 32:
            raise InvalidEvent("role: 1–32 characters")
        if not _ACTION_RE.match(self.action) or len(self.action) > 64:
            raise InvalidEvent("action: dotted lower-case name such as 'signer.sign'")
        if len(self.object) > OBJECT_MAX:
            raise InvalidEvent(f"object: at most {OBJECT_MAX} characters")
        if self.outcome not in OUTCOMES:
            raise InvalidEvent(f"outcome: one of {', '.join(OUTCOMES)}")
        if len(self.reason) > REASON_MAX:
            raise InvalidEvent(f"reason: at most {REASON_MAX} characters")
        if self.document_sha256 is not None and not _SHA256_RE.match(self.document_sha256):
            raise InvalidEvent("document_sha256: 64 lower-case hex digits")
        for key, value in self.details.items():
            if not isinstance(key, str) or not isinstance(value, str | int | bool | None):
                raise InvalidEvent("details: string keys, scalar values")


def leaf_time(occurred_at: datetime) -> str:
    """An event's time as its leaf carries it: UTC, to the microsecond."""
    return occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_leaf(event: AuditEvent, index: int, occurred_at: datetime) -> bytes:
    """Deterministic CBOR (RFC 8949 §4.2.1) of the event, its position and its time.

    The index is inside the leaf, so a row moved to another position no longer matches.
    """
    record = {
        "v": ENCODING_VERSION,
        "i": index,
        "t": leaf_time(occurred_at),
        "actor": event.actor,
        "role": event.role,
        "ws": event.workstation,
        "action": event.action,
        "object": event.object,
        "outcome": event.outcome,
        "reason": event.reason,
        "doc": event.document_sha256,
        "details": dict(event.details),
    }
    return cbor2.dumps(record, canonical=True)


def decode_leaf(leaf: bytes) -> dict[str, object]:
    """The stored leaf as a mapping, for display and export."""
    decoded = cbor2.loads(leaf)
    if not isinstance(decoded, dict):
        raise ValueError("audit leaf is not a CBOR map")
    return decoded
