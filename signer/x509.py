"""X.509 for keys that never leave their tokens: each body's self-signed root, and a
certificate per signing key issued by that root.

cryptography builds certificates only with a private key it holds, so we let it encode the
TBSCertificate (signed by a throwaway key), have those exact bytes signed by the root key on its
token — through `signer.gate`: the caller passes `sign_der` bound to the gate (purpose
`key-certificate`, or `root-certificate` for the root's own) — and assemble the final
certificate with asn1crypto.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signer.tokens import TokenPublicKey

ROOT_YEARS = 20
KEY_YEARS = 5
# Returns the DER ECDSA-SHA256 signature, made on the token, over the bytes it is given.
SignDer = Callable[[bytes], bytes]


def body_name(name: str, body_code: str, unit: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, body_code),
    ]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    return x509.Name(attributes)


def issue_root_certificate(
    public_key: ec.EllipticCurvePublicKey,
    name: str,
    body_code: str,
    sign_der: SignDer,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """The body's self-signed trust anchor, signed by its own key (`public_key`'s private half,
    on its token)."""
    now = now or dt.datetime.now(dt.UTC)
    subject = body_name(name, body_code, "Root")
    subject = x509.Name([*subject, x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Root")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return _assemble(builder, sign_der)


def issue_key_certificate(
    root: x509.Certificate,
    subject_public_key: TokenPublicKey,
    common_name: str,
    purpose: str,
    sign_der: SignDer,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A signing key's certificate (ECDSA P-256, or Ed25519 for audit checkpoints):
    digitalSignature + nonRepudiation, within the root's life, signed by the root key
    (`sign_der`)."""
    now = now or dt.datetime.now(dt.UTC)
    org = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    code = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value
    subject = body_name(str(org), str(code), purpose)
    subject = x509.Name([*subject, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root.subject)
        .public_key(subject_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=365 * KEY_YEARS), root.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
    )
    return _assemble(builder, sign_der)


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _assemble(builder: x509.CertificateBuilder, sign_der: SignDer) -> x509.Certificate:
    draft = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    tbs = draft.tbs_certificate_bytes
    assembled = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs),
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature_value": sign_der(tbs),
        }
    )
    return x509.load_der_x509_certificate(assembled.dump())
