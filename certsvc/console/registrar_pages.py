"""The registrar's intake pages. One applicant at a time: the identifiers are checked by the
vault's own rules (every bad field named with its reason, no value ever sent back into the
page), tokenised as `/api/v1/vault/tokenise` does, then the case is filed as
`/api/v1/certify/applications` files it, in one unit: a refusal stores nothing. Many at a time:
a CSV upload run by `certsvc import applicants`'s own function, with a progress page and the
row error report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Row, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from certify.cases import create_application, get_batch
from certify.intake import ApplicantTokens, register_applicant
from certify.models import ApplicantImportError, Batch
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.console import import_jobs, web
from certsvc.console.actions import act, draw, number
from certsvc.console.models import ConsoleSession
from certsvc.routes.certify_common import china_today
from certsvc.routes.vault import tokenise_values
from common.errors import CertsvcError, InvalidInput
from vault.errors import InvalidValue
from vault.kinds import Kind
from vault.validation import normalise
from verify.codes import QUALIFICATIONS, SUBJECTS

router = APIRouter(prefix="/console", include_in_schema=False)
REGISTRAR = (Role.REGISTRAR,)
# The personal fields, in the form's order: (field, kind, required).
PERSONAL = (
    ("name", Kind.NAME, True),
    ("id_number", Kind.ID_NUMBER, True),
    ("phone", Kind.PHONE, False),
    ("email", Kind.EMAIL, False),
    ("address", Kind.ADDRESS, False),
)
INTAKE_FIELDS = {
    "batch_id": 12,
    "qualification": 2,
    "subject": 2,
    **{name: 400 for name, _, _ in PERSONAL},
}
UPLOAD_MAX = 50 * 1024 * 1024
ERRORS_SHOWN = 500
# A refreshing progress page: how often it reloads while the import runs.
REFRESH_SECONDS = 1


@router.get("/intake")
def intake_page(request: Request) -> Response:
    return draw(request, REGISTRAR, partial(_intake, {}, {}, None))


def _intake(
    kept: Mapping[str, str],
    field_errors: Mapping[str, str],
    error: str | None,
    db: Session,
    row: ConsoleSession,
    account: StaffAccount,
) -> Response:
    batches = db.scalars(select(Batch).order_by(Batch.id.desc())).all()
    return web.page(
        "registrar_intake.html",
        422 if error or field_errors else 200,
        account=account,
        csrf=row.csrf,
        batches=batches,
        qualifications=QUALIFICATIONS,
        subjects=SUBJECTS,
        personal=PERSONAL,
        kept=kept,
        field_errors=field_errors,
        error=error,
    )


def _field_errors(form: Mapping[str, str]) -> dict[str, str]:
    """Each personal field's refusal by the vault's rules (reason only, never the value)."""
    errors: dict[str, str] = {}
    for name, kind, required in PERSONAL:
        value = form.get(name, "").strip()
        if not value:
            if required:
                errors[name] = "is empty"
            continue
        try:
            normalise(kind, value, name)
        except InvalidValue as exc:
            errors[name] = exc.reason
    return errors


@router.post("/intake")
async def post_intake(request: Request) -> Response:
    form = await web.read_form(request, INTAKE_FIELDS)
    # What may be shown again: the case's codes, never a personal value.
    kept = {k: form.get(k, "") for k in ("batch_id", "qualification", "subject")}
    field_errors = await run_in_threadpool(_field_errors, form)

    def file_case(db: Session, account: StaffAccount) -> int:
        if field_errors:
            raise InvalidInput("; ".join(f"{f}: {r}" for f, r in field_errors.items()))
        batch_id = number(form, "batch_id")
        get_batch(db, batch_id)
        actor = actor_of(account)
        given = [(k, form[n].strip(), n) for n, k, _ in PERSONAL if form.get(n, "").strip()]
        tokens = dict(
            zip(
                (field for _, _, field in given),
                (t.token for t in tokenise_values(db, state.vault(request), actor, given)),
                strict=True,
            )
        )
        applicant = ApplicantTokens(
            id_number_token=tokens["id_number"],
            name_token=tokens["name"],
            phone_token=tokens.get("phone"),
            email_token=tokens.get("email"),
            address_token=tokens.get("address"),
        )
        applicant_id = register_applicant(db, actor, state.vault(request), applicant)
        application = create_application(
            db,
            actor,
            batch_id,
            applicant_id,
            form.get("qualification", ""),
            form.get("subject", ""),
            filed_on=china_today(),
        )
        return application.id

    result = await run_in_threadpool(act, request, form, REGISTRAR, file_case)
    if isinstance(result, Response):
        return result
    if isinstance(result, CertsvcError):
        error = None if field_errors else str(result)
        redraw = partial(_intake, kept, field_errors, error)
        return await run_in_threadpool(draw, request, REGISTRAR, redraw)
    return web.redirect(f"/console/cases/{result}")


@router.get("/import")
def import_page(request: Request) -> Response:
    return draw(request, REGISTRAR, partial(_import, None))


def _import(error: str | None, db: Session, row: ConsoleSession, account: StaffAccount) -> Response:
    return web.page(
        "registrar_import.html", 422 if error else 200, account=account, csrf=row.csrf, error=error
    )


@router.post("/import")
async def post_import(request: Request) -> Response:
    """The upload (multipart: the CSRF token and one file) is written owner-only, then
    imported in the background; the answer is the job's progress page."""
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > UPLOAD_MAX + 64 * 1024:
        # Refused before the body is read: Starlette would spool any size to a temporary file.
        mb = UPLOAD_MAX // (1024 * 1024)
        error = f"file: at most {mb} MB, sent with its length"
        return await run_in_threadpool(draw, request, REGISTRAR, partial(_import, error))
    allowed = await run_in_threadpool(draw, request, REGISTRAR, lambda *_: Response(None))
    if allowed.status_code != 200:  # signed out or another role: nothing is read or written
        return allowed
    folder = import_jobs.upload_dir(state.settings(request).resolved_home)
    async with request.form(max_files=1, max_fields=2, max_part_size=1024) as form:
        csrf, upload = form.get("csrf"), form.get("file")
        token = {"csrf": csrf if isinstance(csrf, str) else ""}
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await _import_refused(request, token, "file: choose a CSV file")
        path = import_jobs.private_file(folder)
        size = 0
        with path.open("wb") as out:
            while chunk := await upload.read(1 << 16):
                size += len(chunk)
                if size > UPLOAD_MAX:
                    break
                out.write(chunk)
        name = upload.filename[-100:]
    if size > UPLOAD_MAX or size == 0:
        path.unlink(missing_ok=True)
        reason = "is empty" if size == 0 else f"larger than {UPLOAD_MAX // (1024 * 1024)} MB"
        return await _import_refused(request, token, f"file: {reason}")

    def begin(db: Session, account: StaffAccount) -> str:
        return import_jobs.start(
            state.writer_sessions(request),
            state.vault(request),
            path,
            name,
            account.username,
            account.id,
        )

    result: object = None
    try:
        result = await run_in_threadpool(act, request, token, REGISTRAR, begin)
    finally:
        if not isinstance(result, str):  # not started: the upload goes at once
            path.unlink(missing_ok=True)
    if isinstance(result, str):
        return web.redirect(f"/console/import/{result}")
    if isinstance(result, Response):
        return result
    return await run_in_threadpool(draw, request, REGISTRAR, partial(_import, str(result)))


async def _import_refused(request: Request, form: Mapping[str, str], error: str) -> Response:
    """Refused before importing; the CSRF token is still checked first."""
    result = await run_in_threadpool(act, request, form, REGISTRAR, lambda db, account: None)
    if isinstance(result, Response):
        return result
    return await run_in_threadpool(draw, request, REGISTRAR, partial(_import, error))


@router.get("/import/{key}")
def import_progress(request: Request, key: str) -> Response:
    return draw(request, REGISTRAR, partial(_progress, key))


def _progress(key: str, db: Session, row: ConsoleSession, account: StaffAccount) -> Response:
    job = import_jobs.find(key, account.id)
    if job is None:
        return web.page("desk_missing.html", 404, account=account, csrf=row.csrf)
    with job.lock:
        done, total, report, error, finished = (
            job.done,
            job.total,
            job.report,
            job.error,
            job.finished,
        )
    errors: Sequence[Row[int, str, str]] = []
    if report is not None:
        errors = db.execute(
            select(
                ApplicantImportError.row, ApplicantImportError.field, ApplicantImportError.reason
            )
            .where(ApplicantImportError.import_id == report.import_id)
            .order_by(ApplicantImportError.row, ApplicantImportError.field)
            .limit(ERRORS_SHOWN)
        ).all()
    return web.page(
        "registrar_import_job.html",
        account=account,
        csrf=row.csrf,
        job=job,
        done=done,
        total=max(total, done),
        report=report,
        error=error,
        finished=finished,
        errors=errors,
        shown_max=ERRORS_SHOWN,
        refresh=None if finished else REFRESH_SECONDS,
    )
