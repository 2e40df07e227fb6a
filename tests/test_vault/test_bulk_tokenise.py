"""The vault's bulk path on SQLite and PostgreSQL: values held and new in one call, two writers
of the same new values at once, a bulk call in the middle of a rotation, a token drawn twice.
Calls of at least `INSERT_FIRST` values insert without looking first; smaller ones look first:
both are exercised."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from certsvc.vault_setup import open_vault
from test_vault.conftest import VaultEnv, interrupt_rotation, stored
from vault import store, synthetic
from vault._crypto import value_aad
from vault.kinds import TOKEN_PREFIX, Kind
from vault.models import VaultEntry, VaultKeyVersion
from vault.rotation import rotate
from vault.store import INSERT_FIRST, Tokenised, new_tokens

SIZES = [pytest.param(3, id="looks-first"), pytest.param(INSERT_FIRST + 36, id="inserts-first")]


def ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    values: dict[str, None] = {}
    while len(values) < count:
        values[synthetic.id_number(rng)] = None
    return list(values)


def entry_count(env: VaultEnv) -> int:
    with env.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(VaultEntry)) or 0)


def tokenise(env: VaultEnv, values: Sequence[str], kind: Kind = Kind.ID_NUMBER) -> list[Tokenised]:
    with env.sessions.begin() as db:
        return env.vault.tokenise(db, kind, values)


@pytest.mark.parametrize("count", SIZES)
def test_held_new_and_repeated_values_in_one_call(vault_env: VaultEnv, count: int) -> None:
    held = ids(count, 1)
    first = tokenise(vault_env, held)
    assert all(item.created for item in first)
    new = ids(count + 5, 2)[count // 2 :]  # some new, some held (seed 2 overlaps nothing)
    mixed = [*held, *new, *held[:2], *new[:2]]
    again = tokenise(vault_env, mixed)
    tokens = {value: item.token for value, item in zip(mixed, again, strict=True)}
    assert [tokens[value] for value in held] == [item.token for item in first]
    created = [False] * len(held) + [True] * len(new) + [False] * 4
    assert [item.created for item in again] == created
    assert len(set(tokens.values())) == len(tokens)
    assert entry_count(vault_env) == len(held) + len(new)
    with vault_env.sessions() as db:
        opened = stored(vault_env, db, list(tokens.values()))
    assert {opened[token].value for token in tokens.values()} == set(tokens)


@pytest.mark.parametrize("count", SIZES)
def test_two_writers_of_the_same_new_values_get_the_same_tokens(
    vault_env: VaultEnv, count: int
) -> None:
    """The first writer holds its new entries uncommitted while the second tokenises the same
    values and more: PostgreSQL makes the second writer's insert wait, then skip the held
    values and read the first writer's tokens back. SQLite refuses the second writer's insert
    at once ("database is locked": a read transaction cannot wait for the write lock), and the
    call, tried again as a caller would, finds the values held once the first commits."""
    shared = ids(count, 3)
    extra = ids(count + 4, 4)[count:]
    second_vault = open_vault(vault_env.settings, vault_env.sessions, vault_env.tokens)
    inserted = threading.Event()
    answers: dict[str, list[Tokenised]] = {}
    retries: list[str] = []
    seen_waiting: list[bool] = []
    failures: list[BaseException] = []
    postgres = vault_env.settings.resolved_database_url.startswith("postgresql")

    def second_is_held_up() -> bool:
        """PostgreSQL: a session of this database waits on a lock; SQLite: refused once."""
        if not postgres:
            return bool(retries)
        with vault_env.sessions() as db:
            waiting = db.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            )
        return bool(waiting)

    def first() -> None:
        with vault_env.sessions.begin() as db:
            answers["first"] = vault_env.vault.tokenise(db, Kind.ID_NUMBER, shared)
            inserted.set()
            # Commit only once the second writer has met these uncommitted rows.
            deadline = time.monotonic() + 30
            while not second_is_held_up() and time.monotonic() < deadline:
                time.sleep(0.01)
            seen_waiting.append(second_is_held_up())

    def second() -> None:
        assert inserted.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with vault_env.sessions.begin() as db:
                    answers["second"] = second_vault.tokenise(db, Kind.ID_NUMBER, [*shared, *extra])
                return
            except OperationalError as exc:  # SQLite only
                retries.append(str(exc.orig))
                time.sleep(0.01)

    def run(target: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)
                inserted.set()

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    for thread in [run(first), run(second)]:
        thread.join(30)
    assert not failures, failures
    assert seen_waiting == [True]  # the second writer met the first's rows uncommitted
    if postgres:  # in one call, which waited for them rather than failed
        assert retries == []
    assert "second" in answers, retries
    first_tokens = [item.token for item in answers["first"]]
    second_answers = answers["second"]
    assert [item.token for item in second_answers[:count]] == first_tokens
    assert all(item.created for item in answers["first"])
    assert not any(item.created for item in second_answers[:count])
    assert all(item.created for item in second_answers[count:])
    assert entry_count(vault_env) == count + len(extra)


def test_bulk_call_during_a_rotation_finds_values_under_the_old_version(
    vault_env: VaultEnv,
) -> None:
    vault = vault_env.vault
    held = ids(INSERT_FIRST + 10, 5)
    tokens = [item.token for item in tokenise(vault_env, held)]
    interrupt_rotation(vault_env, 10)
    with vault_env.sessions() as db:
        assert sorted(db.scalars(select(VaultKeyVersion.version))) == [1, 2]
        versions = list(db.scalars(select(VaultEntry.key_version)))
        assert versions.count(1) > 0 and versions.count(2) > 0
    new = ids(INSERT_FIRST + 20, 6)
    again = tokenise(vault_env, [*held, *new])
    assert [item.token for item in again[: len(held)]] == tokens
    assert not any(item.created for item in again[: len(held)])
    assert entry_count(vault_env) == len(held) + len(new)
    rotate(vault_env.sessions, vault.keyring, "cli:test", 10, 0)
    assert [item.token for item in tokenise(vault_env, held)] == tokens
    assert entry_count(vault_env) == len(held) + len(new)


@pytest.mark.parametrize("count", SIZES)
def test_a_token_drawn_twice_is_drawn_again(
    vault_env: VaultEnv, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token collision is not a blind-index conflict: the insert fails, its savepoint is
    rolled back (nothing of it stays, not even the rows before the colliding one) and the
    values get fresh tokens."""
    taken = tokenise(vault_env, ids(1, 7))[0].token
    draws: list[int] = []

    def colliding(kind: Kind, how_many: int) -> list[str]:
        draws.append(how_many)
        fresh = new_tokens(kind, how_many)
        return [*fresh[:-1], taken] if len(draws) == 1 else fresh

    monkeypatch.setattr(store, "new_tokens", colliding)
    values = ids(count, 8)
    with vault_env.sessions.begin() as db:
        answers = vault_env.vault.tokenise(db, Kind.ID_NUMBER, values)
        _assert_entries_match(db, vault_env, values, answers)
    assert draws == [count, count]
    assert all(item.created for item in answers)
    assert taken not in {item.token for item in answers}
    assert entry_count(vault_env) == 1 + count


def _assert_entries_match(
    db: Session, env: VaultEnv, values: Sequence[str], answers: Sequence[Tokenised]
) -> None:
    opened = stored(env, db, [item.token for item in answers])
    assert [opened[item.token].value for item in answers] == list(values)


def test_batch_helpers_match_the_single_value_forms(vault_env: VaultEnv) -> None:
    tokens = new_tokens(Kind.PHONE, 50)
    assert len(set(tokens)) == 50
    assert all(t.startswith(TOKEN_PREFIX[Kind.PHONE]) and len(t) == 6 + 22 for t in tokens)
    with vault_env.sessions() as db:
        key_set = vault_env.vault.keyring.current(db).newest
    values = ["13800138000", "13900139000"]
    sealed = key_set.seal_many(Kind.PHONE, tokens[:2], values)
    assert len({box[:12] for box in sealed}) == 2  # a nonce each
    for token, value, box in zip(tokens, values, sealed, strict=False):
        assert key_set.decrypt(Kind.PHONE, token, box) == value
        plain = key_set.values.decrypt(box[:12], box[12:], value_aad(Kind.PHONE, token, 1))
        assert plain.decode() == value
