"""The printed certificate: rendered with the holder's full name and the QR, then PAdES-signed
through the signing gate with the body's certificate key, inside the custodian's open session on
that key's token (custodian rules, counted, one audit event).

The PDF is the holder's own document, so it carries the full name: the name comes through the
vault's `reveal`, by the custodian who signs (from their workstation), purpose "print
certificate <number>", under the custodian's print limit — an audit event and a `VaultReveal`
row, and a refusal when over the limit. Nothing of it is stored.
"""

from __future__ import annotations

from sqlalchemy import select

from certify.issuance import PENDING
from certify.models import Applicant, Application, Certificate
from common.errors import Conflict, NotFound
from printing.render import CertificateSheet, render_certificate_pdf
from signer.actor import Actor
from signer.custody import active_key
from signer.gate import GateTransaction, SigningGate, SignRequest, Subject
from signer.models import KeyPurpose
from signer.pades import sign_pdf, signer_for_key
from signer.policy import SignPurpose
from vault.reveal import RevealLimit, reveal
from vault.store import Vault
from verify.codes import QUALIFICATIONS, SUBJECTS
from verify.models import TrustedBody
from verify.qrimage import qr_modules


def certificate_pdf(
    unit: GateTransaction,
    vault: Vault,
    gate: SigningGate,
    actor: Actor,
    body_code: str,
    number: str,
    limit: RevealLimit,
) -> bytes:
    """The signed PDF of an issued certificate; the holder-name reveal and the signature are
    recorded in `unit`'s transaction (commit it with the PDF's release). Over `limit`,
    `RevealRateLimited` with the refusal kept on record: nothing is rendered."""
    db = unit.db
    row = db.execute(
        select(Certificate, Application, Applicant)
        .join(Application, Application.id == Certificate.application_id)
        .join(Applicant, Applicant.id == Application.applicant_id)
        .where(Certificate.number == number)
    ).first()
    if row is None:
        raise NotFound(f"number: no certificate {number}")
    certificate, application, applicant = row
    if certificate.status == PENDING or certificate.qr_text is None:
        raise Conflict(f"number: certificate {number} is not issued yet")
    key = active_key(db, body_code, KeyPurpose.CERTIFICATE)
    if key is None:
        raise Conflict("key: the body has no active certificate key")
    purpose = f"print certificate {number}"
    name = reveal(db, vault, actor, [applicant.name_token], purpose, limit)[applicant.name_token]
    body = db.get(TrustedBody, body_code)
    qualification = QUALIFICATIONS[application.qualification]
    subject = SUBJECTS[application.subject]
    sheet = CertificateSheet(
        holder_name=name.value,
        qualification_zh=qualification[0],
        qualification_en=qualification[1],
        subject_zh=subject[0],
        subject_en=subject[1],
        number=number,
        body_name=body.name if body else body_code,
        issue_date=certificate.issue_date,
        qr_modules=qr_modules(certificate.qr_text),
    )
    pdf = Subject(f"certificate-pdf:{number}")
    signer = signer_for_key(
        db,
        key,
        lambda data: (
            gate.sign(unit, actor, key.id, SignRequest(SignPurpose.CERTIFICATE_PDF, pdf, data)).der
        ),
    )
    return sign_pdf(render_certificate_pdf(sheet), signer, reason=f"教师资格证书 {number}")
