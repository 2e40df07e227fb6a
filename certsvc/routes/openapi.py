"""`/openapi.json` of the full service: the staff API's document only for staff (a map of every
staff route helps an attacker more than anyone else); anyone else gets the public part."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials

from certsvc.auth import SessionDep, bearer_scheme, current_staff, token_in_query
from certsvc.state import public_openapi

router = APIRouter()


@router.get("/openapi.json", include_in_schema=False)
def openapi_document(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> dict[str, Any]:
    """The whole document for a valid staff token; without a token, the public routes' only.
    A wrong or leaked token is refused as on any staff route."""
    app: FastAPI = request.app
    if credentials is None and not token_in_query(request):
        return public_openapi(request)
    current_staff(request, session, credentials)
    return app.openapi()
