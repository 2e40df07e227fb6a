"""The custody register: which tokens exist, who holds each, which keys each carries (R6)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.grants import GRANT_ADOPT, grant_backed, grant_digest
from audit.trail import Attributed, record
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from common.unit_of_work import keep
from signer.actor import CUSTODIAN_ROLE, Actor
from signer.errors import NotCustodian
from signer.models import (
    ED25519,
    ES256,
    HandoverStatus,
    HsmToken,
    KeyPurpose,
    KeyStatus,
    RevocationApproval,
    SigningKey,
    TokenHandover,
    TokenWorkstation,
)
from signer.second_person import Approval, Party, approve_as_second

REASON_MAX = 200


TOKEN_REGISTER = "signer.token.register"  # noqa: S105 (an audit action name)
HANDOVER_ACCEPT = "signer.custody.handover_accept"
_CUSTODY_EVENTS = {
    TOKEN_REGISTER: frozenset({"system", "admin"}),
    HANDOVER_ACCEPT: frozenset({CUSTODIAN_ROLE}),
    GRANT_ADOPT: frozenset({"system"}),
}


def custody_digest(token: HsmToken) -> str:
    return grant_digest("custody", {"serial": token.serial, "custodian_id": token.custodian_id})


def custody_backed(db: Session, token: HsmToken) -> bool:
    """Whether the token's custodian is the one its registration or its last accepted
    handover named (a custodian written into the database directly is not)."""
    return grant_backed(db, token.custody_idx, _CUSTODY_EVENTS, custody_digest(token))


def register_token(
    db: Session,
    by: Attributed,
    serial: str,
    label: str,
    model: str,
    manufacturer: str,
    custodian_id: int | None,
) -> HsmToken:
    """Register a token; its custody, when it has a custodian, is granted by its event (the
    service's own tokens, held by nobody, grant no one anything). A token is named by its
    serial or its label, so neither may be another token's serial or label: each name finds
    exactly one token."""
    if db.get(HsmToken, serial) is not None:
        raise Conflict(f"token: serial {serial} is already registered")
    clash = db.scalar(
        select(HsmToken.serial).where(
            (HsmToken.label == serial) | (HsmToken.label == label) | (HsmToken.serial == label)
        )
    )
    if clash is not None:
        raise Conflict(f"token: label {label} or serial {serial} already names USBKey {clash}")
    token = HsmToken(
        serial=serial,
        label=label,
        model=model,
        manufacturer=manufacturer,
        custodian_id=custodian_id,
        pin_failures=0,
    )
    db.add(token)
    db.flush()
    if custodian_id is not None:
        token.custody_idx = record(
            db,
            by,
            TOKEN_REGISTER,
            serial,
            details={"label": label, "custodian_id": custodian_id, "grant": custody_digest(token)},
        )
    return token


def register_key(
    db: Session,
    token_serial: str,
    label: str,
    purpose: KeyPurpose,
    body_code: str,
    certificate: x509.Certificate,
    issuer_key_id: int | None = None,
    usage_limit: int | None = None,
    usage_count: int = 0,
) -> SigningKey:
    """A key generated on a token, with its certificate; `usage_count` counts signatures it
    made before it was registered (a root's self-signature)."""
    key = SigningKey(
        token_serial=token_serial,
        label=label,
        purpose=purpose,
        algorithm=algorithm_of(certificate),
        body_code=body_code,
        certificate_der=certificate.public_bytes(serialization.Encoding.DER),
        issuer_key_id=issuer_key_id,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        usage_count=usage_count,
        usage_limit=usage_limit,
        status=KeyStatus.ACTIVE,
    )
    db.add(key)
    db.flush()
    return key


def algorithm_of(certificate: x509.Certificate) -> str:
    """What a key signs with, from its certificate: ES256 (ECDSA P-256), or Ed25519."""
    return ED25519 if isinstance(certificate.public_key(), Ed25519PublicKey) else ES256


def active_key(db: Session, body_code: str, purpose: KeyPurpose) -> SigningKey | None:
    """The body's newest active key for a purpose."""
    return db.scalars(
        select(SigningKey)
        .where(
            SigningKey.body_code == body_code,
            SigningKey.purpose == purpose,
            SigningKey.status == KeyStatus.ACTIVE,
        )
        .order_by(SigningKey.id.desc())
    ).first()


def list_tokens(db: Session) -> list[HsmToken]:
    return list(db.scalars(select(HsmToken).order_by(HsmToken.label)))


def certificate_of(key: SigningKey) -> x509.Certificate:
    return x509.load_der_x509_certificate(key.certificate_der)


class DbPinCounter:
    """Wrong PINs counted in the database, so every worker and the CLI agree on tries left;
    written in the unit of work of the login and kept although it rolls back
    (`common.unit_of_work.keep`): a wrong PIN was typed, whatever becomes of the request."""

    def __init__(self, db: Session) -> None:
        self._db = db

    def failed(self, serial: str) -> int | None:
        count = (
            update(HsmToken)
            .where(HsmToken.serial == serial)
            .values(pin_failures=HsmToken.pin_failures + 1)
        )
        keep(self._db, lambda db: db.execute(count))
        return self._db.scalar(select(HsmToken.pin_failures).where(HsmToken.serial == serial))

    def succeeded(self, serial: str) -> None:
        failures = self._db.scalar(select(HsmToken.pin_failures).where(HsmToken.serial == serial))
        if not failures:
            return  # nothing to reset: no write, so no write lock taken on SQLite
        reset = (
            update(HsmToken)
            .where(HsmToken.serial == serial, HsmToken.pin_failures != 0)
            .values(pin_failures=0)
        )
        keep(self._db, lambda db: db.execute(reset))


def find_token(db: Session, name: str, field: str = "token") -> HsmToken:
    """The registered token named by its serial or its label (people read labels off the
    USBKey, modules report serials: either names it)."""
    token = db.get(HsmToken, name) or db.scalar(select(HsmToken).where(HsmToken.label == name))
    if token is None:
        raise NotFound(f"{field}: no registered USBKey with serial or label {name!r}")
    return token


def get_key(db: Session, key_id: int) -> SigningKey:
    key = db.get(SigningKey, key_id)
    if key is None:
        raise NotFound(f"key_id: no signing key {key_id}")
    return key


def token_workstations(db: Session, serial: str) -> set[str]:
    """Names of the workstations a token may be used on."""
    rows = db.scalars(
        select(TokenWorkstation.workstation_name).where(TokenWorkstation.token_serial == serial)
    )
    return set(rows)


def register_token_workstation(
    db: Session, actor: Actor, name: str, workstation: str, workstation_custodian_id: int
) -> TokenWorkstation:
    """Allow the token `name` (serial or label) to be used on `workstation`, which must be in
    the token custodian's custody (R6: token, custodian and computer go together)."""
    token = find_token(db, name, "token_serial")
    serial = token.serial
    if token.custodian_id is None or token.custodian_id != workstation_custodian_id:
        raise InvalidInput(
            f"workstation: {workstation} is not in the custody of USBKey {token.label}'s "
            f"custodian; register a workstation of theirs"
        )
    if workstation in token_workstations(db, serial):
        raise Conflict(f"workstation: {workstation} is already registered for {token.label}")
    row = TokenWorkstation(
        token_serial=serial, workstation_name=workstation, registered_by=actor.username
    )
    db.add(row)
    record(
        db,
        actor,
        "signer.custody.workstation_add",
        f"token:{serial}",
        details={"workstation": workstation},
    )
    db.flush()
    return row


def unregister_token_workstation(db: Session, actor: Actor, name: str, workstation: str) -> None:
    token = find_token(db, name, "token_serial")
    serial = token.serial
    removed = db.execute(
        delete(TokenWorkstation).where(
            TokenWorkstation.token_serial == serial,
            TokenWorkstation.workstation_name == workstation,
        )
    )
    if not getattr(removed, "rowcount", 0):
        raise NotFound(f"workstation: {workstation} is not registered for USBKey {token.label}")
    record(
        db,
        actor,
        "signer.custody.workstation_remove",
        f"token:{serial}",
        details={"workstation": workstation},
    )


def authorise_session(db: Session, actor: Actor, name: str, key_label: str) -> SigningKey:
    """The key a custodian may open a signing session for on the token `name` (serial or
    label), after the custody checks: the token is theirs, the workstation registered for it,
    the key on it and usable."""
    token = find_token(db, name, "token_serial")
    serial = token.serial
    if token.custodian_id != actor.account_id:
        raise NotCustodian(f"token_serial: USBKey {token.label} is in another person's custody")
    if not custody_backed(db, token):
        raise NotCustodian(
            f"token_serial: the custody of USBKey {token.label} has no grant event on record"
        )
    if actor.workstation not in token_workstations(db, serial):
        raise NotCustodian(
            f"workstation {actor.workstation} is not registered for USBKey {token.label}; "
            f"an admin registers it for the token"
        )
    key = db.scalar(
        select(SigningKey).where(SigningKey.token_serial == serial, SigningKey.label == key_label)
    )
    if key is None:
        raise NotFound(f"key_label: USBKey {token.label} carries no key {key_label!r}")
    if key.status is KeyStatus.RETIRED or key.certificate_revoked_at is not None:
        raise Conflict(f"key_label: key {key_label} is retired or revoked and never signs again")
    return key


def offer_handover(
    db: Session, actor: Actor, name: str, to_custodian_id: int, to_role: str
) -> TokenHandover:
    """The outgoing custodian offers their token `name` (serial or label) to another custodian;
    nothing changes hands until the incoming one accepts."""
    token = find_token(db, name, "token_serial")
    serial = token.serial
    if token.custodian_id != actor.account_id:
        raise NotCustodian(f"token_serial: USBKey {token.label} is not in your custody")
    if to_role != CUSTODIAN_ROLE:
        raise InvalidInput("to: the incoming person must hold the custodian role")
    if to_custodian_id == actor.account_id:
        raise InvalidInput("to: a token is handed over to another custodian")
    pending = db.scalar(
        select(TokenHandover.id).where(
            TokenHandover.token_serial == serial,
            TokenHandover.status == HandoverStatus.PENDING.value,
        )
    )
    if pending is not None:
        raise Conflict(f"token_serial: handover {pending} of {token.label} is still pending")
    handover = TokenHandover(
        token_serial=serial,
        from_custodian_id=actor.account_id,
        to_custodian_id=to_custodian_id,
        status=HandoverStatus.PENDING.value,
        offered_from=actor.workstation or "",
    )
    db.add(handover)
    db.flush()
    record(
        db,
        actor,
        "signer.custody.handover_offer",
        f"token:{serial}",
        details={"handover": handover.id, "to_custodian_id": to_custodian_id},
    )
    return handover


def accept_handover(db: Session, actor: Actor, handover_id: int) -> TokenHandover:
    """The incoming custodian confirms receipt: the token is theirs, the previous custodian's
    workstations no longer count for it, and the security officer sees it in the audit log."""
    handover = _pending_handover(db, handover_id)
    if handover.to_custodian_id != actor.account_id:
        raise NotCustodian(f"handover {handover_id}: only the incoming custodian accepts it")
    token = find_token(db, handover.token_serial, "token_serial")
    token.custodian_id = actor.account_id
    db.execute(delete(TokenWorkstation).where(TokenWorkstation.token_serial == token.serial))
    _close(handover, actor, HandoverStatus.COMPLETED)
    token.custody_idx = record(
        db,
        actor,
        HANDOVER_ACCEPT,
        f"token:{token.serial}",
        reason="custody changed",
        details={
            "handover": handover.id,
            "from_custodian_id": handover.from_custodian_id,
            "to_custodian_id": handover.to_custodian_id,
            "notify": "security_officer",
            "grant": custody_digest(token),
        },
    )
    return handover


def cancel_handover(db: Session, actor: Actor, handover_id: int) -> TokenHandover:
    """Either party withdraws a pending handover; the token stays where it was."""
    handover = _pending_handover(db, handover_id)
    if actor.account_id not in (handover.from_custodian_id, handover.to_custodian_id):
        raise NotCustodian(f"handover {handover_id}: only its two custodians may cancel it")
    _close(handover, actor, HandoverStatus.CANCELLED)
    record(
        db,
        actor,
        "signer.custody.handover_cancel",
        f"token:{handover.token_serial}",
        details={"handover": handover.id},
    )
    return handover


def list_handovers(db: Session) -> list[TokenHandover]:
    return list(db.scalars(select(TokenHandover).order_by(TokenHandover.id.desc())))


def retire_key(db: Session, actor: Actor, key_id: int, reason: str) -> SigningKey:
    """Retire a key for good: it never signs again; what it signed stays verifiable."""
    key = get_key(db, key_id)
    if key.status is KeyStatus.RETIRED:
        raise Conflict(f"key_id: key {key.label} is already retired")
    key.status = KeyStatus.RETIRED
    key.retired_at = utcnow()
    record(
        db,
        actor,
        "signer.key.retire",
        f"key:{key.id}",
        reason=_reason(reason),
        details={"key": key.label, "token": key.token_serial},
    )
    return key


def revoke_key_certificate(db: Session, actor: Actor, key_id: int, reason: str) -> SigningKey:
    """Revoke a key's certificate (e.g. the USBKey was lost): the key is retired as well."""
    key = get_key(db, key_id)
    if key.certificate_revoked_at is not None:
        raise Conflict(f"key_id: the certificate of key {key.label} is already revoked")
    now = utcnow()
    key.certificate_revoked_at = now
    key.revocation_reason = _reason(reason)
    if key.status is not KeyStatus.RETIRED:
        key.status = KeyStatus.RETIRED
        key.retired_at = now
    record(
        db,
        actor,
        "signer.key.revoke_certificate",
        f"key:{key.id}",
        reason=key.revocation_reason,
        details={"key": key.label, "token": key.token_serial},
    )
    return key


def approve_revocation(
    db: Session, actor: Actor, document_id: str, content_sha256: str, reason: str
) -> RevocationApproval:
    """One officer's approval of a revocation, bound to the digest of the content that will be
    signed: dual control counts distinct officers who approved exactly that content, and a
    natural person approves once whatever the number of officer accounts they hold. Callers
    serialise approvals of one document (`certify.issuance.approve` locks its revocation)."""
    earlier = db.execute(
        select(RevocationApproval.officer, RevocationApproval.person).where(
            RevocationApproval.document_id == document_id
        )
    )
    approve_as_second(
        db,
        actor,
        Approval(
            f"revocation {document_id}",
            [Party(officer, "approved it", person) for officer, person in earlier],
            "signer.revocation.approve",
            f"revocation:{document_id}",
            document_sha256=content_sha256,
        ),
    )
    approval = RevocationApproval(
        document_id=document_id,
        content_sha256=content_sha256,
        officer=actor.username,
        officer_role=actor.role,
        person=actor.person,
        reason=_reason(reason, limit=500),
    )
    db.add(approval)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(
            f"document_id: you already approved revocation {document_id}; a second officer must"
        ) from None
    return approval


def approvals_for(
    db: Session, document_ids: list[str]
) -> dict[str, list[tuple[str, str, str | None]]]:
    """(officer, role, approved content digest) per revocation document."""
    found: dict[str, list[tuple[str, str, str | None]]] = {}
    if not document_ids:
        return found
    rows = db.execute(
        select(
            RevocationApproval.document_id,
            RevocationApproval.officer,
            RevocationApproval.officer_role,
            RevocationApproval.content_sha256,
        ).where(RevocationApproval.document_id.in_(document_ids))
    )
    for document_id, officer, role, digest in rows:
        found.setdefault(document_id, []).append((officer, role, digest))
    return found


def _pending_handover(db: Session, handover_id: int) -> TokenHandover:
    handover = db.get(TokenHandover, handover_id)
    if handover is None:
        raise NotFound(f"handover {handover_id} does not exist")
    if handover.status != HandoverStatus.PENDING.value:
        raise Conflict(f"handover {handover_id} is already {handover.status}")
    return handover


def _close(handover: TokenHandover, actor: Actor, status: HandoverStatus) -> None:
    handover.status = status.value
    handover.closed_at = utcnow()
    handover.closed_from = actor.workstation or ""


def _reason(reason: str, limit: int = REASON_MAX) -> str:
    reason = reason.strip()
    if not reason or len(reason) > limit:
        raise InvalidInput(f"reason: 1–{limit} characters saying why")
    return reason
