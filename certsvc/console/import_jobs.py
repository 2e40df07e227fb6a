"""CSV imports started from the console: the uploaded file is run through the same
`import_applicants` as `certsvc import applicants`, in a background thread, so the page that
shows its progress can refresh itself (no script) while it runs.

The upload holds raw personal values: it is written owner-only under `CERTSVC_HOME` and
deleted as soon as the import ends, whatever the outcome; the row error report the page shows
is read from the database (row, field, reason: never a value). Jobs are kept in this process
only: on a service with several workers, the progress page answers on the worker that took
the upload (a restart loses the progress page, not the import: re-uploading the file resumes
it after its last committed batch)."""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from certify.applicant_import import ImportReport, import_applicants
from common.errors import CertsvcError
from vault.store import Vault

BATCH_ROWS = 200
JOBS_KEPT = 200


@dataclass
class ImportJob:
    owner: int  # the staff account that uploaded it: only they see its page
    file_name: str
    done: int = 0
    total: int = 0
    report: ImportReport | None = None
    error: str | None = None
    finished: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_jobs: dict[str, ImportJob] = {}
_jobs_lock = threading.Lock()


def upload_dir(home: Path) -> Path:
    folder = home / "console-imports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def start(
    sessions: sessionmaker[Session],
    vault: Vault,
    upload: Path,
    file_name: str,
    actor: str,
    owner: int,
) -> str:
    """Start importing `upload` (deleted when done); the job's key for its progress page."""
    key = secrets.token_urlsafe(18)
    job = ImportJob(owner=owner, file_name=file_name)
    with _jobs_lock:
        if len(_jobs) >= JOBS_KEPT:
            for old in [k for k, j in _jobs.items() if j.finished][: JOBS_KEPT // 2]:
                del _jobs[old]
        _jobs[key] = job

    def progress(done: int, total: int) -> None:
        with job.lock:
            job.done, job.total = done, total

    def run() -> None:
        errors = upload.with_name(upload.name + ".errors.csv")
        try:
            report = import_applicants(
                sessions, vault, upload, actor, errors, batch_size=BATCH_ROWS, progress=progress
            )
            with job.lock:
                job.report = report
        except CertsvcError as exc:
            with job.lock:
                job.error = str(exc)
        except Exception:
            with job.lock:
                job.error = "the import failed: see the service log"
            raise
        finally:
            for path in (upload, errors):
                path.unlink(missing_ok=True)
            with job.lock:
                job.finished = True

    threading.Thread(target=run, name=f"console-import-{key[:6]}", daemon=True).start()
    return key


def find(key: str, owner: int) -> ImportJob | None:
    with _jobs_lock:
        job = _jobs.get(key)
    return job if job is not None and job.owner == owner else None


def private_file(folder: Path) -> Path:
    """A new owner-only file for an upload."""
    path = folder / f"{secrets.token_hex(16)}.csv"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path
