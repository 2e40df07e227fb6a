"""C2SP signed notes (c2sp.org/signed-note): signing, opening, and verifier keys (`vkey`s).

The one place notes are made and read: the log signs its checkpoints here; `audit verify`,
bundles and restores open them here; the vkeys the service publishes are made and parsed here.

Two signature types:

- Ed25519, type 0x01: key ID = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ 32-byte key)[:4]. Public witnesses
  cosign only logs that carry one.
- ECDSA, type 0x02 (P-256, SHA-256): key ID = SHA-256(DER SubjectPublicKeyInfo)[:4], as the
  spec says for this type (Rekor, the Pixel log and transparency-dev/formats do the same); the
  signature is ASN.1 DER.

Before the spec's 0x02 rule was followed here, ECDSA lines used the generic recipe
SHA-256(name ‖ 0x0A ‖ 0x02 ‖ DER SPKI)[:4]. Our own verifier still accepts that ID
(`legacy_ids`) so checkpoints signed then keep verifying; nothing is signed with it any more,
and a vkey never names it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519 = 0x01
ECDSA = 0x02
SIGNATURE_PREFIX = "\u2014 "
# The spec asks verifiers to accept at least 16 signatures and to bound them.
MAX_SIGNATURES = 32
ECDSA_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
# Signs the bytes it is given, as the key's type encodes it in a note: 64 bytes for Ed25519,
# ASN.1 DER for ECDSA.
SignBytes = Callable[[bytes], bytes]


class InvalidNote(ValueError):
    """A note or vkey that is malformed, or not signed by a key the reader trusts."""


def _spaces_or_plus(name: str) -> bool:
    return any(c.isspace() or c == "+" for c in name)


@dataclass(frozen=True)
class NoteKey:
    """A verifier key: name, signature type and public key (32 bytes for Ed25519, DER SPKI
    for ECDSA). `legacy_ids` are further key IDs accepted when opening, never signed with."""

    name: str
    type: int
    public: bytes
    legacy_ids: frozenset[bytes] = field(default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        if not self.name or _spaces_or_plus(self.name):
            raise InvalidNote("key name: non-empty, without spaces or plus signs")

    @property
    def key_id(self) -> bytes:
        if self.type == ECDSA:
            return hashlib.sha256(self.public).digest()[:4]
        material = self.name.encode() + b"\n" + bytes([self.type]) + self.public
        return hashlib.sha256(material).digest()[:4]

    def vkey(self) -> str:
        """`<name>+<hex key ID>+<base64(type ‖ public key)>`."""
        blob = base64.b64encode(bytes([self.type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            public = _load_public(self.type, self.public)
            if isinstance(public, Ed25519PublicKey):
                public.verify(signature, message)
            else:
                public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, InvalidNote, ValueError):
            return False
        return True


def _load_public(kind: int, public: bytes) -> PublicKey:
    if kind == ED25519:
        if len(public) != 32:
            raise InvalidNote("Ed25519 key: must be 32 bytes")
        return Ed25519PublicKey.from_public_bytes(public)
    if kind == ECDSA:
        try:
            loaded = serialization.load_der_public_key(public)
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidNote("ECDSA key: not a DER SubjectPublicKeyInfo") from None
        if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(
            loaded.curve, ECDSA_CURVES
        ):
            raise InvalidNote("ECDSA key: must be on P-256, P-384 or P-521")
        return loaded
    raise InvalidNote(f"signature type 0x{kind:02x}: not one this verifier knows")


def note_key(name: str, public: PublicKey, *, legacy_id: bool = False) -> NoteKey:
    """The verifier key of `public` under `name`; `legacy_id` also accepts, for ECDSA, the key
    ID notes signed here before carried."""
    if isinstance(public, Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return NoteKey(name, ED25519, raw)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _load_public(ECDSA, der)  # refuses curves the type does not allow
    legacy: frozenset[bytes] = frozenset()
    if legacy_id:
        legacy = frozenset({hashlib.sha256(name.encode() + b"\n\x02" + der).digest()[:4]})
    return NoteKey(name, ECDSA, der, legacy)


def parse_vkey(vkey: str) -> NoteKey:
    """A vkey's key, after checking that its key ID is the one its type prescribes."""
    name, plus, rest = vkey.partition("+")
    hex_id, plus2, blob = rest.partition("+")
    if not plus or not plus2 or len(hex_id) != 8:
        raise InvalidNote("vkey: expected <name>+<8 hex digits>+<base64>")
    try:
        key_id = bytes.fromhex(hex_id)
        material = base64.b64decode(blob, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidNote("vkey: bad hex key ID or base64 key") from None
    if len(material) < 2:
        raise InvalidNote("vkey: key material too short")
    key = NoteKey(name, material[0], material[1:])
    _load_public(key.type, key.public)
    if key.key_id != key_id:
        raise InvalidNote("vkey: key ID does not match the key")
    return key


def sign_note(text: str, signers: Sequence[tuple[NoteKey, SignBytes]]) -> str:
    """`text`, a blank line, then one signature line per (key, signing function), in order."""
    if not text.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError("note text: must end in a newline and hold no control characters")
    if not signers:
        raise ValueError("a note needs at least one signature")
    message = text.encode()
    lines = []
    for key, sign in signers:
        blob = base64.b64encode(key.key_id + sign(message)).decode()
        lines.append(f"{SIGNATURE_PREFIX}{key.name} {blob}\n")
    return f"{text}\n{''.join(lines)}"


@dataclass(frozen=True)
class OpenedNote:
    """A note's text, and the trusted keys whose signatures on it verified."""

    text: str
    signed_by: tuple[NoteKey, ...]


@dataclass(frozen=True)
class SignatureLine:
    """One signature line of a note: key name, 4-byte key ID, signature bytes."""

    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[SignatureLine]]:
    """The note's text (ending in its newline) and its signature lines, checked for form only:
    what `open_note` verifies, and where cosignatures (`audit.witness_protocol`) are read."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise InvalidNote("note: control characters")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise InvalidNote("note: no blank line before the signatures")
    text, signatures = note[: split + 1], note[split + 2 :]
    lines = signatures[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidNote(f"note: more than {MAX_SIGNATURES} signatures")
    parsed = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise InvalidNote("note: malformed signature line")
        name, _, blob_text = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not name or _spaces_or_plus(name) or " " in blob_text:
            raise InvalidNote("note: malformed signature line")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except binascii.Error:
            raise InvalidNote("note: signature is not base64") from None
        if len(blob) < 5:
            raise InvalidNote("note: signature too short")
        parsed.append(SignatureLine(name, blob[:4], blob[4:]))
    return text, parsed


def open_note(note: str, keys: Iterable[NoteKey]) -> OpenedNote:
    """The note's text if at least one key in `keys` signed it. Signatures by other keys are
    ignored (the spec says so: that is how cosignatures and rotations coexist); a signature
    whose name and key ID match a trusted key must verify, or the whole note is refused."""
    text, lines = split_note(note)
    trusted = list(keys)
    signed_by: list[NoteKey] = []
    for line in lines:
        for key in trusted:
            if key.name != line.name or (
                line.key_id != key.key_id and line.key_id not in key.legacy_ids
            ):
                continue
            if not key.verify(text.encode(), line.signature):
                raise InvalidNote(
                    f"note: the signature by {line.name} ({line.key_id.hex()}) does not verify"
                )
            signed_by.append(key)
    if not signed_by:
        raise InvalidNote("note: not signed by any trusted key")
    return OpenedNote(text, tuple(signed_by))
