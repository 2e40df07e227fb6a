"""`certsvc hsm renew-certificate`: a key's certificate issued again by the root, same key or a
new one; the trust list is signed again and what was signed before still verifies."""

from __future__ import annotations

import json
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from audit.models import AuditEventRow
from common.cose import kid_of
from server_support import CERTSVC
from signer.custody import certificate_of
from signer.models import KeyPurpose, KeyStatus, SigningKey
from verify.offline import verify_offline
from verify_support import Demo, demo

__all__ = ["demo"]


def _renew(demo: Demo, *args: str) -> subprocess.CompletedProcess[str]:
    """As the root's custodian and the USBKey's run it: their PINs typed (here, piped)."""
    tokens = json.loads(demo.settings.credentials_file.read_text())["tokens"]
    pins = f"{tokens['USBKEY-01']['user_pin']}\n{tokens['CERTSVC-ROOT']['user_pin']}\n"
    return subprocess.run(
        [CERTSVC, "hsm", "renew-certificate", *args],
        input=pins,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _key(demo: Demo, label: str) -> SigningKey:
    with demo.sessions() as db:
        return db.scalars(select(SigningKey).where(SigningKey.label == label)).one()


def _trust(demo: Demo) -> dict[str, object]:
    trust: dict[str, object] = demo.client.get("/.well-known/certsvc/trust-list.json").json()[
        "trust_list"
    ]
    return trust


def _public(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_same_key_renewal_keeps_old_signatures_verifiable(demo: Demo) -> None:
    issued = demo.certificate("20264100000000011")
    old = _key(demo, "certificate-1")
    old_certificate = certificate_of(old)
    before = _trust(demo)

    done = _renew(demo, "USBKEY-01/certificate-1")
    assert done.returncode == 0, done.stderr
    renewed = _key(demo, "certificate-1")
    certificate = certificate_of(renewed)
    assert renewed.id == old.id and renewed.status is KeyStatus.ACTIVE
    assert certificate.serial_number != old_certificate.serial_number
    assert _public(certificate) == _public(old_certificate)
    root = certificate_of(_key(demo, "root"))
    certificate.verify_directly_issued_by(root)

    trust = _trust(demo)
    assert trust["version"] == before["version"] + 1  # type: ignore[operator]
    kids = {k["kid"]: k for k in trust["keys"]}  # type: ignore[attr-defined]
    assert kid_of(old_certificate).hex() in kids and kid_of(certificate).hex() in kids
    assert kids[kid_of(old_certificate).hex()]["retired_at"] is None
    verdict = verify_offline(issued.text, trust)
    assert verdict.valid, verdict.reason
    # The key goes on signing after the renewal.
    assert verify_offline(demo.certificate("20264100000000012").text, trust).valid
    with demo.sessions() as db:
        renewals = db.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "signer.key.renew")
        ).all()
    assert len(renewals) == 1
    tokens = json.loads(demo.settings.credentials_file.read_text())["tokens"]
    assert all(t["user_pin"] not in done.stdout + done.stderr for t in tokens.values())


def test_new_key_renewal_retires_the_old_key(demo: Demo) -> None:
    issued = demo.certificate("20264100000000021")
    old = _key(demo, "certificate-1")

    done = _renew(demo, "certificate-1", "--new-key")
    assert done.returncode == 0, done.stderr
    retired = _key(demo, "certificate-1")
    new = _key(demo, "certificate-2")
    assert retired.status is KeyStatus.RETIRED and new.status is KeyStatus.ACTIVE
    assert new.token_serial == old.token_serial and new.purpose is KeyPurpose.CERTIFICATE
    assert _public(certificate_of(new)) != _public(certificate_of(old))
    certificate_of(new).verify_directly_issued_by(certificate_of(_key(demo, "root")))

    trust = _trust(demo)
    kids = {k["kid"]: k for k in trust["keys"]}  # type: ignore[attr-defined]
    assert kids[kid_of(certificate_of(old)).hex()]["retired_at"] is not None
    assert kids[kid_of(certificate_of(new)).hex()]["retired_at"] is None
    verdict = verify_offline(issued.text, trust)
    assert verdict.valid and verdict.key_valid_at_issue is True


def test_refusals_name_the_key(demo: Demo) -> None:
    root = _renew(demo, "root")
    assert root.returncode != 0 and "trust anchor" in root.stderr
    unknown = _renew(demo, "certificate-9")
    assert unknown.returncode != 0 and "no active key 'certificate-9'" in unknown.stderr
