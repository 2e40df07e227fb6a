"""The printed certificate: rendered with the holder's full name and the QR, then PAdES-signed
with the certificate key inside the custodian's open signing session.

The PDF is the holder's own document, so it carries the full name: the name comes through the
vault's `reveal`, by the custodian who signs (from their workstation), purpose "print
certificate <number>", under the custodian's print limit — an audit event and a `VaultReveal`
row, and a refusal when over the limit. Nothing of it is stored.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from certify.issuance import PENDING
from certify.models import Applicant, Application, Certificate
from common.errors import Conflict, NotFound
from printing.render import CertificateSheet, render_certificate_pdf
from signer.actor import Actor
from signer.custody import active_key
from signer.models import KeyPurpose
from signer.pades import sign_pdf, signer_for_key
from signer.sessions import SigningSession
from vault.reveal import Revealer, RevealLimit, reveal
from vault.store import Vault
from verify.codes import QUALIFICATIONS, SUBJECTS
from verify.models import TrustedBody
from verify.qrimage import qr_modules


def certificate_pdf(
    db: Session,
    vault: Vault,
    actor: Actor,
    session: SigningSession,
    body_code: str,
    number: str,
    limit: RevealLimit,
) -> bytes:
    """The signed PDF of an issued certificate; the holder-name reveal is recorded in `db`'s
    transaction (commit it with the PDF's release). Over `limit`, `RevealRateLimited` after
    committing the refusal: nothing is rendered."""
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
    if key is None or session.key_label != key.label:
        raise Conflict("session: open a signing session for the certificate key first")
    who = Revealer(actor.username, actor.role, actor.workstation)
    purpose = f"print certificate {number}"
    name = reveal(db, vault, who, [applicant.name_token], purpose, limit)[applicant.name_token]
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
    signer = signer_for_key(db, session.token, key)
    return sign_pdf(render_certificate_pdf(sheet), signer, reason=f"教师资格证书 {number}")
