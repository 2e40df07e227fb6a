"""Checking a signing key's certificate against its body's root, with `cryptography` only, so
that `verify` may use it as it uses `cose`."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from signer.errors import SignerError


class ChainInvalid(SignerError):
    """A certificate that its claimed root did not issue, or that is not valid at the time."""

    status_code = 422


def verify_issued_by(
    certificate: x509.Certificate, root: x509.Certificate, at: datetime | None = None
) -> None:
    """Raise `ChainInvalid` unless `root` (a CA) signed `certificate` and both are valid `at`
    (default now)."""
    at = at or datetime.now(UTC)
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not constraints.ca:
        raise ChainInvalid("certificate chain: the issuer is not a certification authority")
    try:
        certificate.verify_directly_issued_by(root)
    except (ValueError, TypeError) as exc:
        raise ChainInvalid(f"certificate chain: not issued by this root ({exc})") from None
    except InvalidSignature:
        raise ChainInvalid("certificate chain: the root's signature does not verify") from None
    for name, cert in (("certificate", certificate), ("root", root)):
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise ChainInvalid(f"certificate chain: the {name} is not valid at {at:%Y-%m-%d}")
