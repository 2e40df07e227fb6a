"""The certificate PDF signed PAdES B-B with the demo USBKey's certificate key, through the
signing gate in the custodian's session, checked by ordinary PDF tools trusting only the body's
root: pyHanko's CLI and poppler's pdfsig."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.models import AuditEventRow
from printing.render import CertificateSheet, render_certificate_pdf
from signer.custody import active_key, certificate_of
from signer.errors import SignatureInvalid
from signer.gate import SignRequest, Subject, signing_transaction
from signer.models import KeyPurpose, SigningKey
from signer.pades import sign_pdf, signer_for_key
from signer.policy import SignPurpose
from signing_env import SigningEnv
from test_printing.pdf_tools import nss_database, pdfsig, pyhanko_validate, run, write_pem

CERTIFICATE_KEY = "certificate-1"


def _signed(env: SigningEnv, sheet: CertificateSheet) -> bytes:
    """The sheet rendered and PAdES-signed as the service does: through the gate, in the
    custodian's open session for the certificate key."""
    with signing_transaction(env.sessions) as unit:
        key, _ = _keys(unit.db)
        subject = Subject(f"certificate-pdf:{sheet.number}")
        signer = signer_for_key(
            unit.db,
            key,
            lambda data: (
                env.gate.sign(
                    unit,
                    env.custodian,
                    key.id,
                    SignRequest(SignPurpose.CERTIFICATE_PDF, subject, data),
                ).der
            ),
        )
        return sign_pdf(render_certificate_pdf(sheet), signer, reason="教师资格证书")


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
    env: SigningEnv, sheet: CertificateSheet, tmp_path: Path
) -> None:
    env.open(CERTIFICATE_KEY)
    with env.sessions() as db:
        key, root = _keys(db)
        root_pem = write_pem(certificate_of(root), tmp_path / "root.pem")
        signer_pem = write_pem(certificate_of(key), tmp_path / "signer.pem")
    signed = _signed(env, sheet)
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


def test_a_signature_not_matching_the_registered_certificate_never_reaches_a_pdf(
    env: SigningEnv, sheet: CertificateSheet
) -> None:
    """The gate checks every signature against the key's registered certificate before use:
    with another certificate on record (here the root's), the PDF is not made and the attempt
    is a `failed` event."""
    env.open(CERTIFICATE_KEY)
    with env.sessions.begin() as db:
        key, root = _keys(db)
        key.certificate_der = root.certificate_der
    with pytest.raises(SignatureInvalid, match="does not verify"):
        _signed(env, sheet)
    with env.sessions() as db:
        failed = db.scalars(
            select(AuditEventRow).where(
                AuditEventRow.action == "signer.sign", AuditEventRow.outcome == "failed"
            )
        ).all()
    assert [e.object for e in failed] == [f"certificate-pdf:{sheet.number}"]
