"""What a PKCS#11 module answers differently from another: one profile per module, named in
`CERTSVC_HSM_PROFILE` or detected from the token's manufacturer.

Real USBKey modules differ where the standard leaves room or where vendors strayed from it:
- `CKM_ECDSA` signatures as raw r‖s (PKCS#11 §2.3.1, SoftHSM) or DER-encoded (several vendors);
- `CKA_EC_POINT` as a DER OCTET STRING (PKCS#11 2.40 and later) or the bare point (older
  modules);
- `C_GetMechanismInfo` without an entry for a mechanism the module does offer: such a gap is
  "unknown, try it", never "unsupported" — unless the profile says the module's list is complete;
- `CKR_USER_ALREADY_LOGGED_IN`: handled the same for every profile (`signer.tokens`): the module
  is initialised again and the PIN checked by a new login; a login that is still there after
  that belongs to another application and is refused, never reused without the PIN.

"auto" reads each answer by its shape, which is unambiguous for P-256 and Ed25519 in practice;
every signature is verified after it is made, so a wrong reading fails closed. SM2 tokens
(GM/T 0003 signatures through vendor mechanism numbers) have a profile slot naming those
numbers; signing with SM2 is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from asn1crypto import core as asn1_core
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from signer.ecdsa import der_to_raw

SignatureEncoding = Literal["raw", "der", "auto"]
PointEncoding = Literal["octet-string", "raw", "auto"]
P256_RAW_SIGNATURE = 64
# Vendor-defined numbers seen on several Chinese USBKey modules (CKM_VENDOR_DEFINED range).
CKM_SM3_SM2 = 0x80008100
CKK_SM2 = 0x80000004


class ProfileError(ValueError):
    """A module answer the profile cannot read; the message says which and what was expected."""


@dataclass(frozen=True)
class ModuleProfile:
    name: str
    signature: SignatureEncoding
    ec_point: PointEncoding
    # The module's mechanism list and info are complete: a mechanism missing there is absent.
    mechanisms_complete: bool = False
    # A slot for SM2 tokens: the vendor's mechanism and key type numbers. Named, not used.
    sm2_sign_mechanism: int | None = None
    sm2_key_type: int | None = None

    def raw_signature(self, answer: bytes) -> bytes:
        """The P-256 signature the module answered, as raw r‖s."""
        if self.signature == "raw" or (self.signature == "auto" and _looks_raw(answer)):
            if len(answer) != P256_RAW_SIGNATURE:
                raise ProfileError(
                    f"{self.name}: a raw P-256 signature has {P256_RAW_SIGNATURE} bytes, "
                    f"the module gave {len(answer)}"
                )
            return answer
        try:
            decode_dss_signature(answer)
            return der_to_raw(answer)
        except ValueError:
            raise ProfileError(f"{self.name}: the module's signature is not DER") from None

    def point(self, answer: bytes, size: int) -> bytes:
        """The bare public point from `CKA_EC_POINT`: `size` bytes (65 for an uncompressed
        P-256 point, 32 for Ed25519), unwrapped from its OCTET STRING when it has one."""
        wrapped = self.ec_point == "octet-string" or (
            self.ec_point == "auto" and len(answer) != size
        )
        if not wrapped:
            point = answer
        else:
            try:
                loaded = asn1_core.OctetString.load(answer)
                point = bytes(loaded.native)
            except ValueError:
                raise ProfileError(f"{self.name}: CKA_EC_POINT is not a DER OCTET STRING") from None
        if len(point) != size:
            raise ProfileError(f"{self.name}: CKA_EC_POINT holds {len(point)} bytes, not {size}")
        return point


def _looks_raw(answer: bytes) -> bool:
    """r‖s of P-256 is 64 bytes; a DER signature of P-256 is a SEQUENCE of 8 to 72 bytes, and
    of exactly 64 only when r and s are both unusually short (about 2^-48)."""
    return len(answer) == P256_RAW_SIGNATURE and not _is_der(answer)


def _is_der(answer: bytes) -> bool:
    try:
        decode_dss_signature(answer)
    except ValueError:
        return False
    return True


PROFILES = {
    profile.name: profile
    for profile in (
        ModuleProfile("softhsm", "raw", "octet-string", mechanisms_complete=True),
        ModuleProfile("generic", "auto", "auto"),
        ModuleProfile("der-signatures", "der", "auto"),
        ModuleProfile("raw-ec-point", "auto", "raw"),
        ModuleProfile("sm2", "auto", "auto", sm2_sign_mechanism=CKM_SM3_SM2, sm2_key_type=CKK_SM2),
    )
}
# Manufacturer IDs (CK_TOKEN_INFO.manufacturerID) whose module is known; others get "generic".
KNOWN_MANUFACTURERS = {"SoftHSM project": "softhsm"}


def detect(manufacturer: str) -> ModuleProfile:
    """The profile of a token's module, from its manufacturer ID."""
    return PROFILES[KNOWN_MANUFACTURERS.get(manufacturer.strip(), "generic")]


def named(name: str) -> ModuleProfile | None:
    """The profile `CERTSVC_HSM_PROFILE` names; None for "auto" (detect per token)."""
    if name == "auto":
        return None
    if name not in PROFILES:
        raise ProfileError(f"CERTSVC_HSM_PROFILE: one of auto, {', '.join(PROFILES)}")
    return PROFILES[name]
