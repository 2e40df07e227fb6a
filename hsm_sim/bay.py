"""The USB bay: plug and unplug simulated USBKeys, slow them down, arm faults, lock PINs.

Every change goes to the shared state file, so a test or `certsvc hsm unplug` in one process
pulls the key out from under a signing service running in another.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from hsm_sim.state import FAULTS, Fault, UsbKeyStates

OPERATIONS = ("open", "sign", "verify", "get_key", "get_objects", "generate_keypair", "*")


class UsbKeyBay:
    """Control surface over the simulated keys of one SoftHSM token directory."""

    def __init__(self, hsm_dir: Path) -> None:
        self._states = UsbKeyStates(hsm_dir)

    def unplug(self, serial: str) -> None:
        with self._states.edit(serial) as key:
            key.plugged = False

    def replug(self, serial: str) -> None:
        """Insert the key again; sessions opened before are gone, as with a real device."""
        with self._states.edit(serial) as key:
            if not key.plugged:
                key.plugged = True
                key.generation += 1

    def set_latency(self, serial: str, latency_ms: float | None) -> None:
        """Per-operation delay like a USB token's; None falls back to the configured default."""
        if latency_ms is not None and latency_ms < 0:
            raise ValueError("latency_ms: must be zero or more")
        with self._states.edit(serial) as key:
            key.latency_ms = latency_ms

    def arm_fault(
        self, serial: str, operation: str, error: str, skip: int = 0, unplug: bool = False
    ) -> None:
        """After `skip` matching operations, the next one raises the pkcs11 exception `error`;
        with `unplug` the key is also gone afterwards (removed mid-operation)."""
        if operation not in OPERATIONS:
            raise ValueError(f"operation: one of {', '.join(OPERATIONS)}")
        if error not in FAULTS:
            raise ValueError(f"error: one of {', '.join(FAULTS)}")
        if skip < 0:
            raise ValueError("skip: must be zero or more")
        with self._states.edit(serial) as key:
            key.faults.append(Fault(operation=operation, error=error, skip=skip, unplug=unplug))

    def clear_faults(self, serial: str) -> None:
        with self._states.edit(serial) as key:
            key.faults.clear()

    def lock_pin(self, serial: str) -> None:
        """Lock the user PIN at once, as exhausted retries would."""
        with self._states.edit(serial) as key:
            key.locked = True

    def status(self, serial: str) -> dict[str, Any]:
        return asdict(self._states.get(serial))
