"""The printed certificate: rendered with the holder's full name and the QR, then PAdES-signed
through the signing gate with the body's certificate key, inside the custodian's open session on
that key's token (custodian rules, counted, one audit event).

The PDF is the holder's own document, so it carries the full name: the name is opened from the
vault only into the PDF, and that opening is an audited reveal (`vault.reveal`, purpose
"print certificate <number>") by the custodian who signs. Nothing of it is stored.
"""

from __future__ import annotations

from sqlalchemy import select

from audit.events import AuditEvent
from audit.log import append
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
from vault.store import Vault
from verify.codes import QUALIFICATIONS, SUBJECTS
from verify.models import TrustedBody


def certificate_pdf(
    unit: GateTransaction,
    vault: Vault,
    gate: SigningGate,
    actor: Actor,
    body_code: str,
    number: str,
) -> bytes:
    """The signed PDF of an issued certificate; the holder-name reveal and the signature are
    audited in `unit`'s transaction (commit it with the PDF's release)."""
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
    name = vault.open(db, [applicant.name_token])[applicant.name_token].value
    append(
        db,
        AuditEvent(
            actor=actor.username,
            role=actor.role,
            workstation=actor.workstation,
            action="vault.reveal",
            object=applicant.name_token,
            outcome="ok",
            reason=f"print certificate {number}",
        ),
    )
    body = db.get(TrustedBody, body_code)
    qualification = QUALIFICATIONS[application.qualification]
    subject = SUBJECTS[application.subject]
    sheet = CertificateSheet(
        holder_name=name,
        qualification_zh=qualification[0],
        qualification_en=qualification[1],
        subject_zh=subject[0],
        subject_en=subject[1],
        number=number,
        body_name=body.name if body else body_code,
        issue_date=certificate.issue_date,
        qr_text=certificate.qr_text,
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
