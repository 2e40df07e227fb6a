"""A revocation list naming every revocation on record, signed by the revocation key's custodian.

The public side believes a revoked status only from a signed revocation list. Revocations
signed before such lists existed (an upgraded install) are named by none, so their
certificates answer 404 until a list names them: this signs the next version — the newest
verified list plus every recorded revocation it lacks — through the gate. On a body with no
list and no revocation that is the empty version 1, which `certsvc init` signs in the
simulation, so that an offline verifier knows a status from the first certificate on.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.query import ok_leaves
from audit.trail import record
from certify.issuance import REVOKE_EVENT
from certify.models import Certificate, Revocation
from common.cose import kid_of
from common.errors import Conflict, NotFound
from signer.actor import Actor
from signer.custody import active_key, certificate_of
from signer.gate import SigningGate, SignRequest, Subject, signing_transaction
from signer.models import KeyPurpose
from signer.policy import SignPurpose
from verify.models import PublicCertificate
from verify.register import REVOKED, revoke_certificate
from verify.trust import (
    RevocationList,
    Revoked,
    TrustListInvalid,
    canonical,
    revocation_list_adding,
    store_revocation_list,
    verified_revocations,
)

CATCH_UP = "certify.revocation_list.catch_up"


@dataclass(frozen=True)
class CaughtUp:
    """The version signed and how many recorded revocations it added."""

    version: int
    added: int


def unlisted_revocations(db: Session, listed: RevocationList | None) -> dict[str, Revoked]:
    """Signed revocations on record that `listed` does not name, by verification id. Each must
    have its signing event in the audit log (`certify.certificate.revoke` naming it): a
    `revoked_on` written into the table alone revokes nothing, and is refused by name."""
    rows = db.execute(
        select(
            Revocation.id,
            Certificate.number,
            Certificate.verification_id,
            Revocation.revoked_on,
            Revocation.category,
        )
        .join(Revocation, Revocation.certificate_id == Certificate.id)
        .where(Revocation.revoked_on.is_not(None))
        .order_by(Revocation.id)
    )
    added: dict[str, Revoked] = {}
    for revocation_id, number, verification_id, revoked_on, category in rows:
        if revoked_on is None or (listed is not None and listed.find(verification_id) is not None):
            continue
        if revocation_id not in _signed_revocations(db, number):
            raise Conflict(
                f"revocation {revocation_id}: marked revoked with no signing event in the "
                "audit log; run `certsvc audit reconcile` before signing a list"
            )
        added[verification_id] = Revoked(revoked_on, category)
    return added


def _signed_revocations(db: Session, number: str) -> set[object]:
    """The revocation ids the audit log says were signed for certificate `number`."""
    obj = f"certificate:{number}"
    leaves = ok_leaves(db, [REVOKE_EVENT], [obj]).get((REVOKE_EVENT, obj), [])
    details = [leaf.get("details") for leaf in leaves]
    return {d.get("revocation") for d in details if isinstance(d, dict)}


def sign_catch_up_list(
    sessions: sessionmaker[Session],
    gate: SigningGate,
    actor: Actor,
    body_code: str,
    trust_anchors: frozenset[str],
) -> CaughtUp | None:
    """Sign the next revocation list version with every recorded revocation the newest one
    lacks (their register rows marked revoked too), in one transaction, audited; None when
    a list already names them all. The actor needs the revocation key's open session."""
    with signing_transaction(sessions) as unit:
        db = unit.db
        key = active_key(db, body_code, KeyPurpose.REVOCATION)
        if key is None:
            raise NotFound(f"revocation key: body {body_code} has no active one")
        try:
            previous = verified_revocations(db, trust_anchors)
        except TrustListInvalid as exc:
            raise Conflict(
                f"revocation list: the newest on file does not verify ({exc}); run "
                "`certsvc audit reconcile` and restore it before signing another"
            ) from None
        added = unlisted_revocations(db, previous)
        if previous is not None and not added:
            return None
        for verification_id, revoked in added.items():
            row = db.get(PublicCertificate, verification_id)
            if row is not None and row.status != REVOKED:
                revoke_certificate(db, verification_id, revoked.on, revoked.category)
        document = revocation_list_adding(
            previous, body_code, kid_of(certificate_of(key)).hex(), added
        )
        version = int(document["version"])
        subject = Subject(f"revocation-list:{body_code}:{version}")
        signature = gate.sign(
            unit,
            actor,
            key.id,
            SignRequest(SignPurpose.REVOCATION_LIST, subject, canonical(document)),
        )
        store_revocation_list(db, document, signature.der)
        record(
            db,
            actor,
            CATCH_UP,
            f"revocation-list:{version}",
            details={"added": len(added), "revocation_list": version},
        )
    return CaughtUp(version, len(added))
