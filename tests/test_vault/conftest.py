"""A provisioned service (database, demo tokens, the vault's key token and keys) per test."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import pytest
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import create_application, create_batch
from certify.intake import ApplicantTokens, register_applicant
from certsvc.hsm import open_tokens
from certsvc.settings import Settings
from certsvc.vault_setup import VAULT_TOKEN, open_vault
from hsm_sim import UsbKeyBay
from init_cache import initialised
from signer.tokens import Pkcs11Tokens
from test_certify.conftest import OFFICER, PLAN, REGISTRAR
from vault._plaintext import Opened, open_entries
from vault.rotation import rotate
from vault.store import Vault


@dataclass
class VaultEnv:
    settings: Settings
    sessions: sessionmaker[Session]
    tokens: Pkcs11Tokens
    vault: Vault
    kek_serial: str
    bay: UsbKeyBay


def case_for(env: VaultEnv, tokens: ApplicantTokens) -> str:
    """`application:<id>` of a new case whose applicant holds `tokens`: a reveal names the
    case its values are needed for."""
    with env.sessions.begin() as db:
        batch = create_batch(db, OFFICER, replace(PLAN, name=f"batch {secrets.token_hex(4)}"))
        applicant = register_applicant(db, REGISTRAR, env.vault, tokens)
        application = create_application(
            db, REGISTRAR, batch.id, applicant, "SS", "02", filed_on=PLAN.registration_opens
        )
        return f"application:{application.id}"


def stored(env: VaultEnv, db: Session, tokens: Sequence[str]) -> dict[str, Opened]:
    """What the vault holds for `tokens`, through its private decrypting path: these tests
    check the vault's own storage, which no code outside the vault may read this way."""
    return open_entries(db, env.vault.keyring.current(db), tokens)


def interrupt_rotation(env: VaultEnv, batch_size: int) -> None:
    """Start a key rotation and stop it after its first batch of moved values, as a crash
    would: both key versions are then in use."""

    def crash(done: int, _total: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate(env.sessions, env.vault.keyring, "cli:test", batch_size, 0, crash)


@pytest.fixture
def vault_env(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[VaultEnv]:
    initialised(settings)
    credentials = json.loads(settings.credentials_file.read_text())
    tokens = open_tokens(settings, sessions)
    yield VaultEnv(
        settings=settings,
        sessions=sessions,
        tokens=tokens,
        vault=open_vault(settings, sessions, tokens),
        kek_serial=credentials["tokens"][VAULT_TOKEN]["serial"],
        bay=UsbKeyBay(settings.hsm_dir),
    )
    tokens.reset()
