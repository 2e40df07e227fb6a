"""The PKCS#11 module this process uses: a vendor's, or SoftHSM wrapped as USBKeys.

This is the one switch between production and simulation; the signer sees the same interface
either way.
"""

from __future__ import annotations

from pathlib import Path

import pkcs11
from sqlalchemy.orm import Session, sessionmaker

from certsvc.settings import Settings
from common.errors import ServiceFault
from common.unit_of_work import unit_of_work
from hsm_sim import open_simulated_library
from signer.custody import DbPinCounter
from signer.profile import named
from signer.tokens import Pkcs11Library, Pkcs11Tokens


class HsmConfigError(ServiceFault):
    """The configured PKCS#11 module cannot be loaded."""


def open_library(settings: Settings) -> Pkcs11Library:
    module = settings.pkcs11_module
    if not Path(module).is_file():
        raise HsmConfigError(f"CERTSVC_PKCS11_MODULE: no such file {module}")
    try:
        if settings.hsm_simulation:
            return open_simulated_library(
                module, settings.hsm_dir, settings.pin_max_tries, settings.hsm_latency_ms
            )
        return pkcs11.lib(module)
    except (OSError, RuntimeError, pkcs11.PKCS11Error) as exc:
        raise HsmConfigError(
            f"CERTSVC_PKCS11_MODULE: {module} is not a loadable PKCS#11 module "
            f"({type(exc).__name__})"
        ) from None


class UnitPinCounter:
    """Where logins outside a request count wrong PINs (the CLI, the service's own tokens):
    each count a unit of work of its own."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def failed(self, serial: str) -> int | None:
        with unit_of_work(self._sessions) as db:
            return DbPinCounter(db).failed(serial)

    def succeeded(self, serial: str) -> None:
        with unit_of_work(self._sessions) as db:
            DbPinCounter(db).succeeded(serial)


def open_tokens(settings: Settings, sessions: sessionmaker[Session]) -> Pkcs11Tokens:
    """Token access for an app or a CLI command; the module itself is loaded once per process.
    A request that logs in counts its wrong PINs in its own unit of work instead
    (`Pkcs11Tokens.login`'s `counter`)."""
    return Pkcs11Tokens(
        open_library(settings),
        settings.pin_max_tries,
        UnitPinCounter(sessions),
        named(settings.hsm_profile),
    )
