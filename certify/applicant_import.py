"""Bulk intake from a CSV file: validate each row, tokenise its identifiers, store the
applicant with the facts its ID number states.

Streamed: one pass hashes the file and settles its encoding, a second checks that it reads as
CSV (header, field sizes) so that a malformed file is refused before any row is stored, a third
reads it row by row: memory stays flat whatever the size. Each batch (applicants, vault entries,
row errors and the resume point) is one transaction: a crash loses no committed row, and a
re-run of the same file (recognised by its SHA-256) resumes after the last committed batch. The
ID number's convergent token makes a person already on file a reported duplicate, never a second
applicant.

A job of many units (`common.unit_of_work`): it takes a sessionmaker, never a request's session,
and commits batch by batch by design; each batch is atomic.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append
from certify.models import Applicant, ApplicantImport, ApplicantImportError
from common.dbtypes import utcnow
from common.errors import InvalidInput
from common.files import open_for_writing, refuse_symlink
from common.unit_of_work import unit_of_work
from vault.errors import InvalidValue
from vault.gb11643 import ResidentId
from vault.kinds import Kind
from vault.store import Vault
from vault.validation import normalise, resident_id

COLUMNS = ("name", "id_number", "phone", "email", "address")
REQUIRED_VALUES = ("name", "id_number")
OPTIONAL_KINDS = {"phone": Kind.PHONE, "email": Kind.EMAIL, "address": Kind.ADDRESS}
ENCODINGS = ("utf-8", "gb18030")
READ_CHUNK = 1 << 16
DUPLICATE = "an applicant with this ID number is already on file"

Progress = Callable[[int, int], None]
# (line number, row by lower-case column, "more" or "fewer" fields than the header, or None)
Record = tuple[int, dict[str, str], str | None]


@dataclass(frozen=True)
class FileFacts:
    sha256: str
    encoding: str  # a Python codec name: utf-8-sig or gb18030
    lines: int


@dataclass(frozen=True)
class ImportReport:
    import_id: int
    rows: int
    imported: int
    duplicates: int
    invalid: int
    resumed_after: int
    errors_file: Path


@dataclass
class _Row:
    line: int
    person: ResidentId
    name: str
    optional: dict[str, str | None]


def inspect_file(path: Path, encoding: str | None = None) -> FileFacts:
    """SHA-256, encoding (UTF-8 with or without BOM, else GB18030) and line count, in one
    streamed pass."""
    digest = hashlib.sha256()
    candidates = [encoding] if encoding else list(ENCODINGS)
    decoders = {name: codecs.getincrementaldecoder(name)() for name in candidates}
    lines = 0
    with path.open("rb") as stream:
        while chunk := stream.read(READ_CHUNK):
            digest.update(chunk)
            lines += chunk.count(b"\n")
            for name in list(decoders):
                try:
                    decoders[name].decode(chunk)
                except UnicodeDecodeError:
                    del decoders[name]
    for name, decoder in list(decoders.items()):
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            del decoders[name]
    if not decoders:
        wanted = encoding or " or ".join(ENCODINGS)
        raise InvalidInput(f"file: not valid {wanted} text")
    chosen = next(iter(decoders))
    # utf-8-sig drops a BOM when there is one and reads plain UTF-8 alike.
    return FileFacts(digest.hexdigest(), "utf-8-sig" if chosen == "utf-8" else chosen, lines)


def _records(path: Path, encoding: str) -> Iterator[Record]:
    """Each data row, skipping blank ones; checks the header. A row the csv module cannot read
    (a field over its size limit) refuses the file, naming the line."""
    with path.open(encoding=encoding, newline="") as text:
        if text.read(1) != "\ufeff":  # utf-8-sig drops a BOM; GB18030 reads it as a character
            text.seek(0)
        reader = csv.reader(text)
        try:
            header = next(reader, None)
            if header is None:
                raise InvalidInput("file: empty, a header row is needed")
            names = [name.strip().lstrip("\ufeff").lower() for name in header]
            missing = [column for column in COLUMNS if column not in names]
            if missing:
                raise InvalidInput(f"header: missing column(s) {', '.join(missing)}")
            twice = [column for column in COLUMNS if names.count(column) > 1]
            if twice:
                raise InvalidInput(f"header: column(s) named more than once: {', '.join(twice)}")
            for fields in reader:
                if not any(field.strip() for field in fields):
                    continue
                shape = None
                if len(fields) != len(names):
                    shape = "more" if len(fields) > len(names) else "fewer"
                yield reader.line_num, dict(zip(names, fields, strict=False)), shape
        except csv.Error as exc:
            reason = (
                f"a field is longer than {csv.field_size_limit()} characters"
                if "field limit" in str(exc)
                else "not readable as CSV"
            )
            raise InvalidInput(f"line {reader.line_num}: {reason}") from None


def _check(
    line: int, record: dict[str, str], shape: str | None, today: date
) -> _Row | list[tuple[str, str]]:
    """The row's normalised values, or its errors as (field, reason)."""
    errors: list[tuple[str, str]] = []
    if shape is not None:
        errors.append(("row", f"has {shape} fields than the header"))
    person: ResidentId | None = None
    name = ""
    optional: dict[str, str | None] = {}
    for column in COLUMNS:
        raw = (record.get(column) or "").strip()
        try:
            if not raw:
                if column in REQUIRED_VALUES:
                    raise InvalidValue(column, "is empty")
                optional[column] = None
            elif column == "id_number":
                person = resident_id(raw, column, today)
            elif column == "name":
                name = normalise(Kind.NAME, raw, column)
            else:
                optional[column] = normalise(OPTIONAL_KINDS[column], raw, column)
        except InvalidValue as exc:
            errors.append((exc.field, exc.reason))
    if errors or person is None:
        return errors
    return _Row(line, person, name, optional)


def import_applicants(
    sessions: sessionmaker[Session],
    vault: Vault,
    path: Path,
    actor: str,
    errors_file: Path | None = None,
    batch_size: int = 500,
    encoding: str | None = None,
    progress: Progress = lambda _done, _total: None,
) -> ImportReport:
    """Import (or resume importing) `path`; writes the row errors to `errors_file`
    (default `<file>.errors.csv`) as `row,field,reason`."""
    facts = inspect_file(path, encoding)
    for _record in _records(path, facts.encoding):
        pass  # the whole file must read as CSV before a row of it is stored
    errors_file = errors_file or path.with_name(path.name + ".errors.csv")
    refuse_symlink(errors_file, "errors")
    with unit_of_work(sessions) as db:
        job = db.scalar(select(ApplicantImport).where(ApplicantImport.file_sha256 == facts.sha256))
        if job is None:
            job = ApplicantImport(
                file_sha256=facts.sha256,
                file_name=path.name[:255],
                encoding=facts.encoding,
                rows_done=0,
                imported=0,
                duplicates=0,
                invalid=0,
                started_by=actor,
            )
            db.add(job)
            db.flush()
        import_id, resumed_after, finished = job.id, job.rows_done, job.finished_at is not None
    total = max(facts.lines - 1, 0)
    today = date.today()
    if not finished:
        batch: list[Record] = []
        done = resumed_after
        progress(done, total)
        for index, record in enumerate(_records(path, facts.encoding), start=1):
            if index <= resumed_after:
                continue
            batch.append(record)
            if len(batch) >= batch_size:
                _commit_batch(sessions, vault, import_id, batch, index, today)
                done += len(batch)
                progress(done, max(total, done))
                batch = []
        if batch:
            _commit_batch(sessions, vault, import_id, batch, index, today)
            done += len(batch)
        _finish(sessions, import_id, actor)
        progress(done, done)
    return _report(sessions, import_id, resumed_after, errors_file)


def _commit_batch(
    sessions: sessionmaker[Session],
    vault: Vault,
    import_id: int,
    batch: list[Record],
    rows_done: int,
    today: date,
) -> None:
    good: list[_Row] = []
    errors: list[dict[str, object]] = []
    for line, record, shape in batch:
        checked = _check(line, record, shape, today)
        if isinstance(checked, _Row):
            good.append(checked)
        else:
            errors.extend(
                {"import_id": import_id, "row": line, "field": f[:32], "reason": r[:255]}
                for f, r in checked
            )
    invalid = len({e["row"] for e in errors})
    with unit_of_work(sessions) as db:
        id_tokens = vault.tokenise(db, Kind.ID_NUMBER, [row.person.number for row in good])
        wanted = [t.token for t in id_tokens]
        on_file = set(
            db.scalars(
                select(Applicant.id_number_token).where(Applicant.id_number_token.in_(wanted))
            )
        )
        fresh: list[tuple[_Row, str]] = []
        duplicates = 0
        for row, tokenised in zip(good, id_tokens, strict=True):
            if tokenised.token in on_file:
                duplicates += 1
                errors.append(
                    {
                        "import_id": import_id,
                        "row": row.line,
                        "field": "id_number",
                        "reason": DUPLICATE,
                    }
                )
                continue
            on_file.add(tokenised.token)
            fresh.append((row, tokenised.token))
        columns = _tokenise_columns(db, vault, [row for row, _ in fresh])
        now = utcnow()
        if fresh:
            db.execute(
                insert(Applicant),
                [
                    {
                        "id_number_token": token,
                        "name_token": columns["name"][i],
                        "phone_token": columns["phone"][i],
                        "email_token": columns["email"][i],
                        "address_token": columns["address"][i],
                        "birth_date": row.person.birth_date,
                        "import_id": import_id,
                        "created_at": now,
                    }
                    for i, (row, token) in enumerate(fresh)
                ],
            )
        if errors:
            db.execute(insert(ApplicantImportError), errors)
        db.execute(
            update(ApplicantImport)
            .where(ApplicantImport.id == import_id)
            .values(
                rows_done=rows_done,
                imported=ApplicantImport.imported + len(fresh),
                duplicates=ApplicantImport.duplicates + duplicates,
                invalid=ApplicantImport.invalid + invalid,
            )
        )


def _tokenise_columns(db: Session, vault: Vault, rows: list[_Row]) -> dict[str, list[str | None]]:
    """Tokens per column, in row order; None where a row left an optional column empty."""
    columns: dict[str, list[str | None]] = {}
    names = vault.tokenise(db, Kind.NAME, [row.name for row in rows])
    columns["name"] = [t.token for t in names]
    for column, kind in OPTIONAL_KINDS.items():
        present = [(i, row.optional[column]) for i, row in enumerate(rows)]
        values = [value for _, value in present if value is not None]
        tokens = iter(vault.tokenise(db, kind, values)) if values else iter(())
        columns[column] = [None if value is None else next(tokens).token for _, value in present]
    return columns


def _finish(sessions: sessionmaker[Session], import_id: int, actor: str) -> None:
    with unit_of_work(sessions) as db:
        job = db.get_one(ApplicantImport, import_id)
        job.finished_at = utcnow()
        append(
            db,
            AuditEvent(
                actor=actor[:64],
                role="operator",
                action="certify.import_applicants",
                object=f"applicant-import-{import_id}",
                outcome="ok",
                reason=f"file sha256 {job.file_sha256}",
                details={
                    "imported": job.imported,
                    "duplicates": job.duplicates,
                    "invalid": job.invalid,
                },
            ),
        )


def _report(
    sessions: sessionmaker[Session], import_id: int, resumed_after: int, errors_file: Path
) -> ImportReport:
    """Write the error report from the database (streamed), then sum up."""
    with sessions() as db:
        job = db.get_one(ApplicantImport, import_id)
        with open_for_writing(errors_file, "errors", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["row", "field", "reason"])
            rows = db.execute(
                select(
                    ApplicantImportError.row,
                    ApplicantImportError.field,
                    ApplicantImportError.reason,
                )
                .where(ApplicantImportError.import_id == import_id)
                .order_by(ApplicantImportError.row, ApplicantImportError.field)
                .execution_options(yield_per=1000)
            )
            for row in rows:
                writer.writerow(row)
        return ImportReport(
            import_id=import_id,
            rows=job.rows_done,
            imported=job.imported,
            duplicates=job.duplicates,
            invalid=job.invalid,
            resumed_after=resumed_after,
            errors_file=errors_file,
        )
