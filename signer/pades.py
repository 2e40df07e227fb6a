"""PAdES signatures on certificate PDFs, made with the body's key on its USBKey.

PAdES B-B by default; B-T (a signature timestamp from an RFC 3161 authority) when a timestamp
URL is given. The PDF is signed by pyHanko; the private key never leaves the token.

Why a pyHanko `Signer` of our own rather than pyHanko's `PKCS11Signer`: `PKCS11Signer` drives a
python-pkcs11 session directly, which would bypass the signing gate (policy, usage count, audit
event) and `Pkcs11Tokens` — the process-wide module lock (SoftHSM is initialised without locking
and crashes on concurrent calls), `hsm_sim`'s proxies (PIN lockout, unplug, fault injection), the
translation of module faults into errors a custodian can act on, and the check of every
signature before use. `TokenPdfSigner` gives pyHanko only `async_sign_raw`, answered by a
`sign_der` the caller binds to `signer.gate` (purpose `certificate-pdf`): pyHanko asks for the
one signature once, so the PDF leaves one audit event. The certificates (signer and chain up to
the body's root) come from the custody register, not from the token.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from asn1crypto import algos as asn1_algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy.orm import Session

from signer.custody import certificate_of, get_key
from signer.models import SigningKey

SIGNATURE_FIELD = "CertsvcSignature"
DIGEST = "sha256"
# An ECDSA P-256 signature in DER is at most 72 bytes: the size pyHanko reserves in a dry run.
P256_DER_MAX = 72


class TokenPdfSigner(Signer):
    """pyHanko's signer interface over a token key, signing through the gate: `sign_der`
    returns the DER ECDSA-SHA256 signature over the bytes it is given, verified against
    `certificate`."""

    def __init__(
        self,
        sign_der: Callable[[bytes], bytes],
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
    ) -> None:
        self._sign_der = sign_der
        super().__init__(
            signing_cert=_asn1(certificate),
            cert_registry=_registry(chain),
            signature_mechanism=asn1_algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            embed_roots=True,
        )

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        """The DER ECDSA signature over `data` (pyHanko's signed attributes), from the gate;
        a dry run (size estimate) never asks for one."""
        if digest_algorithm != DIGEST:
            raise ValueError(f"PAdES signer: digest {digest_algorithm} unsupported, only {DIGEST}")
        if dry_run:
            return bytes(P256_DER_MAX)
        return self._sign_der(data)


def signer_for_key(
    db: Session, key: SigningKey, sign_der: Callable[[bytes], bytes]
) -> TokenPdfSigner:
    """A PDF signer for a register key: its certificate and its issuers' up to the root, and
    `sign_der` bound to the gate for this key."""
    chain: list[x509.Certificate] = []
    issuer_id = key.issuer_key_id
    while issuer_id is not None:
        issuer = get_key(db, issuer_id)
        chain.append(certificate_of(issuer))
        issuer_id = issuer.issuer_key_id
    return TokenPdfSigner(sign_der, certificate_of(key), chain)


def sign_pdf(
    pdf: bytes,
    signer: Signer,
    *,
    timestamp_url: str | None = None,
    reason: str | None = None,
    location: str | None = None,
) -> bytes:
    """The PDF with one PAdES signature added as an incremental update: B-B, or B-T with a
    timestamp from `timestamp_url`. Synchronous (pyHanko runs its own event loop): call it
    from a worker thread, not from an async route."""
    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        md_algorithm=DIGEST,
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
    )
    timestamper = None if timestamp_url is None else timestamps.HTTPTimeStamper(timestamp_url)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
    pdf_signer = signers.PdfSigner(metadata, signer, timestamper=timestamper)
    out = pdf_signer.sign_pdf(writer, in_place=False)
    return bytes(out.getvalue())


def _registry(chain: Sequence[x509.Certificate]) -> SimpleCertificateStore:
    """The issuers pyHanko embeds beside the signer's certificate (the library is untyped)."""
    certificates = [_asn1(c) for c in chain]
    registry: SimpleCertificateStore = SimpleCertificateStore.from_certs(certificates)  # type: ignore[no-untyped-call]
    return registry


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
