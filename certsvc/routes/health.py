"""`/healthz` of the full service: is the database reachable and the PKCS#11 module answering?
Counts only — no token label, serial or custodian is shown to an unauthenticated caller. A
public node answers `verify.health`'s instead."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from certsvc import state
from common.errors import CertsvcError
from signer.models import HsmToken

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    hsm: Literal["ok", "unavailable"]
    tokens_registered: int
    tokens_present: int
    tokens_locked: int


@router.get(
    "/healthz",
    responses={503: {"model": Health, "description": "the database or the token module fails"}},
)
def healthz(request: Request, response: Response) -> Health:
    """200 when the database and the token module answer; 503, saying which does not, else."""
    registered: set[str] = set()
    database: Literal["ok", "unavailable"] = "ok"
    try:
        with state.reader_sessions(request)() as db:
            db.execute(text("SELECT 1"))
            registered = set(db.scalars(select(HsmToken.serial)))
    except SQLAlchemyError:
        database = "unavailable"
    hsm: Literal["ok", "unavailable"] = "ok"
    present = locked = 0
    try:
        for token in state.tokens(request).statuses():
            if token.serial in registered:
                present += 1
                locked += token.pin_locked
    except (CertsvcError, RuntimeError):
        hsm = "unavailable"
    healthy = database == "ok" and hsm == "ok"
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(
        status="ok" if healthy else "degraded",
        database=database,
        hsm=hsm,
        tokens_registered=len(registered),
        tokens_present=present,
        tokens_locked=locked,
    )
