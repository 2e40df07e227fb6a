"""`certsvc import applicants`: encodings, row errors, derived facts, re-runs and resumption,
flat memory."""

from __future__ import annotations

import csv
import random
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import func, select

from certify.applicant_import import import_applicants
from certify.models import Applicant
from certsvc.cli import main
from test_vault.conftest import VaultEnv
from vault import synthetic

HEADER = ["email", "name", "id_number", "phone", "address", "note"]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def person(rng: random.Random) -> list[str]:
    return [
        synthetic.email(rng),
        synthetic.name(rng),
        synthetic.id_number(rng),
        synthetic.phone(rng),
        synthetic.address(rng),
        "x",
    ]


def applicants(env: VaultEnv) -> int:
    with env.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(Applicant)) or 0)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030"])
def test_cli_import_reports_bad_rows_and_is_safe_to_rerun(
    vault_env: VaultEnv, tmp_path: Path, encoding: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = [
        "a@example.com",
        "欧阳·小明",
        "11010519491231002x",
        "138 0013 8000",
        "河南省郑州市金水区1号",
        "",
    ]
    bad = ["not-an-email", "张三", "110105194912310021", "", "", ""]
    rows = [good, bad, ["", "王五", synthetic.id_number(random.Random(2)), "", "", ""], good]
    path = write_csv(tmp_path / "applicants.csv", rows, encoding)
    with pytest.raises(SystemExit) as exited:
        main(["import", "applicants", str(path)])
    assert exited.value.code == 3
    output = capsys.readouterr().err
    assert "4 rows: 2 imported, 1 already on file, 1 invalid" in " ".join(output.split())
    with (tmp_path / "applicants.csv.errors.csv").open(encoding="utf-8-sig") as report:
        errors = list(csv.reader(report))
    assert errors == [
        ["row", "field", "reason"],
        ["3", "email", "must look like name@domain"],
        ["3", "id_number", "check character does not match"],
        ["5", "id_number", "an applicant with this ID number is already on file"],
    ]
    with vault_env.sessions() as db:
        first = db.scalars(select(Applicant).order_by(Applicant.id)).first()
        assert first is not None
        assert str(first.birth_date) == "1949-12-31"
        assert first.id_number_token.startswith("tk_id_") and first.phone_token
    with pytest.raises(SystemExit):
        main(["import", "applicants", str(path)])
    assert applicants(vault_env) == 2


def test_header_must_name_every_column(vault_env: VaultEnv, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,id_number\n张三,11010519491231002X\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["import", "applicants", str(path)])
    assert exited.value.code == 1


def test_crash_mid_import_resumes_without_losing_or_duplicating(
    vault_env: VaultEnv, tmp_path: Path
) -> None:
    rng = random.Random(5)
    path = write_csv(tmp_path / "big.csv", [person(rng) for _ in range(120)])

    def crash(done: int, _total: int) -> None:
        if done >= 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_applicants(
            vault_env.sessions, vault_env.vault, path, "cli:test", batch_size=25, progress=crash
        )
    assert applicants(vault_env) == 50
    report = import_applicants(vault_env.sessions, vault_env.vault, path, "cli:test", batch_size=25)
    assert (report.resumed_after, report.rows, report.imported) == (50, 120, 120)
    assert applicants(vault_env) == 120


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_memory_stays_flat_whatever_the_file_size(vault_env: VaultEnv, tmp_path: Path) -> None:
    """The peak for a file four times as large is about the same: it is the batch, not the
    file, that memory holds."""
    rng = random.Random(9)
    peaks = []
    for rows in (1500, 6000):
        path = write_csv(tmp_path / f"{rows}.csv", [person(rng) for _ in range(rows)])
        tracemalloc.start()
        try:
            report = import_applicants(
                vault_env.sessions, vault_env.vault, path, "cli:test", batch_size=250
            )
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert report.imported == rows
    assert peaks[1] < peaks[0] * 1.5, peaks


def test_import_refuses_a_planted_error_file_link(
    vault_env: VaultEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("kept")
    source = tmp_path / "applicants.csv"
    source.write_text("name,id_number,phone,email,address\n张三,110105194912310021,,,\n")
    (tmp_path / "applicants.csv.errors.csv").symlink_to(victim)
    with pytest.raises(SystemExit) as exited:
        main(["import", "applicants", str(source)])
    assert exited.value.code == 1
    assert "errors: " in capsys.readouterr().err
    assert victim.read_text() == "kept"
