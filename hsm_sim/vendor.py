"""Another vendor's module, played by SoftHSM: the answers real USBKey modules give differently.

Wraps a loaded module (SoftHSM, simulated as USBKeys or not) and changes what it answers, never
what it does: the same keys sign, only the encoding of the answer differs. With the fault layer
(`UsbKeyBay.arm_fault`, e.g. `UserAlreadyLoggedIn` on `open`) this covers what
`signer.profile` handles:

- `der-signatures`: `CKM_ECDSA` answers a DER SEQUENCE instead of raw r‖s;
- `raw-ec-point`: `CKA_EC_POINT` is the bare point, not wrapped in a DER OCTET STRING;
- `no-mechanism-info`: `C_GetMechanismInfo` has no entry for any mechanism, though
  `C_GetMechanismList` still lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from asn1crypto import core as asn1_core
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, Mechanism
from pkcs11 import exceptions as p11e

QUIRKS = ("der-signatures", "raw-ec-point", "no-mechanism-info")
# Answers that are values, not module objects to wrap.
PLAIN = (bytes, bytearray, str, int, float, set, frozenset, list, dict)


class VendorModule:
    """A module look-alike (meets `signer.tokens.Pkcs11Library`) answering with `quirks`."""

    def __init__(self, lib: Any, quirks: Iterable[str]) -> None:
        self._lib = lib
        self.quirks = frozenset(quirks)
        unknown = self.quirks - set(QUIRKS)
        if unknown:
            raise ValueError(f"quirks: one of {', '.join(QUIRKS)}")

    def reinitialize(self) -> None:
        self._lib.reinitialize()

    def get_token(self, **kwargs: Any) -> Any:
        return _Answer(self._lib.get_token(**kwargs), self.quirks)

    def get_tokens(self, **kwargs: Any) -> Iterator[Any]:
        for token in self._lib.get_tokens(**kwargs):
            yield _Answer(token, self.quirks)


class _Answer:
    """A token, slot, session or object of the wrapped module; calls pass through, answers are
    re-encoded as the quirks say and wrapped alike."""

    def __init__(self, target: Any, quirks: frozenset[str]) -> None:
        self._target = target
        self._quirks = quirks

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name == "slot":
            return _Answer(value, self._quirks)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "get_mechanism_info" and "no-mechanism-info" in self._quirks:
                raise p11e.MechanismInvalid()
            result = value(*args, **kwargs)
            if (
                name == "sign"
                and kwargs.get("mechanism") == Mechanism.ECDSA
                and "der-signatures" in self._quirks
            ):
                raw = bytes(result)
                half = len(raw) // 2
                return encode_dss_signature(
                    int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
                )
            return self._wrap(result)

        return call

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, tuple):
            return tuple(self._wrap(item) for item in result)
        if isinstance(result, Iterator):
            return (self._wrap(item) for item in result)
        if result is None or isinstance(result, PLAIN):
            return result
        return _Answer(result, self._quirks)  # a session, domain parameters, a key, …

    def __getitem__(self, attribute: Any) -> Any:
        value = self._target[attribute]
        if attribute == Attribute.EC_POINT and "raw-ec-point" in self._quirks:
            return bytes(asn1_core.OctetString.load(bytes(value)).native)
        return value

    def __setitem__(self, attribute: Any, value: Any) -> None:
        self._target[attribute] = value

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._target.close()
