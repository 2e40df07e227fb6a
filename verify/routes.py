"""The public routes. No login; every answer comes from the public register and the trust
list. Unknown and malformed ids get the same 404; each client is rate limited; no id or
client address is logged."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import select

from verify.lookup import RegisterLookup
from verify.models import PublicCertificate, PublicNotice
from verify.offline import verify_offline
from verify.page import CONTENT_SECURITY_POLICY, certificate_page, not_found_page
from verify.payload import MAX_QR_TEXT, is_verification_id
from verify.proof import RegisterProof
from verify.published import (
    CURRENT,
    IMMUTABLE,
    REVOCATIONS_PATH,
    TRUST_LIST_PATH,
    WELL_KNOWN,
    cached,
    opened_trust,
    revocation_list_bytes,
    revocation_list_version,
    served_revocation_list,
    served_trust_list,
    trust_list_bytes,
)
from verify.ratelimit import RateLimiter
from verify.register import NUMBER_RE, PICKUP, VALID
from verify.views import public_view

router = APIRouter(tags=["verify"])
HEADERS = {"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
NOT_FOUND = {"detail": "no such certificate"}
_NO_TRUST_LIST = "no trust list published yet that verifies under the pinned root"
_NO_REVOCATIONS = "no such revocation list published"
JSON = "application/json"
_PADDING_ID = "A" * 26
_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "too many requests from this client; see Retry-After"},
}
_LOOKUP_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown or malformed id (one answer for both)"},
    **_LIMITED,
}
_UNPUBLISHED: dict[int | str, dict[str, Any]] = {
    404: {"description": "no trust list published yet"}
}  # looked up for malformed ids, so they cost what unknown ones do
_CONDITIONAL: dict[int | str, dict[str, Any]] = {
    304: {"description": "the client's copy (If-None-Match: its ETag) is current"}
}


class Named(BaseModel):
    code: str
    zh: str
    en: str


class Body(BaseModel):
    code: str
    name: str


class CertificateView(BaseModel):
    """Everything public about a certificate: the allow-list of the design, nothing more."""

    status: str
    number: str
    qualification: Named
    subject: Named
    issuing_body: Body
    issue_date: str
    holder: str
    revoked_on: str | None
    revocation_category: Named | None


class OfflineAnswer(BaseModel):
    signature_valid: bool
    reason: str
    key_valid_at_issue: bool | None
    signed: dict[str, Any] | None
    online: CertificateView | None


def _db(request: Request) -> Any:
    return request.app.state.sessionmaker()


async def rate_limited(request: Request) -> None:
    """429 with Retry-After past the client's budget (called inline: cheaper than a
    dependency on the hottest path)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    address = request.client.host if request.client else "unknown"
    retry = await limiter.hit(address)
    if retry is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many requests",
            headers={"Retry-After": str(max(1, int(retry) + 1)), **HEADERS},
        )


def _lookup(request: Request) -> RegisterLookup:
    """The app's register lookup, made once from its engine."""
    state = request.app.state
    lookup: RegisterLookup | None = getattr(state, "register_lookup", None)
    if lookup is None:
        lookup = state.register_lookup = RegisterLookup(state.engine)
    return lookup


def _proof(request: Request) -> RegisterProof:
    """The app's register proof, made once from its sessions and pinned anchors."""
    state = request.app.state
    proof: RegisterProof | None = getattr(state, "register_proof", None)
    if proof is None:
        proof = state.register_proof = RegisterProof(
            state.sessionmaker,
            state.trust_anchors,
            state.register_watermark,
            getattr(state, "record_register_refusal", None),
        )
    return proof


def view_of(request: Request, verification_id: str) -> dict[str, Any] | None:
    """The public view, or None for an unknown or malformed id, or a row whose proof does not
    hold (all cost one lookup).

    Called on the event loop, not in a worker thread: the read is one primary-key lookup
    (tens of microseconds on SQLite, one round trip on PostgreSQL), cheaper than the hop."""
    wanted = verification_id.upper()
    if not is_verification_id(wanted):
        wanted = _PADDING_ID
    found = _lookup(request).find(wanted)
    row = None if found is None else _proof(request).judge(wanted, found)
    if row is None:
        return None
    return public_view(row, row.body_name or row.body_code)


# The JSON API first: the hottest route, matched before the others (each costs a regex).
@router.get(
    "/api/v1/verify/{verification_id}",
    response_model=CertificateView,
    responses=_LOOKUP_ANSWERS,
)
async def verify_online(verification_id: str, request: Request) -> JSONResponse:
    """The certificate's public fields and its current status."""
    await rate_limited(request)
    view = view_of(request, verification_id)
    if view is None:
        return JSONResponse(NOT_FOUND, status.HTTP_404_NOT_FOUND, headers=HEADERS)
    return JSONResponse(view, headers={**HEADERS, "Cache-Control": CURRENT})


@router.get("/v/{verification_id}", response_class=HTMLResponse, responses=_LOOKUP_ANSWERS)
@router.get(
    "/V/{verification_id}",
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def verification_page(verification_id: str, request: Request) -> HTMLResponse:
    """The page a phone camera opens: green for valid, red for revoked or unknown."""
    await rate_limited(request)
    view = view_of(request, verification_id)
    headers = {**HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    if view is None:
        return HTMLResponse(not_found_page(), status.HTTP_404_NOT_FOUND, headers=headers)
    return HTMLResponse(certificate_page(view), headers={**headers, "Cache-Control": CURRENT})


# The QR's text as a scanner gives it, or wrapped in JSON for clients that only send JSON.
_SCANNED_BODY = {
    "required": True,
    "content": {
        "text/plain": {
            "schema": {"type": "string", "maxLength": MAX_QR_TEXT},
            "example": "HTTPS://VERIFY.EXAMPLE.EDU.CN/V/ABCDEFGHIJKLMNOPQRSTUVWXYZ#TC1:…",
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["qr"],
                "properties": {"qr": {"type": "string", "maxLength": MAX_QR_TEXT}},
            }
        },
    },
}
_NOT_JSON_QR = 'body: JSON must be {"qr": "<the text of the QR code>"}'


@router.post(
    "/api/v1/verify/offline",
    response_model=OfflineAnswer,
    openapi_extra={"requestBody": _SCANNED_BODY},
    responses={
        413: {"description": "longer than any certificate QR"},
        422: {"description": "not UTF-8 text, or JSON without a `qr` string"},
        503: {"description": "no trust list published yet"},
        **_LIMITED,
    },
)
async def verify_scanned(request: Request) -> JSONResponse:
    """Check a scanned QR (the whole text, or a bare `TC1:` payload) against the trust list,
    and report the certificate's current status. The body is the QR's text (`text/plain`), or
    `{"qr": "…"}` sent as `application/json`."""
    await rate_limited(request)
    raw = await request.body()
    if len(raw) > MAX_QR_TEXT + len('{"qr": ""}'):
        return JSONResponse({"detail": "body: longer than any certificate QR"}, 413)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return JSONResponse({"detail": "body: not UTF-8 text"}, 422)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        try:
            wrapped = json.loads(text)
        except ValueError:
            return JSONResponse({"detail": _NOT_JSON_QR}, 422)
        if not isinstance(wrapped, dict) or not isinstance(wrapped.get("qr"), str):
            return JSONResponse({"detail": _NOT_JSON_QR}, 422)
        text = wrapped["qr"]
    if len(text) > MAX_QR_TEXT:
        return JSONResponse({"detail": "body: longer than any certificate QR"}, 413)
    with _db(request) as db:
        trust = opened_trust(_proof(request), db)
        if trust is None:
            return JSONResponse({"detail": _NO_TRUST_LIST}, 503)

        def id_for_number(number: str) -> str | None:
            found: str | None = db.scalar(
                select(PublicCertificate.verification_id).where(PublicCertificate.number == number)
            )
            return found

        verdict = verify_offline(text, trust, id_for_number)
    online = view_of(request, verdict.verification_id) if verdict.verification_id else None
    answer = OfflineAnswer(
        signature_valid=verdict.valid,
        reason=verdict.reason,
        key_valid_at_issue=verdict.key_valid_at_issue,
        signed=(
            {
                "number": verdict.claims.number,
                "body": verdict.claims.body,
                "qualification": verdict.claims.qualification,
                "subject": verdict.claims.subject,
                "holder": verdict.claims.masked_name,
                "issue_date": verdict.claims.issue_date.isoformat(),
            }
            if verdict.valid and verdict.claims
            else None
        ),
        online=CertificateView.model_validate(online) if online and verdict.valid else None,
    )
    return JSONResponse(answer.model_dump(mode="json"), headers=HEADERS)


class NoticeView(BaseModel):
    """A delivery notice as the applicant channel shows it: the certificate number, how and
    where it is collected, and the text; no field about the holder."""

    number: str
    method: str
    place: str | None
    available_from: str | None
    text: str


NO_NOTICE = {"detail": "no delivery notice for this certificate number"}


@router.get(
    "/api/v1/notices/{number}",
    response_model=NoticeView,
    responses={404: {"description": "no notice, or not a certificate number"}, **_LIMITED},
)
async def delivery_notice(number: str, request: Request) -> JSONResponse:
    """The delivery notice of a valid certificate (二(二)3: 证书领取时间和领取方式): where and
    from which day it is collected, or that it was mailed."""
    await rate_limited(request)
    wanted = number if NUMBER_RE.match(number) else "0" * 17
    with _db(request) as db:
        found = db.execute(
            select(PublicNotice)
            .join(PublicCertificate, PublicCertificate.number == PublicNotice.number)
            .where(PublicNotice.number == wanted, PublicCertificate.status == VALID)
        ).scalar_one_or_none()
    if found is None:
        return JSONResponse(NO_NOTICE, status.HTTP_404_NOT_FOUND, headers=HEADERS)
    if found.method == PICKUP and found.available_from is not None:
        day = found.available_from
        text = (
            f"证书编号 {found.number} 的教师资格证书已制作完成，请于{day.year}年{day.month}月"
            f"{day.day}日起到{found.place}领取。"
        )
    else:
        text = f"证书编号 {found.number} 的教师资格证书已通过邮寄方式寄出。"
    view = NoticeView(
        number=found.number,
        method=found.method,
        place=found.place,
        available_from=found.available_from.isoformat() if found.available_from else None,
        text=text,
    )
    return JSONResponse(view.model_dump(), headers={**HEADERS, "Cache-Control": CURRENT})


@router.get(TRUST_LIST_PATH, responses={**_UNPUBLISHED, **_CONDITIONAL})
def trust_list(request: Request) -> Response:
    """Issuing bodies, roots, keys and code tables, signed by the body's root key; served only
    when it verifies under the pinned root."""
    with _db(request) as db:
        signed = served_trust_list(_proof(request), db)
    if signed is None:
        return JSONResponse({"detail": _NO_TRUST_LIST}, 404, headers=HEADERS)
    return cached(request, trust_list_bytes(signed), JSON, CURRENT, HEADERS)


@router.get(REVOCATIONS_PATH, responses={**_UNPUBLISHED, **_CONDITIONAL})
def revocations(request: Request) -> Response:
    """The signed revocation list (versioned; revoked ids as truncated keyed hashes), for
    offline verifiers; served only when its signature holds under the trust list."""
    with _db(request) as db:
        signed = served_revocation_list(_proof(request), db)
        content = None if signed is None else revocation_list_bytes(signed)
    if content is None:
        return JSONResponse({"detail": _NO_REVOCATIONS}, 404, headers=HEADERS)
    return cached(request, content, JSON, CURRENT, HEADERS)


@router.get(
    WELL_KNOWN + "/revocations/{version}.json",
    responses={**_UNPUBLISHED, **_CONDITIONAL, **_LIMITED},
)
async def revocations_version(
    version: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request
) -> Response:
    """One numbered version of the revocation list, as it was signed (never changes); served
    only when its signature holds under the trust list."""
    await rate_limited(request)
    with _db(request) as db:
        signed = revocation_list_version(_proof(request), db, version)
        content = None if signed is None else revocation_list_bytes(signed)
    if content is None:
        return JSONResponse({"detail": _NO_REVOCATIONS}, 404, headers=HEADERS)
    return cached(request, content, JSON, IMMUTABLE, HEADERS)
