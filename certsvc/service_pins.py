"""PINs of the tokens the service logs in to by itself: the audit-checkpoint token and the
vault's key-encryption token. A custodian's USBKey PIN is never here: people type those."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from common.errors import ServiceFault


class ServicePinMissing(ServiceFault):
    """The service cannot unlock one of its own tokens; the message says where to put the PIN."""


class ServicePinsExposed(ServiceFault):
    """The service PIN file lies where a copy of the service's home would carry it."""


def check_pins_location(pins: Path, home: Path, simulation: bool) -> None:
    """Refuse, outside the simulation, a PIN file inside `home` (its database, token directory
    and keys): whoever copies the home must not get the PINs that open its tokens."""
    if simulation:
        return
    if pins.resolve().is_relative_to(home.resolve()):
        raise ServicePinsExposed(
            f"CERTSVC_SERVICE_PINS_PATH: {pins} is inside CERTSVC_HOME {home}; keep the "
            "service PIN file outside it (a secret mount)"
        )


def service_pin(path: Path, label: str) -> str:
    """The PIN for token `label`, from an owner-only JSON file {label: PIN}."""
    try:
        mode = path.stat().st_mode
        pins = json.loads(path.read_text())
    except FileNotFoundError:
        raise ServicePinMissing(
            f"service PIN file {path} is missing: run `certsvc init` or set "
            "CERTSVC_SERVICE_PINS_PATH"
        ) from None
    except (OSError, ValueError):
        raise ServicePinMissing(f"service PIN file {path} is unreadable or not JSON") from None
    if stat.S_IMODE(mode) & 0o077:
        raise ServicePinMissing(f"service PIN file {path} must be readable by its owner only")
    pin = pins.get(label) if isinstance(pins, dict) else None
    if not isinstance(pin, str):
        raise ServicePinMissing(f"service PIN file {path} has no PIN for token {label}")
    return pin


def store_service_pin(path: Path, label: str, pin: str) -> None:
    """Add or replace one token's PIN, keeping the file owner-only."""
    pins: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pins[label] = pin
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        json.dump(pins, out, indent=1)
    os.replace(tmp, path)
