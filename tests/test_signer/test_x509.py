"""Each body's root on its own token issues certificates for signing keys on other tokens.

The certificates are signed on the tokens with the raw operation under the signing gate (the
service asks the gate; here the X.509 encoding is what is tested)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsm_fixtures import Hsm
from signer._internal.raw import sign_p256
from signer.tokens import TokenSession
from signer.x509 import SignDer, issue_key_certificate, issue_root_certificate

BODY = "河南省教育厅"


def _on_token(session: TokenSession, label: str) -> SignDer:
    public = session.public_key(label)
    return lambda data: sign_p256(session, label, data, public).der


def _chain(hsm: Hsm) -> tuple[x509.Certificate, x509.Certificate, str, str]:
    root_key = hsm.add_token("ROOT")
    user_key = hsm.add_token("USBKEY-A")
    root = hsm.tokens.login(root_key.serial, root_key.pin, rw=True)
    root_public = root.generate_ec_p256("root", b"\x00")
    root_cert = issue_root_certificate(root_public, BODY, "410000", _on_token(root, "root"))
    user = hsm.tokens.login(user_key.serial, user_key.pin, rw=True)
    public = user.generate_ec_p256("cert-1", b"\x01")
    leaf = issue_key_certificate(
        root_cert, public, "证书签章 USBKEY-A", "certificate", _on_token(root, "root")
    )
    user.store_certificate("cert-1", b"\x01", leaf)
    root.close()
    user.close()
    return root_cert, leaf, user_key.serial, user_key.pin


def _pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_root_is_a_self_signed_ca(hsm: Hsm) -> None:
    root, _, _, _ = _chain(hsm)
    root.verify_directly_issued_by(root)
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_key_certificate_chains_to_the_root(hsm: Hsm, tmp_path: Path) -> None:
    root, leaf, _, _ = _chain(hsm)
    leaf.verify_directly_issued_by(root)
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert leaf.not_valid_after_utc <= root.not_valid_after_utc
    done = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(_pem(tmp_path / "root.pem", root)),
            str(_pem(tmp_path / "leaf.pem", leaf)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(": OK")


def test_openssl_rejects_a_leaf_under_another_root(hsm: Hsm, tmp_path: Path) -> None:
    _, leaf, _, _ = _chain(hsm)
    other_key = hsm.add_token("OTHER-ROOT")
    with hsm.tokens.login(other_key.serial, other_key.pin, rw=True) as other:
        other_public = other.generate_ec_p256("root", b"\x00")
        other_root = issue_root_certificate(other_public, BODY, "410000", _on_token(other, "root"))
    done = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(_pem(tmp_path / "other.pem", other_root)),
            str(_pem(tmp_path / "leaf.pem", leaf)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0


def test_openssl_verifies_a_token_signature_with_the_exported_certificate(
    hsm: Hsm, tmp_path: Path
) -> None:
    _, leaf, serial, pin = _chain(hsm)
    data = tmp_path / "decision.cbor"
    data.write_bytes("认定结论 2020-0001".encode())
    with hsm.tokens.login(serial, pin) as session:
        signature = _on_token(session, "cert-1")(data.read_bytes())
    (tmp_path / "sig.der").write_bytes(signature)
    pubkey = subprocess.run(
        ["openssl", "x509", "-in", str(_pem(tmp_path / "leaf.pem", leaf)), "-pubkey", "-noout"],
        capture_output=True,
        check=True,
    ).stdout
    (tmp_path / "pub.pem").write_bytes(pubkey)
    verify = [
        "openssl",
        "dgst",
        "-sha256",
        "-verify",
        str(tmp_path / "pub.pem"),
        "-signature",
        str(tmp_path / "sig.der"),
    ]
    ok = subprocess.run([*verify, str(data)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Verified OK" in ok.stdout
    data.write_bytes("认定结论 2020-0002".encode())
    bad = subprocess.run([*verify, str(data)], capture_output=True, text=True, check=False)
    assert bad.returncode != 0


def test_certificate_is_stored_on_the_token(hsm: Hsm) -> None:
    _, leaf, serial, pin = _chain(hsm)
    hsm.tokens.reset()

    token = hsm.library.get_token(token_serial=serial.encode())
    with token.open(user_pin=pin) as session:
        stored = list(session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE}))
        assert len(stored) == 1
        der = stored[0][pkcs11.Attribute.VALUE]
    assert x509.load_der_x509_certificate(der) == leaf
