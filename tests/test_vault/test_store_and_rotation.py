"""The vault on SQLite and PostgreSQL over a simulated key token: convergent tokens, envelope
encryption bound to kind/token/version, the KEK on the token, failure without half-writes, and
rotation."""

from __future__ import annotations

import json
import random
import re

import pytest
from sqlalchemy import func, select, update

from certsvc.service_pins import service_pin
from certsvc.vault_setup import VAULT_TOKEN, open_vault
from test_vault.conftest import VaultEnv, interrupt_rotation, stored
from vault import synthetic
from vault.errors import InvalidValue, StoredValueCorrupt, VaultUnavailable
from vault.kinds import TOKEN_PREFIX, Kind
from vault.models import VaultEntry, VaultKey, VaultKeyVersion
from vault.rotation import rotate

TOKEN_RE = re.compile(r"tk_(id|ph|em|nm|ad)_[A-Za-z0-9_-]{22}")


def entries(env: VaultEnv) -> int:
    with env.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(VaultEntry)) or 0)


def test_tokens_are_random_typed_and_convergent(vault_env: VaultEnv) -> None:
    vault = vault_env.vault
    with vault_env.sessions.begin() as db:
        first = vault.tokenise(db, Kind.ID_NUMBER, ["11010519491231002x", "11010519491231002X"])
        phones = vault.tokenise(db, Kind.PHONE, ["+86 138-0013-8000", "13800138000"])
    assert first[0].token == first[1].token and first[0].created and not first[1].created
    assert phones[0].token == phones[1].token
    for item in first + phones:
        assert TOKEN_RE.fullmatch(item.token)
    assert first[0].token.startswith(TOKEN_PREFIX[Kind.ID_NUMBER])
    with vault_env.sessions.begin() as db:
        again = vault.tokenise(db, Kind.ID_NUMBER, ["11010519491231002X"])
        assert again[0].token == first[0].token and not again[0].created
        assert vault.lookup(db, Kind.ID_NUMBER, ["11010519491231002X"]) == [first[0].token]
        assert vault.lookup(db, Kind.PHONE, ["13900000000"]) == [None]
        # the same text under another kind is another value with another index key
        other = vault.tokenise(db, Kind.ADDRESS, ["11010519491231002X"])
        assert other[0].token != first[0].token
    assert entries(vault_env) == 3


def test_values_decrypt_and_mask(vault_env: VaultEnv) -> None:
    vault = vault_env.vault
    with vault_env.sessions.begin() as db:
        name = vault.tokenise(db, Kind.NAME, ["欧阳小明"])[0].token
        email = vault.tokenise(db, Kind.EMAIL, ["Zhang@Example.com"])[0].token
    with vault_env.sessions() as db:
        opened = stored(vault_env, db, [name, email, "tk_nm_unknown"])
        assert {t: (o.kind, o.value) for t, o in opened.items()} == {
            name: (Kind.NAME, "欧阳小明"),
            email: (Kind.EMAIL, "zhang@example.com"),
        }
        assert vault.masked(db, [name, email]) == {
            name: (Kind.NAME, "欧阳**"),
            email: (Kind.EMAIL, "z***@example.com"),
        }


def test_invalid_value_stores_nothing(vault_env: VaultEnv) -> None:
    with vault_env.sessions.begin() as db, pytest.raises(InvalidValue, match=r"^rows\[1\]: "):
        vault_env.vault.tokenise(
            db, Kind.PHONE, ["13800138000", "12345"], fields=["rows[0]", "rows[1]"]
        )
    assert entries(vault_env) == 0


def test_ciphertext_is_bound_to_its_token(vault_env: VaultEnv) -> None:
    vault = vault_env.vault
    with vault_env.sessions.begin() as db:
        a, b = (t.token for t in vault.tokenise(db, Kind.PHONE, ["13800138000", "13900139000"]))
    with vault_env.sessions.begin() as db:
        stolen = db.scalar(select(VaultEntry.ciphertext).where(VaultEntry.token == a))
        db.execute(update(VaultEntry).where(VaultEntry.token == b).values(ciphertext=stolen))
    with vault_env.sessions() as db, pytest.raises(StoredValueCorrupt) as caught:
        stored(vault_env, db, [b])
    assert caught.value.token == b
    assert "failed its integrity check" in str(caught.value)


def test_kek_lives_on_the_token_and_cannot_leave_it(vault_env: VaultEnv) -> None:
    pin = service_pin(vault_env.settings.service_pins_file, VAULT_TOKEN)
    with vault_env.tokens.login(vault_env.kek_serial, pin) as session:
        assert session.secret_key_labels() == ["vault-kek-1"]
        assert session.secret_key_attributes("vault-kek-1") == {
            "SENSITIVE": True,
            "EXTRACTABLE": False,
            "ALWAYS_SENSITIVE": True,
            "NEVER_EXTRACTABLE": True,
            "TOKEN": True,
        }
    with vault_env.sessions() as db:
        wrapped = db.scalars(select(VaultKey.wrapped)).all()
    assert len(wrapped) == 1 + len(Kind)
    assert all(len(blob) == 12 + 32 + 16 for blob in wrapped)
    credentials = json.loads(vault_env.settings.credentials_file.read_text())
    assert pin not in json.dumps({k: v for k, v in credentials.items() if k != "tokens"})


def test_token_unavailable_is_a_clear_error_and_stores_nothing(vault_env: VaultEnv) -> None:
    vault_env.bay.unplug(vault_env.kek_serial)
    with vault_env.sessions.begin() as db, pytest.raises(VaultUnavailable) as caught:
        vault_env.vault.tokenise(db, Kind.ID_NUMBER, ["11010519491231002X"])
    assert "vault key token unavailable" in str(caught.value)
    assert "not inserted" in str(caught.value)
    assert entries(vault_env) == 0
    vault_env.bay.replug(vault_env.kek_serial)
    with vault_env.sessions.begin() as db:
        assert vault_env.vault.tokenise(db, Kind.ID_NUMBER, ["11010519491231002X"])[0].created


def test_keys_are_cached_then_fetched_again(vault_env: VaultEnv) -> None:
    with vault_env.sessions.begin() as db:
        vault_env.vault.tokenise(db, Kind.PHONE, ["13800138000"])
    vault_env.bay.unplug(vault_env.kek_serial)
    with vault_env.sessions.begin() as db:  # cached keys: no token needed per value
        vault_env.vault.tokenise(db, Kind.PHONE, ["13900139000"])
    uncached = open_vault(
        vault_env.settings.model_copy(update={"vault_key_cache_seconds": 0}),
        vault_env.sessions,
        vault_env.tokens,
    )
    with vault_env.sessions() as db, pytest.raises(VaultUnavailable):
        uncached.lookup(db, Kind.PHONE, ["13800138000"])


def test_rotation_moves_every_value_and_deletes_the_old_keys(vault_env: VaultEnv) -> None:
    vault = vault_env.vault
    rng = random.Random(3)
    ids = [synthetic.id_number(rng) for _ in range(25)]
    with vault_env.sessions.begin() as db:
        tokens = [t.token for t in vault.tokenise(db, Kind.ID_NUMBER, ids)]
    seen: list[tuple[int, int]] = []
    report = rotate(
        vault_env.sessions,
        vault.keyring,
        "cli:test",
        batch_size=10,
        grace_seconds=0,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (report.version, report.moved, report.retired) == (2, 25, [1])
    assert report.destroyed == ["vault-kek-1"]
    assert seen[0] == (0, 25) and seen[-1] == (25, 25)
    with vault_env.sessions() as db:
        assert db.scalars(select(VaultKeyVersion.version)).all() == [2]
        assert set(db.scalars(select(VaultEntry.key_version))) == {2}
        # a worker that cached version 1 picks the change up at its next call
        assert vault.lookup(db, Kind.ID_NUMBER, ids) == tokens
        opened = stored(vault_env, db, tokens)
        assert [opened[token].value for token in tokens] == ids
    fresh = open_vault(vault_env.settings, vault_env.sessions, vault_env.tokens)
    with vault_env.sessions.begin() as db:
        assert [t.token for t in fresh.tokenise(db, Kind.ID_NUMBER, ids)] == tokens


def test_interrupted_rotation_is_finished_by_the_next_run(vault_env: VaultEnv) -> None:
    vault = vault_env.vault
    with vault_env.sessions.begin() as db:
        tokens = [t.token for t in vault.tokenise(db, Kind.PHONE, ["13800138000", "13900139000"])]
    interrupt_rotation(vault_env, 1)
    with vault_env.sessions() as db:
        assert sorted(db.scalars(select(VaultKeyVersion.version))) == [1, 2]
        assert sorted(db.scalars(select(VaultEntry.key_version))) == [1, 2]
        # mid-rotation: both versions decrypt, lookups search both, new values use version 2
        assert vault.lookup(db, Kind.PHONE, ["13800138000", "13900139000"]) == tokens
    with vault_env.sessions.begin() as db:
        new = vault.tokenise(db, Kind.PHONE, ["13700137000"])[0].token
    report = rotate(vault_env.sessions, vault.keyring, "cli:test", 1, 0)
    assert not report.started and report.retired == [1]
    with vault_env.sessions() as db:
        assert {o.value for o in stored(vault_env, db, [*tokens, new]).values()} == {
            "13800138000",
            "13900139000",
            "13700137000",
        }


def test_rewrap_only_replaces_the_kek(vault_env: VaultEnv) -> None:
    with vault_env.sessions.begin() as db:
        token = vault_env.vault.tokenise(db, Kind.NAME, ["张三"])[0].token
    report = rotate(vault_env.sessions, vault_env.vault.keyring, "cli:test", rewrap_only=True)
    assert (report.version, report.moved, report.destroyed) == (1, 0, ["vault-kek-1"])
    with vault_env.sessions() as db:
        assert db.scalar(select(VaultKeyVersion.kek_label)) == "vault-kek-2"
        assert stored(vault_env, db, [token])[token].value == "张三"
