"""The offline verifier against trust lists and payloads made by someone else: a body root and
keys held in software here (the verifier never touches a token), certificates forged the ways
an attacker would, and COSE framings other issuers use. Whatever it is given, it answers with a
verdict, never an exception."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import date
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from common.cose import kid_of
from verify.offline import BARE_NOT_VERIFIED, verify_offline
from verify.payload import (
    Claims,
    new_verification_id,
    offline_text,
    parse_qr_text,
    qr_text,
    sign_claims,
)

BODY = "410000"
BASE = "https://verify.example.edu.cn"
NOW = dt.datetime.now(dt.UTC)
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: PrivateKey, issuer: str, issuer_key: PrivateKey
) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
    )
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _sign_raw(key: ec.EllipticCurvePrivateKey) -> Any:
    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


@dataclass
class Body:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    issuing: x509.Certificate

    def trust(self, issuing: x509.Certificate | None = None, **key: Any) -> dict[str, Any]:
        certificate = issuing or self.issuing
        return {
            "bodies": [{"code": BODY, "name": "body", "root_certificate": _pem(self.root)}],
            "keys": [
                {
                    "kid": kid_of(certificate).hex(),
                    "body": BODY,
                    "purpose": "certificate",
                    "certificate": _pem(certificate),
                    "retired_at": None,
                    **key,
                }
            ],
        }

    def cose(
        self,
        number: str,
        verification_id: str,
        key: ec.EllipticCurvePrivateKey | None = None,
        certificate: x509.Certificate | None = None,
    ) -> bytes:
        """Claims signed by `key` (default: the issuing key) under the key id of
        `certificate` (default: the issuing key's)."""
        claims = Claims(BODY, number, "SS", "02", "欧阳**", date(2026, 7, 1), int(NOW.timestamp()))
        kid = kid_of(certificate or self.issuing)
        return sign_claims(claims, verification_id, kid, _sign_raw(key or self.issuing_key))


@pytest.fixture(scope="module")
def body() -> Body:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _certificate("body root", root_key, "body root", root_key)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    return Body(
        root_key, root, issuing_key, _certificate("issuing", issuing_key, "body root", root_key)
    )


def test_a_genuine_payload_is_valid(body: Body) -> None:
    vid = new_verification_id()
    verdict = verify_offline(qr_text(BASE, vid, body.cose("20264100000000001", vid)), body.trust())
    assert verdict.valid and verdict.reason == "signature valid"


def test_a_key_certificate_naming_the_root_but_signed_by_another_key_is_refused(
    body: Body,
) -> None:
    """Seen through `certsvc verify-qr`: `InvalidSignature` escaped the verifier."""
    impostor = ec.generate_private_key(ec.SECP256R1())
    own_key = ec.generate_private_key(ec.SECP256R1())
    forged = _certificate("issuing", own_key, "body root", impostor)
    vid = new_verification_id()
    text = qr_text(BASE, vid, body.cose("20264100000000002", vid, own_key, forged))
    verdict = verify_offline(text, body.trust(issuing=forged))
    assert not verdict.valid
    assert verdict.reason == "the signing key's certificate is not issued by the body's root"


def _other_roots() -> list[x509.Certificate]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    p384 = ec.generate_private_key(ec.SECP384R1())
    return [
        _certificate("body root", rsa_key, "body root", rsa_key),
        _certificate("body root", ed_key, "body root", ed_key),
        _certificate("body root", p384, "body root", p384),
    ]


OTHER_ROOTS = _other_roots()
JUNK = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=40),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.sampled_from([_pem(c) for c in OTHER_ROOTS]),
    st.sampled_from(["2026-13-45", "9999-12-31T23:59:59+00:00", "-1", "x" * 10_000]),
)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(
        ["root_certificate", "code", "certificate", "retired_at", "purpose", "body", "kid"]
    ),
    junk=JUNK,
    forge_issuer=st.booleans(),
)
def test_any_malformed_trust_list_gives_a_verdict(
    body: Body, field: str, junk: object, forge_issuer: bool
) -> None:
    issuing = body.issuing
    if forge_issuer:
        issuing = _certificate(
            "issuing", body.issuing_key, "body root", ec.generate_private_key(ec.SECP256R1())
        )
    trust = body.trust(issuing=issuing)
    vid = new_verification_id()
    text = qr_text(BASE, vid, body.cose("20264100000000003", vid, certificate=issuing))
    if field in ("root_certificate", "code"):
        trust["bodies"][0][field] = junk
    else:
        trust["keys"][0][field] = junk
    verdict = verify_offline(text, trust)
    assert isinstance(verdict.reason, str) and verdict.reason
    if forge_issuer or field in ("root_certificate", "certificate", "kid", "body", "purpose"):
        assert verdict.valid is False


def test_a_bare_payload_says_the_same_for_known_and_unknown_numbers(body: Body) -> None:
    """A junk signature under a real key id must not tell whether a certificate number is on
    file: the answer is one and the same."""
    known_id = new_verification_id()
    on_file = {"20264100000000004": known_id}
    answers = []
    for number in ("20264100000000004", "20264100000000099"):
        junk_key = ec.generate_private_key(ec.SECP256R1())
        bare = offline_text(body.cose(number, known_id, key=junk_key))
        answers.append(verify_offline(bare, body.trust(), on_file.get))
    assert [a.reason for a in answers] == [BARE_NOT_VERIFIED, BARE_NOT_VERIFIED]
    assert [a.verification_id for a in answers] == [None, None]
    genuine = offline_text(body.cose("20264100000000004", known_id))
    assert verify_offline(genuine, body.trust(), on_file.get).valid


def test_a_cwt_tagged_cose_sign1_is_accepted(body: Body) -> None:
    """EU DCC issuers wrap COSE_Sign1 (tag 18) in a CWT tag (61); the signature is the same."""
    vid = new_verification_id()
    _, cose = parse_qr_text(qr_text(BASE, vid, body.cose("20264100000000005", vid)))
    message = cbor2.loads(cose)
    sign1 = message if isinstance(message, cbor2.CBORTag) else cbor2.CBORTag(18, message)
    wrapped = cbor2.dumps(cbor2.CBORTag(61, sign1))
    verdict = verify_offline(f"{BASE}/V/{vid}#{offline_text(wrapped)}", body.trust())
    assert verdict.valid and verdict.reason == "signature valid"
