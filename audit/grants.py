"""Privileges backed by audit events.

A row that grants a privilege (an account's role, an API token, a workstation's key, a token's
custodian) stores the index of the audit event that granted it, and that event carries in its
details the SHA-256 of the row's privilege-bearing fields (`grant_digest`). Whoever honours the
privilege calls `grant_backed`: a row written straight into the database has no such event (or
one for other fields), so it grants nothing. Forging the event means appending to the log,
where `certsvc audit verify` and the security officer see it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

import cbor2
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.events import DetailValue, decode_leaf
from audit.merkle import leaf_hash
from audit.models import AuditEventRow, AuditNode

GRANT_DETAIL = "grant"
# A row granted before grants were events, until `certsvc init` adopts it with one.
LEGACY_GRANT = -1
GRANT_ADOPT = "service.grant.adopt"


def grant_digest(kind: str, fields: Mapping[str, DetailValue]) -> str:
    """SHA-256 (hex) of the canonical CBOR of what a grant is about, `kind` included."""
    return hashlib.sha256(cbor2.dumps({"kind": kind, **fields}, canonical=True)).hexdigest()


def grant_event(
    db: Session, index: int | None, allowed: Mapping[str, Collection[str]]
) -> dict[str, object] | None:
    """The decoded event at `index` if it is intact (its leaf hashes to the stored leaf hash
    and tree node), succeeded, and its action is a key of `allowed` done by one of that
    action's roles; None otherwise."""
    if index is None:
        return None
    row = db.execute(
        select(AuditEventRow.leaf, AuditEventRow.leaf_hash, AuditNode.hash)
        .join(AuditNode, (AuditNode.level == 0) & (AuditNode.idx == AuditEventRow.idx))
        .where(AuditEventRow.idx == index)
    ).one_or_none()
    if row is None:
        return None
    leaf = bytes(row[0])
    digest = leaf_hash(leaf)
    if digest != bytes(row[1]) or digest != bytes(row[2]):
        return None
    try:
        decoded = decode_leaf(leaf)
    except ValueError:
        return None
    action = decoded.get("action")
    roles = allowed.get(action) if isinstance(action, str) else None
    if decoded.get("i") != index or decoded.get("outcome") != "ok" or roles is None:
        return None
    return decoded if decoded.get("role") in roles else None


def grant_backed(
    db: Session, index: int | None, allowed: Mapping[str, Collection[str]], digest: str
) -> bool:
    """Whether the event at `index` grants exactly what `digest` describes (see
    `grant_event` for which events count)."""
    decoded = grant_event(db, index, allowed)
    if decoded is None:
        return False
    details = decoded.get("details")
    return isinstance(details, dict) and details.get(GRANT_DETAIL) == digest
