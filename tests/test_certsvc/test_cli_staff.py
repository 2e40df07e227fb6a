"""`certsvc staff …` and `certsvc workstation …` on both databases."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from certsvc.accounts import authenticate, get_account, resolve_api_token
from certsvc.cli import app, main
from certsvc.grants import account_backed
from certsvc.settings import Settings
from certsvc.workstations import get_workstation, load_workstation_key

PASSWORD = "a good long password"


@pytest.fixture
def runner(settings: Settings) -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_add_with_password_from_stdin(runner: CliRunner, session: Session) -> None:
    code, out, _ = run(
        runner,
        "staff",
        "add",
        "li.ming",
        "--role",
        "officer",
        "--display-name",
        "李明",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert out == (
        "created li.ming (officer)\nawaiting a security officer's approval "
        "(POST /api/v1/security/accounts/li.ming/approve)\n"
    )
    account = authenticate(session, "li.ming", PASSWORD)
    assert code == 0 and account is not None and account.display_name == "李明"
    assert account.must_set_password and not account_backed(session, account)


def test_add_with_hidden_prompt_and_confirmation(runner: CliRunner, session: Session) -> None:
    code, out, _ = run(
        runner,
        "staff",
        "add",
        "wang.fang",
        "--role",
        "custodian",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert code == 0
    assert PASSWORD not in out
    assert authenticate(session, "wang.fang", PASSWORD) is not None


def test_add_with_generated_password(runner: CliRunner, session: Session) -> None:
    code, out, _ = run(runner, "staff", "add", "zhao", "--role", "admin", "--generate-password")
    assert code == 0
    password = out.splitlines()[-1].removeprefix("initial password (shown only now, usable once): ")
    account = authenticate(session, "zhao", password)
    assert account is not None and account.must_set_password and account_backed(session, account)


def test_add_rejects_both_password_sources(runner: CliRunner) -> None:
    code, _, err = run(
        runner,
        "staff",
        "add",
        "zhao",
        "--role",
        "admin",
        "--generate-password",
        "--password-stdin",
    )
    assert code == 2 and "at most one of" in err


def test_add_rejects_an_unknown_role(runner: CliRunner) -> None:
    code, _, err = run(runner, "staff", "add", "zhao", "--role", "signer", "--generate-password")
    assert code == 2 and "signer" in err


def test_list_disable_token_revoke(runner: CliRunner, session: Session) -> None:
    for name, role in (("sun", "officer"), ("qian", "security_officer")):
        run(runner, "staff", "add", name, "--role", role, "--password-stdin", input=PASSWORD)
    code, out, _ = run(runner, "staff", "list")
    assert code == 0
    assert "qian" in out and "security_officer" in out and "sun" in out

    code, token, err = run(runner, "staff", "token", "sun", "--days", "7")
    token = token.strip()
    assert code == 0 and token.startswith("cst_")
    assert "shown only now" in err and token not in err
    account = resolve_api_token(session, token)
    assert account is not None and account.username == "sun"

    token_id = token.split("_")[1]
    assert run(runner, "staff", "revoke-token", token_id)[:2] == (0, f"revoked token {token_id}\n")
    session.rollback()
    assert resolve_api_token(session, token) is None

    _, second, _ = run(runner, "staff", "token", "sun")
    assert run(runner, "staff", "disable", "sun")[0] == 0
    session.rollback()
    assert resolve_api_token(session, second.strip()) is None
    assert get_account(session, "sun").active is False


def test_workstation_add_and_list(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run(runner, "staff", "add", "zhou", "--role", "custodian", "--password-stdin", input=PASSWORD)
    key_path = tmp_path / "keys" / "ws-01.pem"
    key_path.parent.mkdir()
    code, out, _ = run(
        runner, "workstation", "add", "ws-01", "--custodian", "zhou", "--key-out", str(key_path)
    )
    assert code == 0 and "registered ws-01 for zhou" in out
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    with sessions() as db:
        workstation = get_workstation(db, "ws-01")
        assert workstation.custodian.username == "zhou"
        assert load_workstation_key(key_path).public_key().public_bytes_raw() == (
            workstation.public_key
        )
    code, out, _ = run(runner, "workstation", "list")
    assert "ws-01" in out and "zhou" in out and workstation.fingerprint in out

    assert run(runner, "workstation", "disable", "ws-01")[0] == 0
    with sessions() as db:
        assert get_workstation(db, "ws-01").active is False


def test_workstation_add_refusals_leave_no_key(
    runner: CliRunner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(runner, "staff", "add", "wu.gang", "--role", "officer", "--password-stdin", input=PASSWORD)
    key_path = tmp_path / "ws.pem"
    with pytest.raises(SystemExit) as exit_info:
        main(["workstation", "add", "ws-02", "--custodian", "wu.gang", "--key-out", str(key_path)])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "certsvc: error: custodian: 'wu.gang' must have the custodian or vault_revealer role\n"
    )
    assert not key_path.exists()

    key_path.write_text("keep me")
    with pytest.raises(SystemExit):
        main(["workstation", "add", "ws-02", "--custodian", "wu.gang", "--key-out", str(key_path)])
    assert "already exists" in capsys.readouterr().err
    assert key_path.read_text() == "keep me"


def test_known_errors_are_one_line(capsys: pytest.CaptureFixture[str], settings: Settings) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["staff", "disable", "nobody"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "certsvc: error: username: no account 'nobody'\n"


def test_uninitialised_database_is_not_created(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CERTSVC_DATABASE_URL", empty_db_url)
    monkeypatch.setenv("CERTSVC_PASSWORD_HASH_PROFILE", "test")
    for command in (
        ["staff", "list"],
        ["staff", "add", "x.y.z", "--role", "admin", "--generate-password"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(command)
        assert exit_info.value.code == 1
        assert capsys.readouterr() == (
            "",
            "certsvc: error: database not initialised — run `certsvc init`\n",
        )


def test_bad_database_url_is_one_line_exit_2(tmp_path: Path) -> None:
    """Through the installed entry point, as an operator would run it."""
    password = "Tr0ub4dor-and-3"
    env = {
        "PATH": "/usr/bin:/bin",
        "CERTSVC_HOME": str(tmp_path),
        "CERTSVC_DATABASE_URL": f"postgresql+psycopg://certsvc:{password}@127.0.0.1:1/certsvc",
    }
    certsvc = Path(sys.executable).with_name("certsvc")
    result = subprocess.run(
        [str(certsvc), "staff", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "certsvc: error: cannot connect to database"
        " postgresql+psycopg://certsvc:***@127.0.0.1:1/certsvc: "
    )
    assert result.stderr.count("\n") == 1
    assert password not in result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_tables_in_a_pipe_are_not_cut_short(settings: Settings) -> None:
    """rich assumes 80 columns without a terminal and cut `security_officer` to `security_offi…`."""
    certsvc = Path(sys.executable).with_name("certsvc")
    display = "Long Display Name Of The Security Officer On Duty"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(certsvc), *args], capture_output=True, text=True, timeout=60)

    assert run("init").returncode == 0
    added = run(
        "staff",
        "add",
        "security.officer.on.duty",
        "--role",
        "security_officer",
        "--display-name",
        display,
        "--generate-password",
    )
    assert added.returncode == 0, added.stderr
    listed = run("staff", "list")
    assert listed.returncode == 0 and "…" not in listed.stdout
    assert "security.officer.on.duty" in listed.stdout and display in listed.stdout
