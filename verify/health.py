"""`/healthz` of a public node: ok or degraded, nothing more — a public caller learns nothing of
what is behind it. Only its database (the public register) matters: it has no tokens."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

router = APIRouter(tags=["health"])


class PublicHealth(BaseModel):
    status: Literal["ok", "degraded"]


@router.get(
    "/healthz",
    responses={503: {"model": PublicHealth, "description": "the database fails"}},
)
def public_healthz(request: Request, response: Response) -> PublicHealth:
    """200 when the register's database answers; 503 else."""
    try:
        with request.app.state.sessionmaker() as db:
            db.execute(text("SELECT 1"))
    except SQLAlchemyError:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return PublicHealth(status="degraded")
    return PublicHealth(status="ok")
