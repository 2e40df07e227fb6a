"""The PKCS#11 module this process uses: a vendor's, or SoftHSM wrapped as USBKeys.

This is the one switch between production and simulation; the signer sees the same interface
either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pkcs11
from sqlalchemy.orm import Session, sessionmaker

from certsvc.settings import Settings
from common.errors import ServiceFault
from hsm_sim import open_simulated_library
from signer.custody import DbPinCounter
from signer.tokens import Pkcs11Tokens


class HsmConfigError(ServiceFault):
    """The configured PKCS#11 module cannot be loaded."""


def open_library(settings: Settings) -> Any:
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


def open_tokens(settings: Settings, sessions: sessionmaker[Session]) -> Pkcs11Tokens:
    """Token access for an app or a CLI command; the module itself is loaded once per process."""
    return Pkcs11Tokens(open_library(settings), settings.pin_max_tries, DbPinCounter(sessions))
