"""What the public side publishes besides answers about one certificate — the trust list, the
revocation list (current and each version), the audit log's checkpoint and tiles — as exact
bytes, and how they are cached: one function each, used by the routes and by the relay's static
files (`certsvc.public_static`), so nginx, a CDN and Python serve the same bytes.

The ETag is a hash of those bytes, so every Python node gives the same one for the same object;
a conditional request that names it is answered 304 without a body."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request, Response
from sqlalchemy.orm import Session

from verify.models import SignedRevocationList, SignedTrustList
from verify.proof import ListRolledBack, RegisterProof
from verify.trust import (
    TrustListInvalid,
    latest_revocation_list,
    latest_trust_list,
    open_revocation_list,
    published,
    published_revocations,
)

# A revocation shows everywhere within a minute; a numbered version never changes.
CURRENT = "public, max-age=30"
IMMUTABLE = "public, max-age=31536000, immutable"
TEXT = "text/plain; charset=utf-8"
CHECKPOINT_CACHE = "public, max-age=5"  # a new checkpoint every minute or so
WELL_KNOWN = "/.well-known/certsvc"
TRUST_LIST_PATH = f"{WELL_KNOWN}/trust-list.json"
REVOCATIONS_PATH = f"{WELL_KNOWN}/revocations.json"
AUDIT_CHECKPOINT_PATH = f"{WELL_KNOWN}/audit-checkpoint"
TILES_PATH = "/audit/tiles"


def revocations_version_path(version: int) -> str:
    return f"{WELL_KNOWN}/revocations/{version}.json"


def json_bytes(content: Any) -> bytes:
    """`content` exactly as a `JSONResponse` renders it."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


def etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _matches(request: Request, tag: str) -> bool:
    asked = request.headers.get("if-none-match")
    if asked is None:
        return False
    # weak comparison, as RFC 9110 §13.1.2 asks for If-None-Match
    return any(t.strip().removeprefix("W/") in (tag, "*") for t in asked.split(","))


def cached(
    request: Request,
    content: bytes,
    media_type: str,
    cache_control: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """`content` with its ETag and `cache_control`, or 304 when the client holds it already."""
    tag = etag(content)
    sent = {**(headers or {}), "ETag": tag, "Cache-Control": cache_control}
    if _matches(request, tag):
        return Response(status_code=304, headers=sent)
    return Response(content, media_type=media_type, headers=sent)


def opened_trust(proof: RegisterProof, db: Session) -> dict[str, Any] | None:
    """The newest trust list that opens under the pinned anchors (never an older one than
    `proof` has used), opened."""
    latest = latest_trust_list(db)
    return proof.trust(None if latest is None else latest.version)


def served_trust_list(proof: RegisterProof, db: Session) -> SignedTrustList | None:
    trust = opened_trust(proof, db)
    return None if trust is None else db.get(SignedTrustList, trust["version"])


def served_revocation_list(proof: RegisterProof, db: Session) -> SignedRevocationList | None:
    """The newest revocation list whose signature holds under the opened trust list; None
    also when none does, or it is older than one `proof` has used."""
    trust = opened_trust(proof, db)
    if trust is None:
        return None
    latest = latest_revocation_list(db)
    try:
        listing = proof.revocations(None if latest is None else latest.version, trust)
    except ListRolledBack:
        return None
    return None if listing is None else db.get(SignedRevocationList, listing.version)


def revocation_list_version(
    proof: RegisterProof, db: Session, version: int
) -> SignedRevocationList | None:
    """Version `version` of the revocation list when its signature holds under the opened
    trust list and it says that version; None else."""
    trust = opened_trust(proof, db)
    signed = db.get(SignedRevocationList, version)
    if trust is None or signed is None:
        return None
    try:
        opened = open_revocation_list(published_revocations(signed), trust)
    except TrustListInvalid:
        return None
    return signed if opened.version == version else None


def trust_list_bytes(signed: SignedTrustList) -> bytes:
    return json_bytes(published(signed))


def revocation_list_bytes(signed: SignedRevocationList) -> bytes:
    return json_bytes(published_revocations(signed))
