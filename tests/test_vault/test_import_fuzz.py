"""`import_applicants` fed any file: well-formed files with bad rows, odd headers, quotes,
NULs, BOMs, huge fields, UTF-8 or GB18030, and plain random bytes. It imports the valid rows and
reports the others by row number and column, or refuses the whole file with its own error; it
never crashes with another exception, never stores half an applicant, and neither its error
report nor its refusal contains a value from the file.

One database per test (the vault's key token is provisioned once, not per example); each example
starts with no import and no applicant (vault entries stay: tokens are convergent). Small batch
sizes put duplicates of one file in different batches, so both ways of finding them (in the
batch, on file) are exercised. Both backends, modest example counts."""

from __future__ import annotations

import csv
import io
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from certify import applicant_import
from certify.applicant_import import COLUMNS, DUPLICATE, ImportReport, import_applicants
from certify.models import Applicant, ApplicantImport, ApplicantImportError
from common.errors import InvalidInput
from test_vault.conftest import VaultEnv
from vault import gb11643, synthetic, validation
from vault.errors import InvalidValue
from vault.kinds import TOKEN_PREFIX, Kind
from vault.models import VaultEntry
from vault.validation import normalise

TODAY = date.today()
KINDS = {column: Kind(column) for column in COLUMNS}
FIELD_LIMIT = csv.field_size_limit()
RULE_WORDING = "".join(
    Path(m.__file__ or "").read_text() for m in (validation, gb11643, applicant_import)
)
# A few numbers that recur, so a file holds the same person twice now and then.
POOL = [synthetic.id_number(random.Random(seed)) for seed in range(4)]
FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---- cells ---------------------------------------------------------------------------------

# Seeded generators: hypothesis's own randoms keep to a few small values.
RNG = st.integers(0, 2**64).map(random.Random)
FRESH_ID_NUMBERS = st.builds(
    lambda rng, birth: synthetic.id_number(rng, birth=birth),
    RNG,
    st.dates(gb11643.EARLIEST_BIRTH, TODAY),
)
ID_NUMBERS = st.sampled_from(["fresh", "fresh", "spaced", "pool"]).flatmap(
    lambda how: {
        "fresh": FRESH_ID_NUMBERS,
        "spaced": FRESH_ID_NUMBERS.map(lambda n: f" {n[:6]} {n[6:14]} {n[14:].lower()} "),
        "pool": st.sampled_from(POOL),
    }[how]
)
VALID_CELLS: dict[str, st.SearchStrategy[str]] = {
    "name": st.one_of(RNG.map(synthetic.name), st.sampled_from(["John Smith", "阿卜杜·买买提"])),
    "id_number": ID_NUMBERS,
    "phone": st.one_of(st.just(""), RNG.map(synthetic.phone).map(lambda p: f"+86 {p}")),
    "email": st.one_of(st.just(""), RNG.map(synthetic.email), st.emails()),
    "address": st.one_of(st.just(""), RNG.map(synthetic.address)),
}
JUNK = st.one_of(
    st.just(""),
    st.text(max_size=20),
    st.text('",\r\n\x00 \ufeff\t;\\张1X', max_size=12),
    st.sampled_from(COLUMNS).flatmap(lambda c: VALID_CELLS[c]),  # a value in the wrong column
    st.sampled_from(POOL).map(lambda n: n[:17] + ("0" if n[17] != "0" else "1")),  # bad check
    st.builds(
        lambda piece, times: piece * times,
        st.sampled_from(["a", "张", "1", '"', "\x00"]),
        st.sampled_from([1, 7, 300, 4_000, FIELD_LIMIT, FIELD_LIMIT + 1]),
    ),
)
EXTRA_COLUMNS = ["note", "备注", "", "__shape__", "row", "序号"]
SECOND_COPIES = ["Name", " ID_NUMBER"]
ENCODINGS = ["utf-8", "utf-8-sig", "gb18030", "gb18030 with BOM"]


def encode(text: str, encoding: str) -> bytes:
    if encoding == "gb18030 with BOM":
        return ("\ufeff" + text).encode("gb18030")
    return text.encode(encoding)


@dataclass(frozen=True)
class CsvFile:
    header: list[str]
    rows: list[list[str]]
    encoding: str
    terminator: str
    quote_all: bool

    def text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(
            out,
            lineterminator=self.terminator,
            quoting=csv.QUOTE_ALL if self.quote_all else csv.QUOTE_MINIMAL,
        )
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue()


@st.composite
def csv_files(draw: st.DrawFn) -> CsvFile:
    """A well-formed CSV file: the five columns in any order and case, maybe one missing,
    maybe extra ones (some named like an internal key or a second copy of a column); rows of
    valid values, a few cells swapped for junk, now and then too few or too many fields."""
    header: list[str] = list(draw(st.permutations(COLUMNS)))
    extras = draw(st.lists(st.sampled_from(EXTRA_COLUMNS), max_size=2))
    if draw(st.sampled_from(range(20))) == 19:
        extras.append(draw(st.sampled_from(SECOND_COPIES)))
    for extra in extras:
        header.insert(draw(st.integers(0, len(header))), extra)
    header = [draw(st.sampled_from([c, c.upper(), f" {c} "])) for c in header]
    if draw(st.sampled_from(range(20))) == 19:
        del header[draw(st.integers(0, len(header) - 1))]
    rows = []
    for _ in range(draw(st.sampled_from([3, 0, 1, 2, 4, 5, 6]))):
        names = [c.strip().lower() for c in header]
        row = [draw(VALID_CELLS.get(name, st.text(max_size=8))) for name in names]
        mode = draw(st.sampled_from(["valid", "valid", "junk", "more", "fewer"]))
        if mode == "junk":
            for i in draw(st.sets(st.sampled_from(range(len(row))), min_size=1, max_size=2)):
                row[i] = draw(JUNK)
        elif mode == "more":
            row.append(draw(JUNK))
        elif mode == "fewer":
            del row[draw(st.sampled_from(range(len(row)))) :]
        rows.append(row)
    return CsvFile(
        header=header,
        rows=rows,
        encoding=draw(st.sampled_from(ENCODINGS)),
        terminator=draw(st.sampled_from(["\r\n", "\n", "\r"])),
        quote_all=draw(st.booleans()),
    )


# ---- the model ------------------------------------------------------------------------------


@dataclass
class Expected:
    refused: bool
    rows: int = 0
    errors: dict[int, set[str]] | None = None  # line -> fields at fault
    valid: list[tuple[int, dict[str, str | None]]] | None = None  # line -> normalised values


def expected(file: CsvFile) -> Expected:
    """What the import must do with the file as a CSV reader splits it (a raw CR in a cell is a
    line break when the writer's terminator is LF alone): header checks, blank rows skipped,
    a row's line number as the reader counts it, each column checked by its kind's rules."""
    reader = csv.reader(io.StringIO(file.text(), newline=""))
    try:
        header = next(reader)
        rows = [(reader.line_num, fields) for fields in reader]
    except csv.Error:  # a field over the csv module's size limit
        return Expected(refused=True)
    names = [c.strip().lower() for c in header]
    if any(column not in names for column in COLUMNS):
        return Expected(refused=True)
    if any(names.count(column) > 1 for column in COLUMNS):
        return Expected(refused=True)  # which copy would count? the file is ambiguous
    errors: dict[int, set[str]] = {}
    valid: list[tuple[int, dict[str, str | None]]] = []
    count = 0
    for line, fields in rows:
        if not any(cell.strip() for cell in fields):
            continue
        count += 1
        faults: set[str] = set() if len(fields) == len(names) else {"row"}
        values: dict[str, str | None] = {}
        for column in COLUMNS:
            index = names.index(column)
            raw = fields[index].strip() if index < len(fields) else ""
            if not raw:
                values[column] = None
                if column in ("name", "id_number"):
                    faults.add(column)
                continue
            try:
                values[column] = normalise(KINDS[column], raw, column, TODAY)
            except InvalidValue:
                faults.add(column)
        if faults:
            errors[line] = faults
        else:
            valid.append((line, values))
    return Expected(refused=False, rows=count, errors=errors, valid=valid)


# ---- checks every outcome must pass ---------------------------------------------------------


def cells_of(data: bytes) -> list[str]:
    """Every cell of the file as a reader would see it (best effort, for the echo check)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        cells: list[str] = []
        reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
        try:
            for row in reader:
                cells.extend(row)
        except csv.Error:
            pass
        return cells
    return []


def assert_no_echo(message: str, cells: list[str]) -> None:
    for cell in {c.strip() for c in cells}:
        if len(cell) >= 3 and cell not in RULE_WORDING:
            assert cell not in message, "a value from the file is in a report or error"


def assert_refusal_is_clean(exc: InvalidInput, cells: list[str]) -> None:
    message = str(exc)
    assert message.split(":")[0] in ("file", "header") or message.startswith("line "), message
    assert "\n" not in message
    assert_no_echo(message, cells)


def read_report(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as report:
        lines = list(csv.reader(report))
    assert lines[0] == ["row", "field", "reason"]
    return lines[1:]


def assert_whole_applicants(env: VaultEnv, import_id: int, imported: int) -> None:
    """Every applicant of this import has its required tokens, each naming a vault entry of
    the column's kind; no row is half there."""
    with env.sessions() as db:
        applicants = db.scalars(select(Applicant).where(Applicant.import_id == import_id)).all()
        assert len(applicants) == imported
        tokens = {
            token
            for a in applicants
            for token in (
                a.id_number_token,
                a.name_token,
                a.phone_token,
                a.email_token,
                a.address_token,
            )
            if token is not None
        }
        kinds = {
            token: kind
            for token, kind in db.execute(
                select(VaultEntry.token, VaultEntry.kind).where(VaultEntry.token.in_(tokens))
            )
        }
        for a in applicants:
            assert a.id_number_token and a.name_token
            assert a.birth_date <= TODAY
            for column in COLUMNS:
                token = getattr(a, f"{column}_token")
                if token is not None:
                    assert token.startswith(TOKEN_PREFIX[KINDS[column]])
                    assert kinds[token] == column


def fresh_start(env: VaultEnv) -> None:
    """No import and no imported applicant: examples do not depend on one another."""
    with env.sessions.begin() as db:
        db.execute(delete(ApplicantImportError))
        db.execute(delete(Applicant).where(Applicant.import_id.is_not(None)))
        db.execute(delete(ApplicantImport))


def assert_nothing_recorded(env: VaultEnv) -> None:
    """A refused file is refused before an import job, an applicant or a row error exists."""
    with env.sessions() as db:
        assert db.scalar(select(ApplicantImport.id)) is None
        assert db.scalar(select(Applicant.id)) is None


def assert_same_again(env: VaultEnv, path: Path, report: ImportReport) -> None:
    """Running a finished file again reports it as it was and adds nothing."""
    again = import_applicants(env.sessions, env.vault, path, "cli:fuzz")
    assert (again.import_id, again.rows, again.imported, again.duplicates, again.invalid) == (
        report.import_id,
        report.rows,
        report.imported,
        report.duplicates,
        report.invalid,
    )
    assert_whole_applicants(env, again.import_id, again.imported)


class Files:
    """A fresh path per example: examples share the test's directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.serial = itertools.count()

    def write(self, data: bytes) -> Path:
        path = self.root / f"applicants-{next(self.serial)}.csv"
        path.write_bytes(data)
        return path


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Files]:
    yield Files(tmp_path)


# ---- the properties -------------------------------------------------------------------------

REGRESSIONS = [
    # a header column named like the importer's internal shape marker: its cell was reported
    # as the reason ("has <value> fields than the header") — a value in the error report
    CsvFile(
        [*COLUMNS, "__shape__"],
        [["张三", POOL[0], "", "", "", "secret-cell"]],
        "utf-8",
        "\n",
        False,
    ),
    # a field longer than the csv module's limit crashed the import with _csv.Error
    CsvFile(
        list(COLUMNS), [["张三", POOL[1], "", "", "a" * (FIELD_LIMIT + 1)]], "utf-8", "\n", False
    ),
    # a column named twice: the last copy silently won
    CsvFile([*COLUMNS, "Name"], [["张三", POOL[2], "", "", "", "李四"]], "utf-8", "\n", False),
    # GB18030 with its BOM and a quoted header: the BOM hid the first column's name
    CsvFile(list(COLUMNS), [["张三", POOL[3], "", "", ""]], "gb18030 with BOM", "\r\n", True),
]


@FUZZ
@given(csv_files(), st.sampled_from([500, 1, 2]))
@example(REGRESSIONS[0], 500)
@example(REGRESSIONS[1], 500)
@example(REGRESSIONS[2], 500)
@example(REGRESSIONS[3], 500)
def test_import_does_what_the_rows_say(
    vault_env: VaultEnv, files: Files, file: CsvFile, batch_size: int
) -> None:
    note(repr(file))
    data = encode(file.text(), file.encoding)
    path = files.write(data)
    want = expected(file)
    cells = [*file.header, *itertools.chain.from_iterable(file.rows)]
    valid = want.valid or []
    fresh_start(vault_env)
    try:
        report = import_applicants(
            vault_env.sessions, vault_env.vault, path, "cli:fuzz", batch_size=batch_size
        )
    except InvalidInput as exc:
        event(f"refused: {str(exc).split(':')[0]}")
        assert want.refused, f"refused a good file: {exc}"
        assert_refusal_is_clean(exc, cells)
        assert_nothing_recorded(vault_env)
        return
    assert not want.refused, "imported a file it should have refused"
    event(
        f"imported {min(report.imported, 2)}+, duplicates {min(report.duplicates, 1)}+,"
        f" invalid {min(report.invalid, 2)}+"
    )

    fresh: dict[str, int] = {}
    duplicates: set[int] = set()
    for line, values in valid:
        number = values["id_number"] or ""
        if number in fresh:
            duplicates.add(line)
        else:
            fresh[number] = line
    assert (report.rows, report.imported, report.duplicates, report.invalid) == (
        want.rows,
        len(fresh),
        len(duplicates),
        len(want.errors or {}),
    )
    reported: dict[int, set[str]] = {}
    for row, field, reason in read_report(report.errors_file):
        reported.setdefault(int(row), set()).add(field)
        assert (int(row) in duplicates) == (reason == DUPLICATE)
        assert_no_echo(reason, cells)
    assert reported == {**(want.errors or {}), **{line: {"id_number"} for line in duplicates}}
    assert_whole_applicants(vault_env, report.import_id, report.imported)

    # Each imported row is there whole, with the tokens of its own values.
    with vault_env.sessions() as db:
        for line, values in valid:
            if fresh.get(values["id_number"] or "") != line:
                continue
            tokens = {
                column: vault_env.vault.lookup(db, KINDS[column], [value])[0] if value else None
                for column, value in values.items()
            }
            applicant = db.scalar(
                select(Applicant).where(Applicant.id_number_token == tokens["id_number"])
            )
            assert applicant is not None and applicant.import_id == report.import_id
            for column in COLUMNS:
                assert getattr(applicant, f"{column}_token") == tokens[column]

    assert_same_again(vault_env, path, report)


HEADERS = [
    b"",
    ",".join(COLUMNS).encode() + b"\r\n",
    "\ufeff名字,name,id_number,phone,email,address\n".encode(),
    "\ufeffname,id_number,phone,email,address\n".encode("gb18030"),
]


@FUZZ
@given(
    st.sampled_from(HEADERS),
    st.one_of(
        st.binary(max_size=400),
        st.text(max_size=200).map(lambda t: t.encode("gb18030")),
        st.lists(
            st.one_of(
                st.sampled_from(POOL).map(lambda n: f"张三,{n},,,\n".encode()),
                st.binary(max_size=30),
                st.sampled_from([b'"', b",", b"\x00", b"\r", b"\n", b'""', b"\xef\xbb\xbf"]),
            ),
            max_size=12,
        ).map(b"".join),
    ),
)
def test_import_refuses_or_reports_random_bytes(
    vault_env: VaultEnv, files: Files, header: bytes, body: bytes
) -> None:
    data = header + body
    path = files.write(data)
    cells = cells_of(data)
    fresh_start(vault_env)
    try:
        report = import_applicants(vault_env.sessions, vault_env.vault, path, "cli:fuzz")
    except InvalidInput as exc:
        event(f"refused: {str(exc).split(':')[0]}")
        assert_refusal_is_clean(exc, cells)
        assert_nothing_recorded(vault_env)
        return
    event(
        f"imported {min(report.imported, 2)}+, duplicates {min(report.duplicates, 1)}+,"
        f" invalid {min(report.invalid, 2)}+"
    )
    assert report.imported + report.duplicates + report.invalid == report.rows
    for row, field, reason in read_report(report.errors_file):
        assert int(row) >= 2 and field in (*COLUMNS, "row")
        assert_no_echo(reason, cells)
    assert_whole_applicants(vault_env, report.import_id, report.imported)
    with vault_env.sessions() as db:
        stored = db.scalars(
            select(ApplicantImportError.reason).where(
                ApplicantImportError.import_id == report.import_id
            )
        ).all()
    for reason in stored:
        assert_no_echo(reason, cells)
