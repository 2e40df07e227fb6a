"""Staff accounts, passwords and API tokens, on both databases."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from certsvc.accounts import (
    ApiToken,
    Role,
    StaffAccount,
    authenticate,
    create_account,
    disable_account,
    issue_api_token,
    list_accounts,
    list_api_tokens,
    password_hasher,
    resolve_api_token,
    revoke_api_token,
)
from certsvc.settings import Settings
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound

PASSWORD = "correct horse battery"


def test_create_and_authenticate(session: Session) -> None:
    account = create_account(session, "li.ming", Role.OFFICER, PASSWORD, "李明")
    session.commit()
    assert account.active and account.role is Role.OFFICER and account.display_name == "李明"
    assert account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash
    assert authenticate(session, "li.ming", PASSWORD) is account
    assert authenticate(session, "li.ming", PASSWORD + "x") is None
    assert authenticate(session, "nobody", PASSWORD) is None


def test_display_name_defaults_to_username(session: Session) -> None:
    assert create_account(session, "wang", "registrar", PASSWORD).display_name == "wang"


def test_disabled_account_cannot_log_in(session: Session) -> None:
    create_account(session, "zhao", Role.ADMIN, PASSWORD)
    disable_account(session, "zhao")
    assert authenticate(session, "zhao", PASSWORD) is None


@pytest.mark.parametrize(
    ("username", "role", "password", "display_name", "message"),
    [
        ("Li", Role.OFFICER, PASSWORD, None, "username: 3–32 characters of a-z, 0-9, . _ -"),
        ("li ming", Role.OFFICER, PASSWORD, None, "username: 3–32 characters"),
        ("x" * 33, Role.OFFICER, PASSWORD, None, "username: 3–32 characters"),
        ("liming", "signer", PASSWORD, None, "role: one of registrar, officer, custodian"),
        ("liming", Role.OFFICER, "short-pw", None, "password: at least 12 characters"),
        ("liming", Role.OFFICER, "p" * 1025, None, "password: at most 1024 characters"),
        ("liming", Role.OFFICER, PASSWORD, "  ", "display_name: 1–100 printable characters"),
        ("liming", Role.OFFICER, PASSWORD, "a\nb", "display_name: 1–100 printable characters"),
    ],
)
def test_validation_names_the_field_and_never_the_password(
    session: Session,
    username: str,
    role: str,
    password: str,
    display_name: str | None,
    message: str,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        create_account(session, username, role, password, display_name)
    assert str(caught.value).startswith(message)
    assert password not in str(caught.value)
    assert session.scalars(select(StaffAccount)).all() == []


def test_username_taken(session: Session) -> None:
    create_account(session, "chen", Role.OFFICER, PASSWORD)
    with pytest.raises(Conflict, match="username: 'chen' is already taken"):
        create_account(session, "chen", Role.REGISTRAR, PASSWORD)
    session.commit()
    assert [a.username for a in list_accounts(session)] == ["chen"]


def test_list_accounts_sorted(session: Session) -> None:
    for name in ("zeta", "alpha", "mu.x"):
        create_account(session, name, Role.OFFICER, PASSWORD)
    assert [a.username for a in list_accounts(session)] == ["alpha", "mu.x", "zeta"]


def test_production_parameters_and_rehash(session: Session, settings: Settings) -> None:
    """Tests hash cheaply; a login under the production parameters upgrades the stored hash."""
    cheap = password_hasher(settings)
    production = password_hasher(
        settings.model_copy(update={"password_hash_profile": "production"})
    )
    account = create_account(session, "sun", Role.CUSTODIAN, PASSWORD, hasher=cheap)
    session.commit()
    assert "m=256,t=1,p=1" in account.password_hash
    assert authenticate(session, "sun", PASSWORD, hasher=production) is account
    session.commit()
    upgraded = account.password_hash
    assert "m=65536,t=3,p=4" in upgraded
    assert production.verify(upgraded, PASSWORD)
    assert authenticate(session, "sun", "wrong password!", hasher=production) is None
    assert authenticate(session, "sun", PASSWORD, hasher=production) is account
    assert account.password_hash == upgraded


def test_token_format_and_storage(session: Session) -> None:
    account = create_account(session, "qian", Role.REGISTRAR, PASSWORD)
    text, record = issue_api_token(session, account, 30)
    session.commit()
    match = re.fullmatch(r"cst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", text)
    assert match and match.group(1) == record.token_id
    assert record.token_hash == hashlib.sha256(text.encode()).hexdigest()
    stored = session.execute(select(ApiToken.__table__)).one()
    assert all(text not in str(value) for value in stored)
    assert record.expires_at - record.created_at == timedelta(days=30)
    assert resolve_api_token(session, text) is account
    assert record.last_used_at is not None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t.replace("cst_", "xyz_"),
        lambda t: "cst_0000000000000000_" + t.split("_", 2)[2],
        lambda t: t.rsplit("_", 1)[0],
        lambda t: "",
        lambda t: "cst_",
    ],
)
def test_altered_token_is_refused(session: Session, mangle: object) -> None:
    account = create_account(session, "qian", Role.REGISTRAR, PASSWORD)
    text, _ = issue_api_token(session, account, 1)
    assert callable(mangle)
    assert resolve_api_token(session, mangle(text)) is None


def test_token_expiry(session: Session) -> None:
    account = create_account(session, "zhou", Role.OFFICER, PASSWORD)
    text, record = issue_api_token(session, account, 1)
    assert resolve_api_token(session, text, now=record.expires_at - timedelta(seconds=1))
    assert resolve_api_token(session, text, now=record.expires_at) is None


def test_token_revocation(session: Session) -> None:
    account = create_account(session, "wu.fang", Role.OFFICER, PASSWORD)
    text, record = issue_api_token(session, account, 1)
    other_text, _ = issue_api_token(session, account, 1)
    revoked = revoke_api_token(session, record.token_id)
    assert revoked is record and record.revoked_at is not None
    assert resolve_api_token(session, text) is None
    assert resolve_api_token(session, other_text) is account


def test_revoke_only_own_token_when_account_given(session: Session) -> None:
    mine = create_account(session, "zheng", Role.OFFICER, PASSWORD)
    theirs = create_account(session, "feng", Role.OFFICER, PASSWORD)
    _, record = issue_api_token(session, theirs, 1)
    with pytest.raises(NotFound, match="token_id: no such token"):
        revoke_api_token(session, record.token_id, account=mine)
    assert record.revoked_at is None
    with pytest.raises(NotFound):
        revoke_api_token(session, "0123456789abcdef")


def test_inactive_account_token_is_refused(session: Session) -> None:
    account = create_account(session, "jiang", Role.OFFICER, PASSWORD)
    text, _ = issue_api_token(session, account, 1)
    account.active = False
    assert resolve_api_token(session, text) is None


def test_disable_revokes_every_token(session: Session) -> None:
    account = create_account(session, "han", Role.OFFICER, PASSWORD)
    issue_api_token(session, account, 1)
    issue_api_token(session, account, 2)
    disable_account(session, "han")
    assert all(token.revoked_at is not None for token in list_api_tokens(session, account))
    with pytest.raises(Conflict, match="disabled"):
        issue_api_token(session, account, 1)


@pytest.mark.parametrize("days", [0, 367])
def test_token_days_bounds(session: Session, days: int) -> None:
    account = create_account(session, "yang", Role.OFFICER, PASSWORD)
    with pytest.raises(InvalidInput, match="days: 1–366"):
        issue_api_token(session, account, days)


def test_last_used_is_updated_at_most_once_a_minute(session: Session) -> None:
    account = create_account(session, "xu.lei", Role.OFFICER, PASSWORD)
    text, record = issue_api_token(session, account, 1)
    now = utcnow()
    resolve_api_token(session, text, now=now)
    resolve_api_token(session, text, now=now + timedelta(seconds=30))
    assert record.last_used_at == now
    resolve_api_token(session, text, now=now + timedelta(minutes=2))
    assert record.last_used_at == now + timedelta(minutes=2)
