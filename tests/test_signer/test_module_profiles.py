"""Module profiles (`signer.profile`): each way a vendor's module answers differently, played by
SoftHSM through hsm_sim's fault layer and its vendor wrapper, read right by the matching profile
and by "generic" — and refused, never misread, by a profile that expects otherwise."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pkcs11 import Mechanism

from certsvc.settings import Settings
from hsm_fixtures import MAX_TRIES, Hsm, hsm
from hsm_sim.vendor import VendorModule
from signer._internal.raw import sign_ed25519, sign_p256
from signer.errors import LoggedInElsewhere, ModuleAnswer
from signer.profile import CKM_SM3_SM2, PROFILES, ProfileError, detect, named
from signer.tokens import Pkcs11Tokens

__all__ = ["hsm"]


def _tokens(hsm: Hsm, quirks: tuple[str, ...], profile: str | None) -> Pkcs11Tokens:
    module = VendorModule(hsm.library, quirks)
    return Pkcs11Tokens(module, MAX_TRIES, profile=None if profile is None else PROFILES[profile])


@pytest.mark.parametrize("profile", ["der-signatures", "generic"])
def test_der_signatures_are_read_as_r_s(hsm: Hsm, profile: str) -> None:
    key = hsm.add_token("VENDOR-DER")
    tokens = _tokens(hsm, ("der-signatures",), profile)
    with tokens.login(key.serial, key.pin, rw=True) as session:
        public = session.generate_ec_p256("k", b"\x01")
        signature = sign_p256(session, "k", b"document", public)
    assert len(signature.raw) == 64
    public.verify(
        signature.der, hashlib.sha256(b"document").digest(), ec.ECDSA(Prehashed(hashes.SHA256()))
    )


def test_a_profile_expecting_raw_refuses_der(hsm: Hsm) -> None:
    key = hsm.add_token("VENDOR-DER")
    tokens = _tokens(hsm, ("der-signatures",), "softhsm")
    with tokens.login(key.serial, key.pin, rw=True) as session:
        public = session.generate_ec_p256("k", b"\x01")
        with pytest.raises(ModuleAnswer, match="raw P-256 signature has 64 bytes"):
            sign_p256(session, "k", b"document", public)


@pytest.mark.parametrize("profile", ["raw-ec-point", "generic"])
def test_bare_ec_points_are_read(hsm: Hsm, profile: str) -> None:
    key = hsm.add_token("VENDOR-POINT")
    tokens = _tokens(hsm, ("raw-ec-point",), profile)
    with tokens.login(key.serial, key.pin, rw=True) as session:
        p256 = session.generate_ec_p256("p", b"\x01")
        edwards = session.generate_ed25519("e", b"\x02")
        sign_p256(session, "p", b"document", p256)  # verified against the point read
        sign_ed25519(session, "e", b"document", edwards)
    assert p256.curve.name == "secp256r1"


def test_a_profile_expecting_octet_strings_refuses_bare_points(hsm: Hsm) -> None:
    key = hsm.add_token("VENDOR-POINT")
    tokens = _tokens(hsm, ("raw-ec-point",), "softhsm")
    with (
        tokens.login(key.serial, key.pin, rw=True) as session,
        pytest.raises(ModuleAnswer, match="CKA_EC_POINT"),
    ):
        session.generate_ec_p256("p", b"\x01")


def test_already_logged_in_is_cleared_and_the_pin_checked_again(hsm: Hsm) -> None:
    key = hsm.add_token("VENDOR-LOGIN")
    tokens = _tokens(hsm, (), None)
    hsm.bay.arm_fault(key.serial, "open", "UserAlreadyLoggedIn")
    with tokens.login(key.serial, key.pin) as session:  # re-initialised, logged in afresh
        assert session.alive()
    # Still logged in after that: another application holds it; never reused without a PIN.
    hsm.bay.arm_fault(key.serial, "open", "UserAlreadyLoggedIn")
    hsm.bay.arm_fault(key.serial, "open", "UserAlreadyLoggedIn")
    with pytest.raises(LoggedInElsewhere, match="logged in by another application"):
        tokens.login(key.serial, key.pin)
    with tokens.login(key.serial, key.pin) as session:
        assert session.alive()


def test_missing_mechanism_info_is_unknown_not_absent(hsm: Hsm) -> None:
    key = hsm.add_token("VENDOR-MECH")
    wanted = (Mechanism.ECDSA, Mechanism.ECDSA_SHA256)
    plain = _tokens(hsm, (), "softhsm").mechanism_support(key.serial, wanted)
    # SoftHSM's list is complete: it offers raw ECDSA and lacks ECDSA_SHA256 (hashes outside).
    assert plain == {Mechanism.ECDSA: True, Mechanism.ECDSA_SHA256: False}
    assert _tokens(hsm, (), "generic").mechanism_support(key.serial, wanted) == {
        Mechanism.ECDSA: True,
        Mechanism.ECDSA_SHA256: None,
    }
    gaps = _tokens(hsm, ("no-mechanism-info",), "softhsm")
    # Listed without an info entry: not known, so tried — and the key is made and signs.
    assert gaps.mechanism_support(key.serial, wanted) == {
        Mechanism.ECDSA: None,
        Mechanism.ECDSA_SHA256: False,
    }
    with gaps.login(key.serial, key.pin, rw=True) as session:
        sign_p256(session, "k", b"x", session.generate_ec_p256("k", b"\x01"))


def test_profiles_are_detected_or_named(hsm: Hsm) -> None:
    key = hsm.add_token("VENDOR-DETECT")
    tokens = Pkcs11Tokens(hsm.library, MAX_TRIES)
    with tokens.login(key.serial, key.pin) as session:
        assert session.profile.name == "softhsm"
    assert detect("Feitian Technologies Co., Ltd.").name == "generic"
    assert named("auto") is None and named("der-signatures") is PROFILES["der-signatures"]
    with pytest.raises(ProfileError, match="CERTSVC_HSM_PROFILE"):
        named("feitian")
    # The settings offer exactly the profiles there are.
    offered = Settings.model_fields["hsm_profile"].annotation.__args__  # type: ignore[union-attr]
    assert set(offered) == {"auto", *PROFILES}


def test_sm2_has_a_slot_not_an_implementation() -> None:
    sm2 = PROFILES["sm2"]
    assert sm2.sm2_sign_mechanism == CKM_SM3_SM2 == 0x80008100
    assert all(p.sm2_sign_mechanism is None for name, p in PROFILES.items() if name != "sm2")
