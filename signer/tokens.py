"""The process's one door to the PKCS#11 module: list tokens, log in, recover from removal.

python-pkcs11 allows one loaded module per process and PKCS#11 keeps login state per
application and token, so this object is a process-wide singleton holding at most one logged-in
session per token. Recovery after a token is pulled and re-inserted re-initialises the module
(old handles stay invalid until then, on SoftHSM and on real USB tokens alike) and asks for the
PIN again: the PIN is never kept.

python-pkcs11 calls `C_Initialize(NULL)`, which promises the module that no two threads call it
at once; SoftHSM then drops its own locking (concurrent signing crashed the process here). So
every call into the module goes through one process-wide lock.

Typed with python-pkcs11's own types (it ships them, `py.typed`, since 0.10): a session and
its objects are `pkcs11.Session` and its key classes. The module and its tokens are the two
protocols below, of exactly what this file uses: `pkcs11.lib` and `pkcs11.Token` meet them, and
so does `hsm_sim`'s look-alike, which is not a subclass of either. python-pkcs11 gives a key its
operations (sign, encrypt, decrypt) at run time, by the key's capabilities; the key class this
file asks the token for says which, and is cast to the matching mixin where it is used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pkcs11 import (
    Attribute,
    GCMParams,
    KeyType,
    Mechanism,
    ObjectClass,
    PublicKey,
    SecretKey,
    Session,
    Slot,
    TokenFlag,
)
from pkcs11 import exceptions as p11e
from pkcs11.types import DecryptMixin, EncryptMixin, SignMixin
from pkcs11.util.ec import encode_named_curve_parameters

from signer.errors import (
    KeyNotFound,
    LoggedInElsewhere,
    ModuleAnswer,
    SessionLost,
    SignerError,
    TokenAbsent,
    TokenBusy,
    TokenFault,
    TokenLocked,
    WrongPin,
)
from signer.profile import ModuleProfile, ProfileError, detect

T = TypeVar("T")

# What a module answers when the device went away, was reset, or the module must be
# initialised again.
FAULT_ERRORS: tuple[type[Exception], ...] = (
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.DeviceMemory,
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    p11e.FunctionFailed,
    p11e.GeneralError,
)

# A module that must be initialised again, or a login left by a session we no longer hold.
STALE_ERRORS: tuple[type[Exception], ...] = (p11e.UserAlreadyLoggedIn, *FAULT_ERRORS)

P256_CURVE_NAME = "secp256r1"
ED25519_CURVE_OID = "1.3.101.112"
P256_POINT_BYTES = 65  # uncompressed: 0x04 ‖ X ‖ Y
ED25519_POINT_BYTES = 32
# What a token key's public half is: ECDSA P-256 for documents, certificates and lists;
# Ed25519 for audit checkpoints (what public witnesses require).
TokenPublicKey = ec.EllipticCurvePublicKey | Ed25519PublicKey

_MODULE_LOCK = threading.RLock()


class Pkcs11Token(Protocol):
    """A token as this module uses it (what `pkcs11.Token` offers)."""

    @property
    def serial(self) -> bytes: ...

    @property
    def label(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def manufacturer_id(self) -> str: ...

    @property
    def flags(self) -> TokenFlag: ...

    @property
    def slot(self) -> Slot: ...

    def open(
        self, rw: bool = False, user_pin: str | None = None, so_pin: str | None = None
    ) -> Session: ...


class Pkcs11Library(Protocol):
    """A loaded PKCS#11 module as this module uses it (what `pkcs11.lib` offers)."""

    def get_tokens(self) -> Iterable[Pkcs11Token]: ...

    def get_token(self, *, token_serial: bytes) -> Pkcs11Token: ...

    def reinitialize(self) -> None: ...


class PinCounter(Protocol):
    """Consecutive wrong PINs per token, shared by every process, for 'tries left' messages."""

    def failed(self, serial: str) -> int | None:
        """Count one more wrong PIN; the new count, or None for a token it does not know."""

    def succeeded(self, serial: str) -> None: ...


@dataclass(frozen=True)
class TokenStatus:
    serial: str
    label: str
    model: str
    manufacturer: str
    pin_locked: bool
    pin_count_low: bool
    pin_final_try: bool


def _serial(token: Pkcs11Token) -> str:
    return bytes(token.serial).decode("ascii").strip()


class Pkcs11Tokens:
    """Tokens of one PKCS#11 module (a vendor's, or SoftHSM wrapped by `hsm_sim`)."""

    def __init__(
        self,
        library: Pkcs11Library,
        pin_max_tries: int,
        pin_counter: PinCounter | None = None,
        profile: ModuleProfile | None = None,
    ) -> None:
        self._lib = library
        self._max_tries = pin_max_tries
        self._counter = pin_counter
        # None: each token's profile is detected from its manufacturer (`signer.profile`).
        self._profile = profile
        self.lock = _MODULE_LOCK
        self._sessions: dict[str, TokenSession] = {}
        self.epoch = 0

    def statuses(self) -> list[TokenStatus]:
        """Every initialised token present now; an empty list when none is inserted."""
        with self.lock:
            return self._with_recovery(
                lambda: [
                    self._status(t)
                    for t in self._lib.get_tokens()
                    if TokenFlag(t.flags) & TokenFlag.TOKEN_INITIALIZED
                ]
            )

    def tries_left(self, status: TokenStatus, failures: int) -> int:
        """PIN tries before the token locks, as `_wrong_pin` tells them: what a custodian
        reads before typing the PIN."""
        if status.pin_locked:
            return 0
        if status.pin_final_try:
            return 1
        return max(self._max_tries - failures, 1)

    def status(self, serial: str) -> TokenStatus:
        with self.lock:
            return self._with_recovery(lambda: self._status(self._token(serial)))

    def login(
        self, serial: str, pin: str, rw: bool = False, counter: PinCounter | None = None
    ) -> TokenSession:
        """Log in to a token with the user PIN; at most one session per token. Wrong PINs are
        counted by `counter` (a request's), else by the process's."""
        counter = counter or self._counter
        with self.lock:
            for attempt in (1, 2):
                token = self._token(serial)
                name = f"{token.label} ({serial})"
                live = self._sessions.get(serial)
                if live is not None and live.is_open and live.alive():
                    raise TokenBusy(name)
                try:
                    raw = token.open(rw=rw, user_pin=pin)
                except p11e.PinIncorrect:
                    raise self._wrong_pin(serial, name, counter) from None
                except p11e.PinLocked:
                    raise TokenLocked(name) from None
                except STALE_ERRORS as exc:
                    # Re-initialise once, as after a re-plug: that ends any login this
                    # process left behind, and the PIN is checked by a new one.
                    if attempt == 2 and isinstance(exc, p11e.UserAlreadyLoggedIn):
                        raise LoggedInElsewhere(name) from None
                    if attempt == 2:
                        raise TokenFault(name) from exc
                    self.reset()
                    continue
                if counter is not None:
                    counter.succeeded(serial)
                profile = self._profile or detect(str(token.manufacturer_id))
                session = TokenSession(self, serial, str(token.label), raw, profile)
                self._sessions[serial] = session
                return session
            raise AssertionError("unreachable")

    def mechanism_support(
        self, serial: str, mechanisms: Iterable[Mechanism]
    ) -> dict[Mechanism, bool | None]:
        """Whether the token offers each mechanism: True when C_GetMechanismInfo describes it;
        False when it does not and the module's profile says its list is complete; None (not
        known: try it) when a module lists it without an entry, or its list may have gaps."""
        with self.lock:
            token = self._token(serial)
            profile = self._profile or detect(str(token.manufacturer_id))
            slot = token.slot
            listed = self._with_recovery(slot.get_mechanisms)
            answer: dict[Mechanism, bool | None] = {}
            for mechanism in mechanisms:
                try:
                    slot.get_mechanism_info(mechanism)
                    answer[mechanism] = True
                except (p11e.MechanismInvalid, p11e.ArgumentsBad, p11e.FunctionFailed):
                    absent = profile.mechanisms_complete and mechanism not in listed
                    answer[mechanism] = False if absent else None
            return answer

    def unblock_pin(self, serial: str, so_pin: str, new_pin: str) -> None:
        """Set a new user PIN with the SO PIN (C_InitPIN): how a locked USBKey is unblocked.

        Re-initialises the module first: an SO login is refused while any read-only session of
        this application is open on the token, and failed logins can leave such sessions behind.
        """
        with self.lock:
            self.reset()
            token = self._token(serial)
            name = f"{token.label} ({serial})"
            try:
                with token.open(rw=True, so_pin=so_pin) as so_session:
                    so_session.init_pin(new_pin)
            except p11e.PinIncorrect:
                raise SignerError(f"wrong SO PIN for USBKey {name}") from None
            except (p11e.PinLenRange, p11e.PinInvalid):
                raise SignerError("new PIN: length or characters refused by the token") from None
            except FAULT_ERRORS as exc:
                raise TokenFault(name) from exc
            if self._counter is not None:
                self._counter.succeeded(serial)

    def change_pin(self, serial: str, old_pin: str, new_pin: str) -> None:
        """The custodian replaces their user PIN (C_SetPIN), e.g. after an SO unblock."""
        with self.login(serial, old_pin, rw=True) as session:
            session.set_pin(old_pin, new_pin)

    def reset(self) -> None:
        """Re-initialise the module; every session this process held is gone."""
        with self.lock:
            self.epoch += 1
            self._sessions.clear()
            self._lib.reinitialize()

    def forget(self, session: TokenSession) -> None:
        with self.lock:
            if self._sessions.get(session.serial) is session:
                del self._sessions[session.serial]

    def _token(self, serial: str) -> Pkcs11Token:
        try:
            return self._lib.get_token(token_serial=serial.encode("ascii"))
        except (p11e.NoSuchToken, p11e.TokenNotPresent):
            stale = self._sessions.pop(serial, None)
            if stale is not None:
                stale.close()
            raise TokenAbsent(serial) from None

    def _status(self, token: Pkcs11Token) -> TokenStatus:
        flags = TokenFlag(token.flags)
        return TokenStatus(
            serial=_serial(token),
            label=str(token.label),
            model=str(token.model),
            manufacturer=str(token.manufacturer_id),
            pin_locked=bool(flags & TokenFlag.USER_PIN_LOCKED),
            pin_count_low=bool(flags & TokenFlag.USER_PIN_COUNT_LOW),
            pin_final_try=bool(flags & TokenFlag.USER_PIN_FINAL_TRY),
        )

    def _wrong_pin(self, serial: str, name: str, counter: PinCounter | None) -> SignerError:
        status = self._status(self._token(serial))
        if status.pin_locked:
            return TokenLocked(name)
        if status.pin_final_try:
            return WrongPin(name, 1)
        if counter is None:
            return WrongPin(name, None)
        failures = counter.failed(serial)
        left = None if failures is None else self._max_tries - failures
        return WrongPin(name, left if left is not None and left > 0 else None)

    def _with_recovery(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except FAULT_ERRORS:
            self.reset()
            return read()


class TokenSession:
    """A logged-in session on one token: the USBKey inserted and unlocked."""

    def __init__(
        self,
        tokens: Pkcs11Tokens,
        serial: str,
        label: str,
        raw: Session,
        profile: ModuleProfile,
    ) -> None:
        self._tokens = tokens
        self._raw = raw
        self.profile = profile
        self._epoch = tokens.epoch
        self._closed = False
        self._public_keys: dict[str, TokenPublicKey] = {}
        # Object handles live as long as the session: look each key up once.
        self._private_keys: dict[str, SignMixin] = {}
        self.serial = serial
        self.label = label

    @property
    def name(self) -> str:
        return f"{self.label} ({self.serial})"

    @property
    def is_open(self) -> bool:
        return not self._closed and self._epoch == self._tokens.epoch

    def alive(self) -> bool:
        """Whether the token still answers on this session; a dead session is closed."""
        try:
            with self._faults():
                list(self._raw.get_objects({Attribute.CLASS: ObjectClass.DATA}))
        except SignerError:
            return False
        return True

    def generate_ec_p256(self, label: str, key_id: bytes) -> ec.EllipticCurvePublicKey:
        """A P-256 key pair made on the token: private half sensitive and never extractable."""
        public = self._generate(KeyType.EC, P256_CURVE_NAME, label, key_id)
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise TypeError("the token made no EC key")
        return public

    def generate_ed25519(self, label: str, key_id: bytes) -> Ed25519PublicKey:
        """An Ed25519 key pair made on the token (CKM_EC_EDWARDS_KEY_PAIR_GEN), protected alike."""
        public = self._generate(KeyType.EC_EDWARDS, ED25519_CURVE_OID, label, key_id)
        if not isinstance(public, Ed25519PublicKey):
            raise TypeError("the token made no Ed25519 key")
        return public

    def _generate(self, kind: KeyType, curve: str, label: str, key_id: bytes) -> TokenPublicKey:
        with self._faults():
            params = self._raw.create_domain_parameters(
                kind, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True
            )
            public, _private = params.generate_keypair(
                store=True,
                label=label,
                id=key_id,
                public_template={Attribute.VERIFY: True},
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.PRIVATE: True,
                },
            )
            return self._load_public(public)

    def has_private_key(self, label: str) -> bool:
        with self._faults():
            found = self._raw.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
            )
            return any(True for _ in found)

    def key_id(self, label: str) -> bytes:
        """The private key's CKA_ID, which its certificate on the token carries too."""
        with self._faults():
            return bytes(self._private(label)[Attribute.ID])

    def private_key_attributes(self, label: str) -> dict[str, bool]:
        """The protection attributes of a private key, read back from the token."""
        names = ("SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE", "TOKEN")
        with self._faults():
            key = self._private(label)
            return {n: bool(key[getattr(Attribute, n)]) for n in names}

    def public_key(self, label: str) -> TokenPublicKey:
        cached = self._public_keys.get(label)
        if cached is not None:
            return cached
        with self._faults():
            try:
                raw = cast(
                    PublicKey, self._raw.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
                )
            except p11e.NoSuchKey:
                raise KeyNotFound(self.name, label) from None
            key = self._load_public(raw)
        self._public_keys[label] = key
        return key

    def sign_digest(self, label: str, digest: bytes) -> bytes:
        """Raw CKM_ECDSA over a digest computed outside (SoftHSM has no ECDSA_SHA256): r‖s,
        whichever encoding the module answers in (its profile says)."""
        with self._faults():
            answer = bytes(self._private(label).sign(digest, mechanism=Mechanism.ECDSA))
        try:
            return self.profile.raw_signature(answer)
        except ProfileError as exc:
            raise ModuleAnswer(f"USBKey {self.name}: {exc}") from None

    def sign_eddsa(self, label: str, message: bytes) -> bytes:
        """CKM_EDDSA (pure Ed25519, RFC 8032) over the message itself: 64 bytes."""
        with self._faults():
            return bytes(self._private(label).sign(message, mechanism=Mechanism.EDDSA))

    def set_pin(self, old_pin: str, new_pin: str) -> None:
        with self._faults():
            try:
                self._raw.set_pin(old_pin, new_pin)
            except (p11e.PinLenRange, p11e.PinInvalid):
                raise SignerError("new PIN: length or characters refused by the token") from None

    def store_certificate(self, label: str, key_id: bytes, certificate: x509.Certificate) -> None:
        """Put the key's X.509 certificate on the token beside it, as PDF signers expect,
        replacing any certificate stored under the same label."""
        der = certificate.public_bytes(serialization.Encoding.DER)
        with self._faults():
            stale = self._raw.get_objects(
                {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label}
            )
            for old in list(stale):
                old.destroy()
            self._raw.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: 0,  # CKC_X_509
                    Attribute.TOKEN: True,
                    Attribute.LABEL: label,
                    Attribute.ID: key_id,
                    Attribute.SUBJECT: certificate.subject.public_bytes(),
                    Attribute.ISSUER: certificate.issuer.public_bytes(),
                    Attribute.SERIAL_NUMBER: asn1_core.Integer(certificate.serial_number).dump(),
                    Attribute.VALUE: der,
                }
            )

    def close(self) -> None:
        """Log out and close; a token already gone is closed all the same."""
        if self._closed:
            return
        self._closed = True
        self._tokens.forget(self)
        if self._epoch == self._tokens.epoch:
            with self._tokens.lock, suppress(p11e.PKCS11Error):
                self._raw.close()

    def __enter__(self) -> TokenSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _private(self, label: str) -> SignMixin:
        cached = self._private_keys.get(label)
        if cached is not None:
            return cached
        try:
            key = self._raw.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        except p11e.NoSuchKey:
            raise KeyNotFound(self.name, label) from None
        signing = cast(SignMixin, key)  # a private key of ours signs (CKA_SIGN)
        self._private_keys[label] = signing
        return signing

    def _load_public(self, raw: PublicKey) -> TokenPublicKey:
        """The public key from CKA_EC_POINT, wrapped in an OCTET STRING or bare as the
        module's profile says; only P-256 and Ed25519 keys are ours."""
        answer = bytes(raw[Attribute.EC_POINT])
        edwards = raw.key_type == KeyType.EC_EDWARDS
        try:
            point = self.profile.point(answer, ED25519_POINT_BYTES if edwards else P256_POINT_BYTES)
        except ProfileError as exc:
            raise ModuleAnswer(f"USBKey {self.name}: {exc}") from None
        if edwards:
            return Ed25519PublicKey.from_public_bytes(point)
        if bytes(raw[Attribute.EC_PARAMS]) != encode_named_curve_parameters(P256_CURVE_NAME):
            raise TypeError("not a P-256 key")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """Turn module faults into errors a custodian can act on; a faulted session is dead."""
        if not self.is_open:
            raise SessionLost(self.name)
        try:
            with self._tokens.lock:
                yield
        except p11e.PinLocked:
            self.close()
            raise TokenLocked(self.name) from None
        except p11e.UserNotLoggedIn:
            self.close()
            raise SessionLost(self.name) from None
        except FAULT_ERRORS as exc:
            self.close()
            raise TokenFault(self.name) from exc

    # Secret keys: a key-encryption key that never leaves the token and encrypts (wraps) data
    # keys with AES-GCM. python-pkcs11's C_WrapKey needs key objects of its own on both sides;
    # C_Encrypt over the data key's bytes gives the same protection and works through hsm_sim.

    def generate_aes_key(self, label: str) -> None:
        """An AES-256 key made on the token: sensitive, never extractable, encrypt/decrypt only."""
        with self._faults():
            self._raw.generate_key(
                KeyType.AES,
                256,
                label=label,
                store=True,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                    Attribute.ENCRYPT: True,
                    Attribute.DECRYPT: True,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                    Attribute.SIGN: False,
                    Attribute.VERIFY: False,
                },
            )

    def secret_key_labels(self) -> list[str]:
        with self._faults():
            found = self._raw.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
            return sorted(str(key[Attribute.LABEL]) for key in found)

    def secret_key_attributes(self, label: str) -> dict[str, bool]:
        """The protection attributes of a secret key, read back from the token."""
        names = ("SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE", "TOKEN")
        with self._faults():
            key = self._secret(label)
            return {n: bool(key[getattr(Attribute, n)]) for n in names}

    def aes_gcm_encrypt(self, label: str, nonce: bytes, aad: bytes, data: bytes) -> bytes:
        """AES-GCM on the token with a secret key: ciphertext ‖ 16-byte tag."""
        with self._faults():
            params = GCMParams(nonce, aad)
            key = cast(EncryptMixin, self._secret(label))  # made with CKA_ENCRYPT
            return _whole(key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))

    def aes_gcm_decrypt(self, label: str, nonce: bytes, aad: bytes, data: bytes) -> bytes:
        """The inverse of `aes_gcm_encrypt`; a wrong tag is a token error (SoftHSM reports it
        as a general error), so callers treat a failure as the key being unusable. Its one
        caller is the vault's key unwrapping (`tests/test_vault/test_plaintext_gate.py`)."""
        with self._faults():
            params = GCMParams(nonce, aad)
            key = cast(DecryptMixin, self._secret(label))  # made with CKA_DECRYPT
            return _whole(key.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))

    def destroy_secret_key(self, label: str) -> None:
        """Delete a secret key from the token: what it encrypted can never be decrypted again."""
        with self._faults():
            for key in list(
                self._raw.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
                )
            ):
                key.destroy()

    def _secret(self, label: str) -> SecretKey:
        try:
            return cast(
                SecretKey, self._raw.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
            )
        except p11e.NoSuchKey:
            raise KeyNotFound(self.name, label) from None


def _whole(result: bytes | Iterator[bytes]) -> bytes:
    """python-pkcs11 answers bytes to bytes and an iterator of blocks to an iterator."""
    return result if isinstance(result, bytes) else b"".join(result)
