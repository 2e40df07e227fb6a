"""Publishing the body's issuing keys to the public register and signing the trust list with
the body's root key — at provisioning, and whenever the set of keys changes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.settings import Settings
from signer.custody import certificate_of
from signer.ecdsa import sign_p256
from signer.models import KeyPurpose, SigningKey
from signer.tokens import TokenSession
from verify.models import TrustedKey
from verify.register import publish_body, publish_key, retire_key
from verify.trust import latest_trust_list, sign_trust_list

# Keys whose signatures the public checks: certificates and revocations.
PUBLISHED_PURPOSES = (KeyPurpose.CERTIFICATE, KeyPurpose.REVOCATION)


def publish_trust_list(
    settings: Settings, sessions: sessionmaker[Session], root: TokenSession
) -> bool:
    """Bring the public trust list in line with the custody register; sign a new version with
    the root key on `root` if anything changed. True when a new version was signed."""
    with sessions.begin() as db:
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
        root_certificate = certificate_of(root_key)
        publish_body(db, settings.body_code, settings.body_name, root_certificate)
        for key in keys:
            if key.purpose is KeyPurpose.ROOT:
                continue
            kid = publish_key(db, key.body_code, key.purpose.value, certificate_of(key))
            if key.retired_at is not None:
                retire_key(db, kid, key.retired_at)
        after = {k.kid: k.retired_at for k in db.scalars(select(TrustedKey))}
        if after == before and latest_trust_list(db) is not None:
            return False
        public = root_certificate.public_key()
        sign_trust_list(
            db,
            lambda data: sign_p256(root, root_key.label, data, public).der,  # type: ignore[arg-type]
        )
        return True
