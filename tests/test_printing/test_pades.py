"""The certificate PDF signed PAdES B-B with the demo USBKey's certificate key, checked by
ordinary PDF tools trusting only the body's root: pyHanko's CLI and poppler's pdfsig."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.bootstrap import initialise
from certsvc.hsm import open_tokens
from certsvc.settings import Settings
from printing.render import CertificateSheet, render_certificate_pdf
from signer.custody import active_key, certificate_of
from signer.errors import SignatureInvalid
from signer.models import KeyPurpose, SigningKey
from signer.pades import TokenPdfSigner, sign_pdf, signer_for_key
from signer.tokens import TokenSession
from test_printing.pdf_tools import nss_database, pdfsig, pyhanko_validate, run, write_pem

CERTIFICATE_KEY = "certificate-1"


@pytest.fixture
def usbkey(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[TokenSession]:
    """The demo custodian's USBKey, provisioned by `certsvc init` and unlocked."""
    initialise(settings)
    credentials = json.loads(settings.credentials_file.read_text())["tokens"]["USBKEY-01"]
    tokens = open_tokens(settings, sessions)
    with tokens.login(credentials["serial"], credentials["user_pin"]) as session:
        yield session
    tokens.reset()


def _keys(db: Session) -> tuple[SigningKey, SigningKey]:
    key = db.scalar(select(SigningKey).where(SigningKey.label == CERTIFICATE_KEY))
    assert key is not None
    root = active_key(db, key.body_code, KeyPurpose.ROOT)
    assert root is not None
    return key, root


def assert_pades_baseline_b(signed: bytes) -> None:
    """ETSI EN 319 142-1 B-B: CAdES sub-filter, ESS signing-certificate-v2 signed, no CMS
    signing-time (the time is the dictionary's /M), signer and root certificates embedded."""
    embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    assert len(embedded) == 1
    signature = embedded[0]
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert "/M" in signature.sig_object
    attributes = {a["type"].native for a in signature.signer_info["signed_attrs"]}
    assert "signing_certificate_v2" in attributes
    assert "signing_time" not in attributes
    assert len(signature.signed_data["certificates"]) == 2


def assert_nss_trusts_signer(poppler: str, nss: str, signer_pem: Path, tmp_path: Path) -> None:
    """pdfsig's certificate verdict, backed by NSS's own chain check in the same database.

    Poppler 22.12 (Debian 12) reads NSS's error code even after `CERT_PKIXVerifyCert`
    succeeded and may then print "Unknown issue with Certificate" for a chain NSS accepts;
    what must never appear is an unknown or untrusted issuer, a revoked or expired
    certificate. `vfychain -pp -u 4` runs the very call pdfsig makes (PKIX, e-mail signer
    usage) and must find the chain good."""
    for refusal in ("issuer is unknown", "Issuer is not Trusted", "Revoked", "Expired"):
        assert refusal not in poppler, poppler
    assert (
        "Certificate Validation: Certificate is Trusted." in poppler
        or "Certificate Validation: Unknown issue with Certificate" in poppler
    ), poppler
    chain = run("vfychain", "-d", nss, "-pp", "-u", "4", "-a", signer_pem)
    assert chain.code == 0 and "Chain is good!" in chain.output, chain.output
    untrusted = nss_database(tmp_path / "nss-empty", None)
    assert run("vfychain", "-d", untrusted, "-pp", "-u", "4", "-a", signer_pem).code != 0


def test_signed_pdf_validates_and_a_changed_byte_is_reported(
    usbkey: TokenSession,
    sessions: sessionmaker[Session],
    sheet: CertificateSheet,
    tmp_path: Path,
) -> None:
    with sessions() as db:
        key, root = _keys(db)
        signer = signer_for_key(db, usbkey, key)
        root_pem = write_pem(certificate_of(root), tmp_path / "root.pem")
        signer_pem = write_pem(certificate_of(key), tmp_path / "signer.pem")
    signed = sign_pdf(render_certificate_pdf(sheet), signer, reason="教师资格证书")
    pdf = tmp_path / "signed.pdf"
    pdf.write_bytes(signed)

    checked = pyhanko_validate(pdf, root_pem)
    assert checked.code == 0, checked.output
    assert "The signature is judged VALID" in checked.output
    assert_pades_baseline_b(signed)

    nss = nss_database(tmp_path / "nss", root_pem)
    poppler = pdfsig(pdf, nss)
    assert "Signature Validation: Signature is Valid." in poppler.output, poppler.output
    assert "Total document signed" in poppler.output
    assert "Signature Type: ETSI.CAdES.detached" in poppler.output
    assert_nss_trusts_signer(poppler.output, nss, signer_pem, tmp_path)

    # One byte of the signed content changed: "certsvc" → "certsvb" in the Info dictionary.
    at = signed.index(b"/Creator (certsvc)") + len(b"/Creator (certsv")
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(signed[:at] + b"b" + signed[at + 1 :])
    checked = pyhanko_validate(tampered, root_pem)
    assert checked.code != 0
    assert "The signature is judged VALID" not in checked.output
    poppler = pdfsig(tampered, nss)
    assert "Signature Validation: Digest Mismatch." in poppler.output, poppler.output


def test_a_certificate_not_of_the_token_key_is_refused(
    usbkey: TokenSession, sessions: sessionmaker[Session], sheet: CertificateSheet
) -> None:
    """The signature is checked against the certificate before use: the wrong one never
    reaches a PDF."""
    with sessions() as db:
        _key, root = _keys(db)
        wrong = TokenPdfSigner(usbkey, CERTIFICATE_KEY, certificate_of(root), [])
    with pytest.raises(SignatureInvalid):
        sign_pdf(render_certificate_pdf(sheet), wrong)
