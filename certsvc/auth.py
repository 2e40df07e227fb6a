"""FastAPI dependencies: the request's unit of work, the staff member behind a request, their
role, and the workstation the request comes from.

Declare `require_roles(...)` before `require_workstation` in a route's parameters: FastAPI
resolves dependencies in order, so a wrong role is refused (403) before any workstation check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated

from argon2 import PasswordHasher
from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from audit.events import OBJECT_MAX
from audit.trail import event, keep_events, record
from certsvc import state
from certsvc.accounts import (
    Role,
    StaffAccount,
    find_api_token,
    resolve_api_token,
    revoke_exposed_token,
)
from certsvc.audit_trail import actor_of
from certsvc.grants import account_backed, account_pending, token_backed, workstation_backed
from certsvc.log_redaction import TOKEN_QUERY_NAMES, TOKEN_TEXT_RE, redact
from certsvc.settings import Settings
from certsvc.workstations import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    HEADER_WORKSTATION,
    RequestSignatureError,
    Workstation,
    verify_request,
)
from common.unit_of_work import Write, end_before_job, keep, unit_of_work

logger = logging.getLogger(__name__)

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API token (`cst_…`) from `POST /api/v1/auth/token` or `certsvc staff token`.",
)


READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work (`common.unit_of_work`): what the route and its dependencies
    write is committed once, after the route returns and before the answer is sent (the
    dependency's scope is "function"); an error rolls it back whole, but for the records kept
    on purpose (refusals). Requests that may write get a writer session (see
    `make_writer_sessionmaker`)."""
    if request.method in READ_ONLY_METHODS:
        maker = state.reader_sessions(request)
    else:
        maker = state.writer_sessions(request)
    with unit_of_work(maker) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(state.settings)]
HasherDep = Annotated[PasswordHasher, Depends(state.password_hasher)]


def job_sessions(request: Request, session: SessionDep) -> sessionmaker[Session]:
    """For a route whose action commits units of its own — a job (a batch signed chunk by
    chunk, certificates issued one by one) or a signature in its own `signing_transaction` —:
    the request's unit, what authenticating it wrote, is committed first (`end_before_job`),
    and the action gets writer sessions. Declare it after the route's other dependencies:
    they are resolved in order, and the request's session is not used again after it."""
    end_before_job(session)
    return state.writer_sessions(request)


JobSessionsDep = Annotated[sessionmaker[Session], Depends(job_sessions)]


def _unauthorized(detail: str, challenge: str = "Bearer") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": challenge}
    )


def token_in_query(request: Request) -> bool:
    return any(
        name.lower() in TOKEN_QUERY_NAMES or TOKEN_TEXT_RE.search(value)
        for name, value in request.query_params.multi_items()
    )


def _revoke_tokens_in_query(request: Request, session: Session) -> None:
    """Revoke every real token the URL carries, each with an audit event for its holder: the
    URL is already in logs and histories the service does not control. Kept although the
    request is refused (`keep`)."""
    texts = {
        found
        for name, value in request.query_params.multi_items()
        for found in (
            [value] if name.lower() in TOKEN_QUERY_NAMES else TOKEN_TEXT_RE.findall(value)
        )
    }
    for text in sorted(texts):
        keep(session, _revocation(text))


def _revocation(text: str) -> Write:
    def revoke(db: Session) -> None:
        exposed = revoke_exposed_token(db, text)
        if exposed is not None:
            record(
                db,
                actor_of(exposed.account),
                "service.token_exposed",
                exposed.token_id,
                reason="API token sent in a URL: revoked",
            )

    return revoke


def current_staff(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> StaffAccount:
    """The active staff member whose bearer token is in the Authorization header.

    A token anywhere in the URL is refused outright (400) and revoked at once: URLs end up in
    proxy logs, browser history and Referer headers, so such a token is leaked.
    """
    if token_in_query(request):
        logger.warning(
            "refused %s %s: API token in the query string", request.method, redact(request.url.path)
        )
        _revoke_tokens_in_query(request, session)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail="API tokens are accepted only in the Authorization header, never in the URL;"
            " the token you sent is revoked: sign in again for a new one",
        )
    if credentials is None:
        raise _unauthorized("missing bearer token in the Authorization header")
    account = resolve_api_token(session, credentials.credentials)
    if account is None:
        logger.info(
            "refused %s %s: invalid, expired or revoked API token",
            request.method,
            redact(request.url.path),
        )
        raise _unauthorized("invalid, expired or revoked API token")
    _require_grants(request, session, account, credentials.credentials)
    return account


def _refuse_grant(
    request: Request, session: Session, account: StaffAccount, obj: str, reason: str
) -> None:
    """Log and keep on record a privilege refused for want of its grant: a row written around
    the service is what a security officer must hear of."""
    logger.warning("refused %s %s: %s", request.method, redact(request.url.path), reason)
    refusal = event(
        actor_of(account),
        "service.grant.refused",
        obj[:OBJECT_MAX],
        outcome="refused",
        reason=reason,
    )
    keep_events(session, [refusal])


def _require_grants(request: Request, session: Session, account: StaffAccount, text: str) -> None:
    """401 unless the token's grant event is on record, 403 unless the account's is and its
    holder has set their own password (`certsvc.grants`)."""
    token = find_api_token(session, text)
    if token is None or not token_backed(session, token):
        reason = "API token without a grant event on record"
        _refuse_grant(request, session, account, token.token_id if token else "api", reason)
        raise _unauthorized("invalid, expired or revoked API token")
    if not account_backed(session, account):
        if account_pending(session, account):
            detail = f"account {account.username} awaits a security officer's approval"
        else:
            detail = f"account {account.username} has no grant event on record"
        _refuse_grant(request, session, account, account.username, detail)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)
    if account.must_set_password:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="set your own password first: POST /api/v1/auth/password",
        )


StaffDep = Annotated[StaffAccount, Depends(current_staff)]


def require_roles(*roles: Role) -> Callable[[StaffAccount], StaffAccount]:
    """A dependency giving the current staff member if their role is one of `roles`, else 403."""
    allowed = frozenset(roles)
    names = ", ".join(role.value for role in roles)
    needed = f"the role: {names}" if len(roles) == 1 else f"one of the roles: {names}"

    def dependency(account: StaffDep) -> StaffAccount:
        if account.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"this action needs {needed}")
        return account

    return dependency


def _path_with_query(request: Request) -> str:
    raw_path: bytes | None = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query: bytes = request.scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def require_workstation(
    request: Request,
    account: StaffDep,
    session: SessionDep,
    settings: SettingsDep,
    workstation: Annotated[str | None, Header(alias=HEADER_WORKSTATION)] = None,
    timestamp: Annotated[str | None, Header(alias=HEADER_TIMESTAMP)] = None,
    nonce: Annotated[str | None, Header(alias=HEADER_NONCE)] = None,
    signature: Annotated[str | None, Header(alias=HEADER_SIGNATURE)] = None,
) -> Workstation:
    """The registered workstation, in the current staff member's custody, that signed this
    request (see `certsvc.workstations`); 401 naming what is wrong otherwise, the refusal kept
    on record although the request fails (an attempt from an unknown or wrong computer is what
    a security officer looks for)."""
    headers = {
        name: value
        for name, value in (
            (HEADER_WORKSTATION, workstation),
            (HEADER_TIMESTAMP, timestamp),
            (HEADER_NONCE, nonce),
            (HEADER_SIGNATURE, signature),
        )
        if value is not None
    }
    body = await request.body()
    authorization = request.headers.get("authorization", "")
    return await run_in_threadpool(
        prove_workstation, request, session, account, settings, headers, body, authorization
    )


def prove_workstation(
    request: Request,
    session: Session,
    account: StaffAccount,
    settings: Settings,
    headers: Mapping[str, str],
    body: bytes,
    authorization: str,
) -> Workstation:
    """The one check of a workstation proof, for the API (`require_workstation`) and the
    console (whose `authorization` binds the session instead of a bearer token): the
    signature verified and its workstation's grant on record, or `RequestSignatureError`
    with the refusal logged and kept in the audit log."""
    try:
        workstation = verify_request(
            session,
            account=account,
            method=request.method,
            path=_path_with_query(request),
            body=body,
            authorization=authorization,
            headers=headers,
            max_skew_seconds=settings.request_max_skew_seconds,
        )
    except RequestSignatureError as exc:
        logger.warning("refused workstation proof from %s: %s", account.username, exc)
        refusal = event(
            actor_of(account),
            "service.workstation_proof",
            f"{request.method} {request.url.path}"[:OBJECT_MAX],
            outcome="refused",
            reason=str(exc),
        )
        keep_events(session, [refusal])
        raise
    if not workstation_backed(session, workstation):
        reason = f"workstation {workstation.name} has no grant event on record"
        _refuse_grant(request, session, account, workstation.name, reason)
        raise RequestSignatureError(reason)
    return workstation
