"""A `pkcs11.lib` look-alike that makes SoftHSM tokens behave like USBKeys.

The signer talks to this object exactly as it talks to a vendor's module: same methods, same
`pkcs11` exception types. What it adds is what SoftHSM lacks — a PIN retry counter that locks,
removal and re-insertion, per-operation latency and armed faults — all read from the shared
state file (`state.py`) so that every process agrees.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pkcs11
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11e

from hsm_sim.state import UsbKey, UsbKeyStates

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as LoadedModule  # what `pkcs11.lib` returns

_PIN_FLAGS = TokenFlag.USER_PIN_COUNT_LOW | TokenFlag.USER_PIN_FINAL_TRY | TokenFlag.USER_PIN_LOCKED


class SimulatedLibrary:
    """Wraps a loaded `pkcs11.lib`; unknown attributes pass through to it. Meets
    `signer.tokens.Pkcs11Library` as the vendor's module does."""

    def __init__(
        self, lib: LoadedModule, hsm_dir: Path, max_tries: int, latency_ms: float = 0.0
    ) -> None:
        if max_tries < 1:
            raise ValueError("max_tries: must be at least 1")
        self._lib = lib
        self._states = UsbKeyStates(hsm_dir)
        self.max_tries = max_tries
        self._latency_ms = latency_ms
        # Generation of each key when this process last initialised the module: after a
        # re-plug, every handle stays invalid until the module is initialised again.
        self._seen: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def reinitialize(self) -> None:
        self._lib.reinitialize()
        self._seen.clear()

    def get_token(self, **kwargs: Any) -> SimulatedToken:
        token = SimulatedToken(self, self._lib.get_token(**kwargs))
        if not self.state(token.serial_text).plugged:
            raise p11e.TokenNotPresent()
        return token

    def get_tokens(self, **kwargs: Any) -> Iterator[SimulatedToken]:
        for raw in self._lib.get_tokens(**kwargs):
            token = SimulatedToken(self, raw)
            if self.state(token.serial_text).plugged:
                yield token

    def state(self, serial: str) -> UsbKey:
        return self._states.get(serial)

    def check(self, serial: str, session_generation: int | None, operation: str) -> int:
        """Gate one token operation: presence, staleness, latency, armed faults."""
        key = self._states.get(serial)
        if not key.plugged:
            raise p11e.DeviceRemoved() if session_generation is not None else p11e.TokenNotPresent()
        seen = self._seen.setdefault(serial, key.generation)
        if seen != key.generation or session_generation not in (None, key.generation):
            raise p11e.SessionHandleInvalid()
        latency = key.latency_ms if key.latency_ms is not None else self._latency_ms
        if latency:
            time.sleep(latency / 1000)
        if key.faults:
            self._fire(serial, operation)
        return key.generation

    def _fire(self, serial: str, operation: str) -> None:
        error: str | None = None
        with self._states.edit(serial) as key:
            for fault in key.faults:
                if fault.operation not in (operation, "*"):
                    continue
                if fault.skip:
                    fault.skip -= 1
                else:
                    key.faults.remove(fault)
                    error = fault.error
                    if fault.unplug:
                        key.plugged = False
                    if error == "PinLocked":
                        key.locked = True
                break
        if error is not None:
            raise getattr(p11e, error)()

    def pin_failed(self, serial: str) -> None:
        with self._states.edit(serial) as key:
            key.failures += 1
            key.locked = key.failures >= self.max_tries

    def pin_reset(self, serial: str) -> None:
        key = self._states.get(serial)
        if key.failures or key.locked:
            with self._states.edit(serial) as key:
                key.failures = 0
                key.locked = False


class SimulatedToken:
    """A token whose user PIN locks after `max_tries` wrong entries, until the SO unblocks it.
    Meets `signer.tokens.Pkcs11Token` as `pkcs11.Token` does."""

    def __init__(self, sim: SimulatedLibrary, token: pkcs11.Token) -> None:
        self._sim = sim
        self._token = token
        self.serial_text: str = token.serial.decode("ascii").strip()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._token, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimulatedToken) and other.serial_text == self.serial_text

    def __hash__(self) -> int:
        return hash(self.serial_text)

    @property
    def flags(self) -> TokenFlag:
        key = self._sim.state(self.serial_text)
        flags = TokenFlag(self._token.flags) & ~_PIN_FLAGS
        if key.locked:
            flags |= TokenFlag.USER_PIN_LOCKED
        elif key.failures:
            flags |= TokenFlag.USER_PIN_COUNT_LOW
            if key.failures == self._sim.max_tries - 1:
                flags |= TokenFlag.USER_PIN_FINAL_TRY
        return flags

    def open(
        self,
        rw: bool = False,
        user_pin: str | None = None,
        so_pin: str | None = None,
        **kwargs: Any,
    ) -> pkcs11.Session:
        generation = self._sim.check(self.serial_text, None, "open")
        if user_pin is None:
            session = self._token.open(rw=rw, so_pin=so_pin, **kwargs)
        else:
            if self._sim.state(self.serial_text).locked:
                raise p11e.PinLocked()
            try:
                session = self._token.open(rw=rw, user_pin=user_pin, **kwargs)
            except p11e.PinIncorrect:
                self._sim.pin_failed(self.serial_text)
                raise
            self._sim.pin_reset(self.serial_text)
        # The proxy stands in for the session: every call gated, then passed through to it.
        return cast(
            pkcs11.Session, SimulatedObject(self._sim, self.serial_text, generation, session)
        )


class SimulatedObject:
    """A session or object on a simulated token: every call is gated, results wrapped alike."""

    def __init__(self, sim: SimulatedLibrary, serial: str, generation: int, target: Any) -> None:
        self._sim = sim
        self._serial = serial
        self._generation = generation
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._sim.check(self._serial, self._generation, name)
            result = self._wrap(value(*args, **kwargs))
            if name == "init_pin":
                self._sim.pin_reset(self._serial)
            return result

        return call

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, pkcs11.Session | pkcs11.Object):
            return SimulatedObject(self._sim, self._serial, self._generation, result)
        if isinstance(result, tuple):
            return tuple(self._wrap(item) for item in result)
        if isinstance(result, Iterator):
            return (self._wrap(item) for item in result)
        return result

    def __getitem__(self, attribute: Any) -> Any:
        self._sim.check(self._serial, self._generation, "get_attribute")
        return self._target[attribute]

    def __setitem__(self, attribute: Any, value: Any) -> None:
        self._sim.check(self._serial, self._generation, "set_attribute")
        self._target[attribute] = value

    def __enter__(self) -> SimulatedObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
