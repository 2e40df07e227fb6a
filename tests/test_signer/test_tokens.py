"""Signer core against SoftHSM: keys stay on the token, signatures verify, faults are survived.

These test the token layer under the signing gate, so they call the private raw operation
(`signer._internal.raw`) directly, as only the gate does in the service."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hsm_fixtures import MAX_TRIES, Hsm, module_path
from signer._internal.raw import sign_ed25519, sign_p256
from signer.ecdsa import EcdsaSignature, der_to_raw, raw_to_der
from signer.errors import (
    KeyNotFound,
    SessionLost,
    SignatureInvalid,
    TokenAbsent,
    TokenBusy,
    TokenFault,
    TokenLocked,
    WrongPin,
)
from signer.tokens import PinCounter, Pkcs11Tokens, TokenSession

KEY = "cert-key-1"


def _sign(session: TokenSession, label: str, data: bytes) -> EcdsaSignature:
    """The raw operation, checked against the token's own public key of `label`."""
    return sign_p256(session, label, data, session.public_key(label))


def _keyed_token(hsm: Hsm) -> tuple[str, str]:
    key = hsm.add_token("USBKEY-A")
    with hsm.tokens.login(key.serial, key.pin, rw=True) as session:
        session.generate_ec_p256(KEY, b"\x01")
    return key.serial, key.pin


def test_private_key_is_sensitive_and_never_extractable(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    with hsm.tokens.login(serial, pin) as session:
        attributes = session.private_key_attributes(KEY)
    assert attributes == {
        "SENSITIVE": True,
        "EXTRACTABLE": False,
        "ALWAYS_SENSITIVE": True,
        "NEVER_EXTRACTABLE": True,
        "TOKEN": True,
    }


def test_an_ed25519_key_is_made_on_the_token_and_signs_there(hsm: Hsm) -> None:
    """CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA (SoftHSM 2.6): the audit checkpoint's key for
    public witnesses, protected like every other key; a signature is checked before use."""
    key = hsm.add_token("USBKEY-AUDIT")
    with hsm.tokens.login(key.serial, key.pin, rw=True) as session:
        public = session.generate_ed25519("checkpoint", b"\x02")
        assert session.public_key("checkpoint") == public
        assert session.private_key_attributes("checkpoint") == {
            "SENSITIVE": True,
            "EXTRACTABLE": False,
            "ALWAYS_SENSITIVE": True,
            "NEVER_EXTRACTABLE": True,
            "TOKEN": True,
        }
        signature = sign_ed25519(session, "checkpoint", b"a checkpoint\n", public)
        public.verify(signature, b"a checkpoint\n")
        other = Ed25519PrivateKey.generate().public_key()
        with pytest.raises(SignatureInvalid):
            sign_ed25519(session, "checkpoint", b"a checkpoint\n", other)


def test_pkcs11_tool_lists_the_private_key_as_never_extractable(hsm: Hsm) -> None:
    _, pin = _keyed_token(hsm)
    hsm.tokens.reset()
    listing = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            module_path(),
            "--token-label",
            "USBKEY-A",
            "--login",
            "--pin",
            pin,
            "--list-objects",
            "--type",
            "privkey",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SOFTHSM2_CONF": str(hsm.dir / "softhsm2.conf")},
    ).stdout
    assert f"label:      {KEY}" in listing
    access = next(line for line in listing.splitlines() if "Access:" in line)
    assert "never extractable" in access and "always sensitive" in access


def test_signature_verifies_in_both_encodings(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    with hsm.tokens.login(serial, pin) as session:
        signature = _sign(session, KEY, b"certificate 2020-001")
        public = session.public_key(KEY)
    public.verify(signature.der, b"certificate 2020-001", ec.ECDSA(hashes.SHA256()))
    assert len(signature.raw) == 64
    assert raw_to_der(signature.raw) == signature.der
    assert der_to_raw(signature.der) == signature.raw
    with pytest.raises(InvalidSignature):
        public.verify(signature.der, b"certificate 2020-002", ec.ECDSA(hashes.SHA256()))


def test_signature_checked_against_the_wrong_key_is_refused(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with (
        hsm.tokens.login(serial, pin) as session,
        pytest.raises(SignatureInvalid, match="discarded"),
    ):
        sign_p256(session, KEY, b"data", other)


class _Counter(PinCounter):
    """The in-process shape of the shared counter (the service keeps it in the database)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def failed(self, serial: str) -> int:
        self.counts[serial] = self.counts.get(serial, 0) + 1
        return self.counts[serial]

    def succeeded(self, serial: str) -> None:
        self.counts[serial] = 0


def test_wrong_pin_says_tries_left_then_locked_then_unblock(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    tokens = Pkcs11Tokens(hsm.library, MAX_TRIES, _Counter())
    with pytest.raises(WrongPin, match="2 tries left") as first:
        tokens.login(serial, "000000")
    assert first.value.tries_left == 2
    with pytest.raises(WrongPin, match="1 try left"):
        tokens.login(serial, "000000")
    with pytest.raises(TokenLocked, match=r"locked .* SO PIN"):
        tokens.login(serial, "000000")
    with pytest.raises(TokenLocked):
        tokens.login(serial, pin)
    tokens.unblock_pin(serial, hsm.keys["USBKEY-A"].so_pin, "97531864")
    with tokens.login(serial, "97531864") as session:
        _sign(session, KEY, b"after unblock")


def test_errors_and_logs_never_carry_the_pin(hsm: Hsm, caplog: pytest.LogCaptureFixture) -> None:
    serial, pin = _keyed_token(hsm)
    caplog.set_level(logging.DEBUG)
    wrong = "31415926"
    messages = []
    for _ in range(MAX_TRIES + 1):
        with pytest.raises((WrongPin, TokenLocked)) as caught:
            hsm.tokens.login(serial, wrong)
        messages.append(str(caught.value) + repr(caught.value))
    text = "\n".join(messages) + caplog.text
    assert wrong not in text and pin not in text
    assert "USBKEY-A" in messages[0]


def test_absent_token_is_a_clear_error(hsm: Hsm) -> None:
    with pytest.raises(TokenAbsent, match="not inserted"):
        hsm.tokens.login("0000000000000000", "123456")


def test_one_session_per_token(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    session = hsm.tokens.login(serial, pin)
    with pytest.raises(TokenBusy):
        hsm.tokens.login(serial, pin)
    session.close()
    with pytest.raises(SessionLost):
        session.sign_digest(KEY, b"\0" * 32)
    hsm.tokens.login(serial, pin).close()


def test_missing_key_label_is_named(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    with hsm.tokens.login(serial, pin) as session, pytest.raises(KeyNotFound, match="nope"):
        _sign(session, "nope", b"x")


def test_unplug_mid_batch_then_replug_works_without_restart(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    session = hsm.tokens.login(serial, pin)
    public = session.public_key(KEY)
    hsm.bay.arm_fault(serial, "sign", "DeviceRemoved", skip=3, unplug=True)
    signed = []
    with pytest.raises(TokenFault, match="re-insert"):
        for n in range(10):
            signed.append(_sign(session, KEY, f"doc {n}".encode()))
    assert len(signed) == 3
    for n, signature in enumerate(signed):
        public.verify(signature.der, f"doc {n}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SessionLost):
        _sign(session, KEY, b"doc 3")
    with pytest.raises(TokenAbsent):
        hsm.tokens.login(serial, pin)
    hsm.bay.replug(serial)
    with hsm.tokens.login(serial, pin) as again:
        _sign(again, KEY, b"doc 3")


def test_session_handle_invalid_recovers_on_next_login(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    session = hsm.tokens.login(serial, pin)
    hsm.bay.arm_fault(serial, "sign", "SessionHandleInvalid")
    with pytest.raises(TokenFault):
        _sign(session, KEY, b"x")
    with hsm.tokens.login(serial, pin) as again:
        _sign(again, KEY, b"x")


def test_concurrent_signing_on_one_session(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    failures: list[BaseException] = []
    with hsm.tokens.login(serial, pin) as session:
        public = session.public_key(KEY)

        def work(worker: int) -> None:
            try:
                for n in range(50):
                    data = f"{worker}:{n}".encode()
                    sig = _sign(session, KEY, data)
                    public.verify(sig.der, data, ec.ECDSA(hashes.SHA256()))
            except BaseException as exc:  # collected and re-raised by the assertion below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_statuses_list_present_tokens(hsm: Hsm, tmp_path: Path) -> None:
    key = hsm.add_token("USBKEY-A")
    hsm.add_token("USBKEY-B")
    assert {s.label for s in hsm.tokens.statuses()} == {"USBKEY-A", "USBKEY-B"}
    hsm.bay.unplug(key.serial)
    assert {s.label for s in hsm.tokens.statuses()} == {"USBKEY-B"}
    hsm.bay.lock_pin(hsm.keys["USBKEY-B"].serial)
    assert hsm.tokens.status(hsm.keys["USBKEY-B"].serial).pin_locked


def test_custodian_changes_the_pin(hsm: Hsm) -> None:
    serial, pin = _keyed_token(hsm)
    hsm.tokens.change_pin(serial, pin, "55667788")
    with pytest.raises(WrongPin):
        hsm.tokens.login(serial, pin)
    with hsm.tokens.login(serial, "55667788") as session:
        _sign(session, KEY, b"after change")
    with pytest.raises(WrongPin):
        hsm.tokens.change_pin(serial, "00000000", "11223344")
