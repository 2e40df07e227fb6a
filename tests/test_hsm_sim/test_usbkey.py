"""The simulation gives SoftHSM what USBKeys have: lockout, removal, latency, faults."""

from __future__ import annotations

import subprocess
import sys
import time

import pkcs11
import pytest
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11e

from hsm_fixtures import MAX_TRIES, Hsm, module_path


def _open(hsm: Hsm, serial: str, pin: str) -> object:
    return hsm.library.get_token(token_serial=serial.encode()).open(user_pin=pin)


def test_softhsm_alone_never_locks(hsm: Hsm) -> None:
    """The premise of the simulation: SoftHSM accepts the right PIN after many wrong ones."""
    key = hsm.add_token("PLAIN")
    token = hsm.raw.get_token(token_serial=key.serial.encode())  # type: ignore[attr-defined]
    for _ in range(MAX_TRIES + 5):
        with pytest.raises(p11e.PinIncorrect):
            token.open(user_pin="000000")
    token.open(user_pin=key.pin).close()


def test_wrong_pins_lock_the_key_and_flags_say_so(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    token = hsm.library.get_token(token_serial=key.serial.encode())
    for attempt in range(1, MAX_TRIES + 1):
        with pytest.raises(p11e.PinIncorrect):
            token.open(user_pin="000000")
        flags = token.flags
        if attempt < MAX_TRIES - 1:
            assert flags & TokenFlag.USER_PIN_COUNT_LOW
            assert not flags & TokenFlag.USER_PIN_FINAL_TRY
        elif attempt == MAX_TRIES - 1:
            assert flags & TokenFlag.USER_PIN_FINAL_TRY
    assert token.flags & TokenFlag.USER_PIN_LOCKED
    with pytest.raises(p11e.PinLocked):
        token.open(user_pin=key.pin)


def test_right_pin_resets_the_counter(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    for _ in range(MAX_TRIES - 1):
        with pytest.raises(p11e.PinIncorrect):
            _open(hsm, key.serial, "000000")
    _open(hsm, key.serial, key.pin).close()  # type: ignore[attr-defined]
    assert hsm.bay.status(key.serial)["failures"] == 0
    for _ in range(MAX_TRIES - 1):
        with pytest.raises(p11e.PinIncorrect):
            _open(hsm, key.serial, "000000")
    _open(hsm, key.serial, key.pin).close()  # type: ignore[attr-defined]


def test_lockout_is_seen_by_another_process(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    hsm.bay.lock_pin(key.serial)
    script = (
        "import sys, pkcs11\n"
        "from pathlib import Path\n"
        "from hsm_sim import open_simulated_library\n"
        "lib = open_simulated_library(sys.argv[1], Path(sys.argv[2]), 3)\n"
        "try:\n"
        "    lib.get_token(token_serial=sys.argv[3].encode()).open(user_pin=sys.argv[4])\n"
        "except pkcs11.exceptions.PinLocked:\n"
        "    print('locked')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, module_path(), str(hsm.dir), key.serial, key.pin],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "locked"


def test_so_unblocks_with_a_new_pin(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    for _ in range(MAX_TRIES):
        with pytest.raises(p11e.PinIncorrect):
            _open(hsm, key.serial, "000000")
    hsm.library.reinitialize()  # failed logins leave read-only sessions; SO login needs none
    token = hsm.library.get_token(token_serial=key.serial.encode())
    with token.open(rw=True, so_pin=key.so_pin) as so:
        so.init_pin("24681357")
    assert not hsm.bay.status(key.serial)["locked"]
    _open(hsm, key.serial, "24681357").close()  # type: ignore[attr-defined]
    with pytest.raises(p11e.PinIncorrect):
        _open(hsm, key.serial, key.pin)


def test_unplugged_key_is_absent_and_its_sessions_die(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    session = _open(hsm, key.serial, key.pin)
    hsm.bay.unplug(key.serial)
    with pytest.raises(p11e.TokenNotPresent):
        hsm.library.get_token(token_serial=key.serial.encode())
    assert key.serial not in {t.serial_text for t in hsm.library.get_tokens()}
    with pytest.raises(p11e.DeviceRemoved):
        list(session.get_objects())  # type: ignore[attr-defined]
    hsm.bay.replug(key.serial)
    # Old handles stay invalid until the module is initialised again, as on real devices.
    with pytest.raises(p11e.SessionHandleInvalid):
        list(session.get_objects())  # type: ignore[attr-defined]
    with pytest.raises(p11e.SessionHandleInvalid):
        _open(hsm, key.serial, key.pin)
    hsm.library.reinitialize()
    _open(hsm, key.serial, key.pin).close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("error", ["DeviceRemoved", "SessionHandleInvalid", "DeviceError"])
def test_armed_fault_raises_the_module_exception_after_skipped_operations(
    hsm: Hsm, error: str
) -> None:
    key = hsm.add_token("KEY-A")
    session = _open(hsm, key.serial, key.pin)
    hsm.bay.arm_fault(key.serial, "get_objects", error, skip=2)
    list(session.get_objects())  # type: ignore[attr-defined]
    list(session.get_objects())  # type: ignore[attr-defined]
    with pytest.raises(getattr(p11e, error)):
        list(session.get_objects())  # type: ignore[attr-defined]
    list(session.get_objects())  # type: ignore[attr-defined]  # one-shot: gone after firing
    assert hsm.bay.status(key.serial)["faults"] == []


def test_fault_with_unplug_removes_the_key_mid_operation(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    session = _open(hsm, key.serial, key.pin)
    hsm.bay.arm_fault(key.serial, "*", "DeviceRemoved", unplug=True)
    with pytest.raises(p11e.DeviceRemoved):
        list(session.get_objects())  # type: ignore[attr-defined]
    assert not hsm.bay.status(key.serial)["plugged"]


def test_pin_locked_fault_locks_the_key(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    session = _open(hsm, key.serial, key.pin)
    hsm.bay.arm_fault(key.serial, "get_objects", "PinLocked")
    with pytest.raises(p11e.PinLocked):
        list(session.get_objects())  # type: ignore[attr-defined]
    session.close()  # type: ignore[attr-defined]
    with pytest.raises(p11e.PinLocked):
        _open(hsm, key.serial, key.pin)


def test_latency_slows_every_operation(hsm: Hsm) -> None:
    """A slow token is a behaviour, not a benchmark: sleeping at least the latency is the
    contract, so only that lower bound is checked."""
    key = hsm.add_token("KEY-A")
    session = _open(hsm, key.serial, key.pin)
    hsm.bay.set_latency(key.serial, 40)
    started = time.monotonic()
    for _ in range(3):
        list(session.get_objects())  # type: ignore[attr-defined]
    assert time.monotonic() - started >= 0.12
    hsm.bay.set_latency(key.serial, None)
    assert hsm.bay.status(key.serial)["latency_ms"] is None


def test_bay_rejects_unknown_faults(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    with pytest.raises(ValueError, match="error"):
        hsm.bay.arm_fault(key.serial, "sign", "Explode")
    with pytest.raises(ValueError, match="operation"):
        hsm.bay.arm_fault(key.serial, "launch", "DeviceError")
    with pytest.raises(ValueError, match="latency_ms"):
        hsm.bay.set_latency(key.serial, -1)


def test_wrapped_objects_are_still_pkcs11_objects(hsm: Hsm) -> None:
    key = hsm.add_token("KEY-A")
    session = _open(hsm, key.serial, key.pin)
    assert isinstance(session._target, pkcs11.Session)  # type: ignore[attr-defined]
    session.close()  # type: ignore[attr-defined]
