"""`certsvc hsm renew-certificate`: a signing key's certificate issued again by the body's root
before it expires — for the same key, or for a new key made on the same token.

Same key: the new certificate replaces the key's registered one and the one on the token; the
old certificate stays in the public trust list (what was signed under it keeps its kid and still
verifies). New key: the new key is certified and registered, the old one retired (it signs
nothing more; what it signed stays verifiable as signed while it was in service). Either way
the trust list is signed again by the root, whose custodian opens the root session with its PIN.
A checkpoint key's new key goes through the checkpoint-key rotation, which announces it in the
log. The root's own certificate is not renewed here: a new root means a new trust anchor.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.trail import record
from certsvc.bootstrap import (
    DemoKey,
    certify_key,
    key_on_token,
    root_signs,
    rotate_checkpoint_key,
)
from certsvc.service_pins import service_pin
from certsvc.settings import Settings
from certsvc.trust_publish import publish_trust_list
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor
from signer.custody import active_key, certificate_of, retire_key
from signer.gate import signing_transaction
from signer.models import HsmToken, KeyPurpose, KeyStatus, SigningKey
from signer.tokens import Pkcs11Tokens, TokenPublicKey
from signer.x509 import issue_key_certificate


def find_key(db: Session, name: str) -> SigningKey:
    """The active key named by its id, its label, or `TOKEN/LABEL` (token by label or serial)."""
    token, _, label = name.rpartition("/")
    query = select(SigningKey).where(SigningKey.status == KeyStatus.ACTIVE)
    if name.isdigit():
        query = query.where(SigningKey.id == int(name))
    else:
        query = query.where(SigningKey.label == label)
    if token:
        serials = select(HsmToken.serial).where(
            (HsmToken.serial == token) | (HsmToken.label == token)
        )
        query = query.where(SigningKey.token_serial.in_(serials))
    found = list(db.scalars(query))
    if not found:
        raise NotFound(f"KEY: no active key {name!r} (give its id, label or USBKEY/LABEL)")
    if len(found) > 1:
        raise InvalidInput(f"KEY: several tokens carry a key {name!r}; name it as USBKEY/LABEL")
    return found[0]


def token_pin_source(db: Session, key: SigningKey) -> str | None:
    """The label under which the service keeps the key's token PIN, or None when a person
    (the token's custodian) must type it."""
    token = db.get_one(HsmToken, key.token_serial)
    return token.label if token.custodian_id is None else None


def renew_certificate(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    key_id: int,
    root_pin: str,
    token_pin: str | None,
    actor: Actor,
    new_key: bool = False,
) -> SigningKey:
    """Re-issue key `key_id`'s certificate from the root; the key that holds it now."""
    with sessions() as db:
        key = db.get_one(SigningKey, key_id)
        token = db.get_one(HsmToken, key.token_serial)
        root_key = active_key(db, settings.body_code, KeyPurpose.ROOT)
        on_token = db.scalar(
            select(func.count())
            .select_from(SigningKey)
            .where(SigningKey.token_serial == token.serial)
        )
        taken = set(
            db.scalars(select(SigningKey.label).where(SigningKey.token_serial == token.serial))
        )
    if key.purpose is KeyPurpose.ROOT:
        raise InvalidInput(
            "KEY: the root's certificate is the trust anchor; it is not renewed here"
        )
    if key.status is KeyStatus.RETIRED or key.certificate_revoked_at is not None:
        raise Conflict(f"KEY: key {key.label} is retired or revoked and is not renewed")
    if root_key is None:
        raise NotFound("the body has no active root key")
    if new_key and key.purpose is KeyPurpose.AUDIT_CHECKPOINT:
        return rotate_checkpoint_key(settings, sessions, tokens, root_pin, actor, key.algorithm)
    pin = (
        token_pin
        if token.custodian_id is not None
        else service_pin(settings.service_pins_file, token.label)
    )
    if pin is None:
        raise InvalidInput(f"PIN: the custodian of USBKey {token.label} must unlock it")
    with (
        tokens.login(root_key.token_serial, root_pin) as root,
        tokens.login(token.serial, pin, rw=True) as session,
    ):
        if new_key:
            spec = DemoKey(_next_label(key.label, taken), key.purpose, key.algorithm)
            index = (on_token or 0) + 1
            public = key_on_token(session, spec, index)
            with signing_transaction(sessions) as unit:
                renewed = certify_key(
                    unit, settings, session, token.label, spec, public, root_key, root, actor
                )
                retire_key(unit.db, actor, key.id, f"certificate renewed with new key {spec.label}")
        else:
            public = _public_key(key)
            name = f"{token.serial}/{key.label}"
            with signing_transaction(sessions) as unit:
                renewed = unit.db.get_one(SigningKey, key.id)
                certificate = issue_key_certificate(
                    certificate_of(root_key),
                    public,
                    f"{token.label}/{key.label}",
                    key.purpose.value,
                    root_signs(unit, root_key, root, name, actor),
                )
                session.store_certificate(key.label, session.key_id(key.label), certificate)
                old_end = renewed.not_after
                renewed.certificate_der = certificate.public_bytes(serialization.Encoding.DER)
                renewed.not_before = certificate.not_valid_before_utc
                renewed.not_after = certificate.not_valid_after_utc
                record(
                    unit.db,
                    actor,
                    "signer.key.renew",
                    f"key:{key.id}",
                    details={
                        "key": key.label,
                        "token": token.serial,
                        "old_not_after": old_end.isoformat(),
                        "not_after": renewed.not_after.isoformat(),
                    },
                )
        publish_trust_list(settings, sessions, root, actor)
    return renewed


def _public_key(key: SigningKey) -> TokenPublicKey:
    public = certificate_of(key).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | Ed25519PublicKey):
        raise InvalidInput(f"KEY: key {key.label} is neither ECDSA P-256 nor Ed25519")
    return public


def _next_label(label: str, taken: set[str]) -> str:
    """`certificate-1` → `certificate-2` (the first free number on the token)."""
    stem = re.sub(r"-\d+$", "", label)
    number = 2
    while f"{stem}-{number}" in taken:
        number += 1
    return f"{stem}-{number}"
