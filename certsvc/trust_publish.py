"""Publishing the body's issuing keys to the public register and signing the trust list with
the body's root key — at provisioning, and whenever the set of keys changes."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.settings import Settings
from signer.actor import Actor
from signer.custody import certificate_of
from signer.gate import SignRequest, Subject, sign_as_service, signing_transaction
from signer.models import KeyPurpose, SigningKey
from signer.policy import SignPurpose
from signer.tokens import TokenSession
from verify.models import TrustedKey
from verify.register import publish_body, publish_key, retire_key
from verify.trust import latest_trust_list, sign_trust_list

# Keys whose signatures the public checks: certificates and revocations.
PUBLISHED_PURPOSES = (KeyPurpose.CERTIFICATE, KeyPurpose.REVOCATION)


def publish_trust_list(
    settings: Settings, sessions: sessionmaker[Session], root: TokenSession, actor: Actor
) -> bool:
    """Bring the public trust list in line with the custody register; sign a new version with
    the root key on `root` (through the gate: service rules, counted, one event in the same
    transaction) if anything changed. True when a new version was signed."""
    with signing_transaction(sessions) as unit:
        db = unit.db
        keys = list(
            db.scalars(
                select(SigningKey).where(
                    SigningKey.body_code == settings.body_code,
                    SigningKey.purpose.in_((KeyPurpose.ROOT, *PUBLISHED_PURPOSES)),
                )
            )
        )
        root_key = next((k for k in keys if k.purpose is KeyPurpose.ROOT), None)
        if root_key is None:
            raise RuntimeError("the body has no root key: run `certsvc init`")
        before = {k.kid: k.retired_at for k in db.scalars(select(TrustedKey))}
        publish_body(db, settings.body_code, settings.body_name, certificate_of(root_key))
        for key in keys:
            if key.purpose is KeyPurpose.ROOT:
                continue
            kid = publish_key(db, key.body_code, key.purpose.value, certificate_of(key))
            if key.retired_at is not None:
                retire_key(db, kid, key.retired_at)
        after = {k.kid: k.retired_at for k in db.scalars(select(TrustedKey))}
        if after == before and latest_trust_list(db) is not None:
            return False
        root_key_id = root_key.id

        def sign_der(document: bytes) -> bytes:
            version = json.loads(document)["version"]
            subject = Subject(f"trust-list:{settings.body_code}:{version}")
            request = SignRequest(SignPurpose.TRUST_LIST, subject, document)
            return sign_as_service(unit, actor, root_key_id, root, request)

        sign_trust_list(db, sign_der)
        return True
