"""Fresh SoftHSM token directories for tests, wrapped as simulated USBKeys.

python-pkcs11 loads one module per process; each test points SoftHSM at a new token directory
and re-initialises the module so that it sees only that test's tokens.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11
import pytest

from certsvc.settings import Settings
from hsm_sim import SimulatedLibrary, UsbKeyBay, init_token, open_simulated_library
from signer.tokens import Pkcs11Tokens

MAX_TRIES = 3


@dataclass(frozen=True)
class UsbKey:
    serial: str
    label: str
    pin: str
    so_pin: str


@dataclass
class Hsm:
    dir: Path
    raw: object
    library: SimulatedLibrary
    bay: UsbKeyBay
    tokens: Pkcs11Tokens
    keys: dict[str, UsbKey] = field(default_factory=dict)

    def add_token(self, label: str) -> UsbKey:
        key = UsbKey("", label, secrets.token_hex(4), secrets.token_hex(6))
        serial = init_token(self.dir, label, key.pin, key.so_pin)
        key = UsbKey(serial, label, key.pin, key.so_pin)
        self.keys[label] = key
        self.tokens.reset()
        return key


def module_path() -> str:
    return Settings().pkcs11_module


@pytest.fixture
def hsm(tmp_path: Path) -> Iterator[Hsm]:
    hsm_dir = tmp_path / "hsm"
    library = open_simulated_library(module_path(), hsm_dir, MAX_TRIES)
    raw = pkcs11.lib(module_path())
    tokens = Pkcs11Tokens(library, pin_max_tries=MAX_TRIES)
    state = Hsm(hsm_dir, raw, library, UsbKeyBay(hsm_dir), tokens)
    yield state
    tokens.reset()
