"""Export a range of the log as a self-contained bundle, and verify a bundle with nothing else.

A bundle holds the events' leaves, every checkpoint up to the newest, the consistency proofs
between consecutive checkpoints, an inclusion proof for each event against the newest
checkpoint, and the certificates of the checkpoint keys. An outside auditor checks it offline
and compares the certificates' fingerprints with the ones the body publishes (or the keys with
its published vkeys). Bundles of format 1 carried one certificate; they still verify.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.checkpoints import parse_checkpoint
from audit.events import decode_leaf
from audit.log import consistency_proof, inclusion_proof
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.models import AuditCheckpoint, AuditEventRow
from audit.note import InvalidNote, NoteKey, note_key, open_note
from audit.verify import Verdict
from common.errors import Conflict

FORMAT = "certsvc-audit-bundle/2"
FORMATS = ("certsvc-audit-bundle/1", FORMAT)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build_bundle(
    db: Session, origin: str, certificates: list[x509.Certificate], start: int, end: int
) -> dict[str, Any]:
    """Events [start, end) with proofs against the newest checkpoint, which must cover them."""
    checkpoints = list(db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)))
    if not checkpoints or checkpoints[-1].size < end:
        raise Conflict("range: not yet covered by a checkpoint; sign one first")
    newest = checkpoints[-1].size
    rows = db.scalars(
        select(AuditEventRow)
        .where(AuditEventRow.idx >= start, AuditEventRow.idx < end)
        .order_by(AuditEventRow.idx)
    )
    events = [
        {
            "index": row.idx,
            "leaf": _b64(row.leaf),
            "inclusion_proof": [_b64(h) for h in inclusion_proof(db, row.idx, newest)],
        }
        for row in rows
    ]
    sized = [c for c in checkpoints if c.size > 0]
    return {
        "format": FORMAT,
        "origin": origin,
        "certificates": [
            certificate.public_bytes(serialization.Encoding.PEM).decode()
            for certificate in certificates
        ],
        "range": [start, end],
        "checkpoints": [c.note for c in checkpoints],
        "consistency_proofs": [
            {
                "from": old.size,
                "to": new.size,
                "proof": [_b64(h) for h in consistency_proof(db, old.size, new.size)],
            }
            for old, new in itertools.pairwise(sized)
        ],
        "events": events,
    }


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def bundle_certificates(bundle: dict[str, Any]) -> list[x509.Certificate]:
    """The checkpoint keys' certificates a bundle carries (format 1: one, as `certificate`)."""
    pems = bundle["certificates"] if "certificates" in bundle else [bundle["certificate"]]
    return [x509.load_pem_x509_certificate(str(pem).encode()) for pem in pems]


def _note_key(origin: str, certificate: x509.Certificate) -> NoteKey:
    public = certificate.public_key()
    if not isinstance(public, Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("a checkpoint key is Ed25519 or ECDSA")
    return note_key(origin, public, legacy_id=True)


def verify_bundle(bundle: dict[str, Any]) -> Verdict:
    """Check every signature and proof in the bundle; name the first thing that fails."""
    verdict = Verdict()
    if bundle.get("format") not in FORMATS:
        verdict.fail(f"not a {FORMAT} bundle")
        return verdict
    try:
        origin = str(bundle["origin"])
        keys = [_note_key(origin, c) for c in bundle_certificates(bundle)]
        roots = {}
        for note in bundle["checkpoints"]:
            checkpoint = parse_checkpoint(open_note(note, keys).text)
            if checkpoint.origin != origin:
                raise InvalidNote(f"checkpoint {checkpoint.size} is another log's")
            roots[checkpoint.size] = checkpoint.root_hash
    except (InvalidNote, ValueError, KeyError, TypeError) as exc:
        verdict.fail(f"checkpoints: {exc}")
        return verdict
    verdict.checkpoints = len(roots)
    if not roots:
        verdict.fail("checkpoints: none in the bundle")
        return verdict
    newest = max(roots)
    verdict.latest_checkpoint = newest
    for link in bundle.get("consistency_proofs", []):
        old, new = int(link["from"]), int(link["to"])
        proof = [base64.b64decode(h) for h in link["proof"]]
        if (
            old not in roots
            or new not in roots
            or not verify_consistency(old, new, proof, roots[old], roots[new])
        ):
            verdict.fail(f"checkpoint {new} is not consistent with checkpoint {old}")
            return verdict
    for event in bundle.get("events", []):
        index = int(event["index"])
        leaf = base64.b64decode(event["leaf"])
        proof = [base64.b64decode(h) for h in event["inclusion_proof"]]
        try:
            position = decode_leaf(leaf).get("i")
        except ValueError:
            position = None
        if position != index or not verify_inclusion(
            leaf_hash(leaf), index, newest, proof, roots[newest]
        ):
            verdict.fail(f"entry {index} is not in the log signed at {newest} (changed or moved)")
            return verdict
        verdict.events += 1
    return verdict
