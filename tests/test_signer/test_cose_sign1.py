"""COSE_Sign1 ES256: signed on a token, verified by the public function and by `cryptography`
directly, independent of any payload schema; X.509 chain checks."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from sqlalchemy import select

from common.cose import (
    CoseInvalid,
    encode_sign1,
    kid_of,
    protected_header,
    to_be_signed,
    verify_sign1,
)
from signer.chain import ChainInvalid, verify_issued_by
from signer.custody import certificate_of
from signer.documents import signed_document
from signer.models import SigningKey
from signing_env import SigningEnv, certificates, content_of


def _local_sign1(payload: bytes, key: ec.EllipticCurvePrivateKey, kid: bytes) -> bytes:
    protected = protected_header(kid)
    der = key.sign(to_be_signed(protected, payload), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return encode_sign1(protected, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def test_any_payload_verifies_against_a_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    for payload in (b"", b"not cbor at all", cbor2.dumps({"x": [1, 2]})):
        message = _local_sign1(payload, key, b"12345678")
        verified = verify_sign1(message, key.public_key())
        assert verified.payload == payload and verified.kid == b"12345678"


def test_untagged_message_verifies_and_tampering_does_not() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    message = _local_sign1(b"payload", key, b"k")
    untagged = cbor2.dumps(cbor2.loads(message).value)
    assert verify_sign1(untagged, key.public_key()).payload == b"payload"
    protected, unprotected, _, signature = cbor2.loads(message).value
    forged = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, b"payloaD", signature]))
    with pytest.raises(CoseInvalid, match="does not verify"):
        verify_sign1(forged, key.public_key())
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CoseInvalid, match="does not verify"):
        verify_sign1(message, other.public_key())


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"\xff\x00", "well-formed"),
        (cbor2.dumps(cbor2.CBORTag(98, [])), "tag 98"),
        (cbor2.dumps([b"", {}, b""]), "four items"),
        (cbor2.dumps([cbor2.dumps({1: -35}), {}, b"x", b"\0" * 64]), "ES256"),
        (cbor2.dumps([cbor2.dumps({1: -7}), {}, None, b"\0" * 64]), "detached"),
        (cbor2.dumps([cbor2.dumps({1: -7}), {}, b"x", b"\0" * 63]), "64 bytes"),
        (cbor2.dumps([cbor2.dumps({1: -7, 2: [4]}), {}, b"x", b"\0" * 64]), "critical"),
    ],
)
def test_malformed_or_foreign_structures_are_refused(message: bytes, error: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CoseInvalid, match=error):
        verify_sign1(message, key.public_key())


def test_signed_certificate_verifies_with_its_x509_certificate_and_by_hand(
    env: SigningEnv,
) -> None:
    env.open()
    document = certificates(1)[0]
    env.signer.sign(env.custodian, env.key_id("certificate-1"), document)
    with env.sessions() as db:
        row = signed_document(db, "certificate", document.document_id)
        key = db.get(SigningKey, row.signing_key_id)
        assert key is not None
        certificate = certificate_of(key)
        root = certificate_of(db.get_one(SigningKey, key.issuer_key_id))
    verified = verify_sign1(row.cose, certificate)
    content = content_of(document.kind, document.document_id)
    assert cbor2.loads(verified.payload) == content
    assert verified.payload == cbor2.dumps(content, canonical=True)
    assert row.kid == kid_of(certificate) == hashlib.sha256(key.certificate_der).digest()[:8]
    assert row.payload_sha256 == hashlib.sha256(verified.payload).hexdigest()
    # By hand, as an outside verifier following RFC 9052 would.
    tag = cbor2.loads(row.cose)
    assert tag.tag == 18
    protected, unprotected, payload, signature = tag.value
    assert cbor2.loads(protected) == {1: -7, 4: row.kid} and unprotected == {}
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    public.verify(encode_dss_signature(r, s), sig_structure, ec.ECDSA(hashes.SHA256()))
    verify_issued_by(certificate, root)


def test_signing_certificate_chains_to_the_root_with_openssl(
    env: SigningEnv, tmp_path: Path
) -> None:
    with env.sessions() as db:
        key = db.scalars(select(SigningKey).where(SigningKey.label == "certificate-1")).one()
        leaf = certificate_of(key)
        root = certificate_of(db.get_one(SigningKey, key.issuer_key_id))
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with pytest.raises(ChainInvalid, match="not a certification authority"):
        verify_issued_by(root, leaf)
    impostor = _self_signed_ca(root.subject)
    with pytest.raises(ChainInvalid, match="does not verify"):
        verify_issued_by(leaf, impostor)


def _self_signed_ca(name: x509.Name) -> x509.Certificate:
    """A root with the same name as the body's, but another key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
