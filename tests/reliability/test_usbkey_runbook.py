"""The runbook in docs/operators.md for a lost USBKey, step by step: the key is revoked and
stops signing, the trust list is published again, and a certificate it signed before still
verifies."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from certsvc.accounts import Role
from init_cache import initialised
from service_helpers import MakeStaff
from signer.models import SigningKey
from signer.policy import PolicyRefused
from verify.offline import verify_offline
from verify_support import Demo


def test_lost_usbkey_runbook_keeps_earlier_certificates_verifiable(
    demo: Demo, make_staff: MakeStaff
) -> None:
    issued = demo.certificate("20264100000000001")
    officer = make_staff(Role.SECURITY_OFFICER)
    headers = {"Authorization": f"Bearer {officer.token}"}
    with demo.sessions() as db:
        key = db.scalars(select(SigningKey).where(SigningKey.label == "certificate-1")).one()

    # Steps 1 and 2: the security officer revokes the lost token's key certificate.
    answer = demo.client.post(
        f"/api/v1/hsm/keys/{key.id}/revoke-certificate",
        json={"reason": "USBKey lost in transit"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    with demo.sessions() as db:
        revoked = db.get(SigningKey, key.id)
        assert revoked is not None and revoked.retired_at is not None

    # The service no longer signs with it: the gate refuses, and says so in the audit log.
    with pytest.raises(PolicyRefused) as refused:
        demo.certificate("20264100000000003")
    assert refused.value.rule == "key-retired"
    # But the token itself still signs (it is lost, not destroyed): a "certificate" made by
    # whoever holds it, dated later.
    forged = demo.forged("20264100000000002", when=2_000_000_000)

    # Step 4: publish the trust list again (what `certsvc init` does, idempotently).
    before = demo.client.get("/.well-known/certsvc/trust-list.json").json()["trust_list"]
    initialised(demo.settings)
    trust = demo.client.get("/.well-known/certsvc/trust-list.json").json()["trust_list"]
    assert trust != before
    retired = [k for k in trust["keys"] if k["purpose"] == "certificate" and k["retired_at"]]
    assert len(retired) == 1

    # Step 5: the certificate signed before the loss still verifies, on line and off line.
    online = demo.client.get(f"/api/v1/verify/{issued.verification_id}")
    assert online.status_code == 200 and online.json()["status"] == "valid"
    verdict = verify_offline(issued.text, trust)
    assert verdict.valid, verdict.reason
    assert verdict.key_valid_at_issue is True
    # Whereas a payload the thief makes with the key, dated after the loss, does not.
    verdict = verify_offline(forged.text, trust)
    assert not verdict.valid and verdict.key_valid_at_issue is False
