"""The vault wired to this service: its key token (`VAULT-KEK`, unlocked unattended with a
PIN from the service PIN file), provisioning for `certsvc init`, and one `Vault` per process."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.audit_trail import INIT_PROVISIONER
from certsvc.service_pins import ServicePinMissing, service_pin, store_service_pin
from certsvc.settings import Settings
from hsm_sim import init_token
from hsm_sim.softhsm import serial_of
from signer.custody import register_token
from signer.errors import SignerError
from signer.models import HsmToken
from signer.tokens import Pkcs11Tokens
from vault.errors import VaultUnavailable
from vault.keyring import KekOpener, KekSession, KeyRing
from vault.lookups import LookupLimit
from vault.reveal import RevealLimit
from vault.rotation import ensure_first_version
from vault.store import Vault

VAULT_TOKEN = "VAULT-KEK"  # noqa: S105 (a token label, not a secret)


class Credentials(Protocol):
    """The demo credentials file of `certsvc init`, where the token's SO PIN is kept."""

    data: dict[str, Any]

    def save(self) -> None: ...


def kek_opener(
    settings: Settings, sessions: sessionmaker[Session], tokens: Pkcs11Tokens
) -> KekOpener:
    """Log in to the vault's token for one batch of key operations, then log out; every
    failure becomes `VaultUnavailable` (503) naming the token, never the PIN."""

    @contextmanager
    def open_kek() -> Iterator[KekSession]:
        with sessions() as db:
            serial = db.scalar(select(HsmToken.serial).where(HsmToken.label == VAULT_TOKEN))
        if serial is None:
            raise VaultUnavailable(
                f"vault key token {VAULT_TOKEN} is not registered: run `certsvc init`"
            )
        try:
            session = tokens.login(
                serial, service_pin(settings.service_pins_file, VAULT_TOKEN), rw=True
            )
        except (SignerError, ServicePinMissing) as exc:
            raise VaultUnavailable(f"vault key token unavailable: {exc}") from None
        try:
            yield session
        except SignerError as exc:
            raise VaultUnavailable(f"vault key token unavailable: {exc}") from None
        finally:
            session.close()

    return open_kek


def open_vault(settings: Settings, sessions: sessionmaker[Session], tokens: Pkcs11Tokens) -> Vault:
    keyring = KeyRing(kek_opener(settings, sessions, tokens), settings.vault_key_cache_seconds)
    return Vault(keyring)


def reveal_limit(settings: Settings) -> RevealLimit:
    return RevealLimit(
        settings.vault_reveal_limit, timedelta(minutes=settings.vault_reveal_window_minutes)
    )


def lookup_limit(settings: Settings) -> LookupLimit:
    return LookupLimit(
        settings.vault_lookup_limit,
        timedelta(minutes=settings.vault_lookup_window_minutes),
        settings.vault_lookup_alert_misses,
    )


def print_reveal_limit(settings: Settings) -> RevealLimit:
    """The limit on holder names a custodian reveals by printing certificates."""
    return RevealLimit(
        settings.print_reveal_limit, timedelta(minutes=settings.print_reveal_window_minutes)
    )


def provision_vault(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    credentials: Credentials,
    progress: Callable[[str], None],
) -> list[str]:
    """The vault's token, its KEK and key version 1, each made only when missing."""
    created: list[str] = []
    entry = credentials.data["tokens"].get(VAULT_TOKEN)
    serial = serial_of(settings.hsm_dir, VAULT_TOKEN)
    if entry is None or serial is None:
        progress(f"vault token {VAULT_TOKEN}")
        entry = {"user_pin": _digits(8), "so_pin": _digits(12)}
        credentials.data["tokens"][VAULT_TOKEN] = entry
        credentials.save()
        serial = init_token(settings.hsm_dir, VAULT_TOKEN, entry["user_pin"], entry["so_pin"])
        tokens.reset()
        created.append(f"USBKey {VAULT_TOKEN}")
    entry["serial"] = serial
    credentials.save()
    if enrol_vault_token(settings, sessions, tokens, serial, str(entry["user_pin"])):
        progress("vault keys")
        created.append("vault keys v1")
    return created


def enrol_vault_token(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    serial: str,
    pin: str,
) -> bool:
    """Make `serial` the vault's key token: its PIN to the service PIN file (the service
    unlocks it unattended), registered, and key version 1 with its KEK made on it when the
    vault has none; whether version 1 was made. `certsvc init` calls it for the simulated
    token, `certsvc hsm enrol` for a vendor's."""
    store_service_pin(settings.service_pins_file, VAULT_TOKEN, pin)
    with sessions.begin() as db:
        if db.get(HsmToken, serial) is None:
            status = tokens.status(serial)
            register_token(
                db, INIT_PROVISIONER, serial, VAULT_TOKEN, status.model, status.manufacturer, None
            )
    return ensure_first_version(sessions, open_vault(settings, sessions, tokens).keyring)


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))
