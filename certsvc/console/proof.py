"""A console request's workstation proof: the same four headers and the same check as the
API's `Certsvc-Signature` (`certsvc.auth.prove_workstation`), made by the browser's
non-extractable ECDSA P-256 key (static/workstation.js). Where the API hashes the bearer
token's Authorization value, the console hashes `BINDING + the session's CSRF token`: a
signature serves one console session only, and a stolen cookie without the key signs nothing."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from certsvc import state
from certsvc.accounts import StaffAccount
from certsvc.auth import prove_workstation
from certsvc.console.models import ConsoleSession
from certsvc.workstations import Workstation

BINDING = "Console-Session "


async def proven_workstation(
    request: Request, db: Session, row: ConsoleSession, account: StaffAccount
) -> Workstation:
    """The registered workstation in `account`'s custody that signed this request; else
    `RequestSignatureError` (401), the refusal audited as the API's is."""
    body = await request.body()
    return await run_in_threadpool(
        prove_workstation,
        request,
        db,
        account,
        state.settings(request),
        request.headers,
        body,
        BINDING + row.csrf,
    )
