"""The public JSON lookup (`GET /api/v1/verify/{id}`), answered as plain ASGI in front of
FastAPI's routing: the hottest route of the public side, where FastAPI's per-request machinery
(dependency solving for path and query parameters, the response objects, the route scan) cost
more than the lookup itself (docs/operators.md, "Benchmarks").

It does what the FastAPI route (`verify.routes.verify_online`, kept for the OpenAPI document)
does, through the same functions: the same rate limit, the same proof-checked view, the same
headers and bodies. Everything else goes on to the application unchanged, and so does a lookup
that fails (a database outage): the route then answers it with the application's error answers
(503 and Retry-After), counted twice against the client's budget, never less. Installed inside
the hardening middleware, so its headers apply here too."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException, Request

from verify.published import CURRENT
from verify.routes import HEADERS, NOT_FOUND, rate_limited, view_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/api/v1/verify/"
_JSON = (b"content-type", b"application/json")
_FOUND = [_JSON, *((k.lower().encode(), v.encode()) for k, v in HEADERS.items())]
_FOUND_CACHED = [*_FOUND, (b"cache-control", CURRENT.encode())]


def _body(content: Any) -> bytes:
    """As `JSONResponse` renders it."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


_NOT_FOUND_BODY = _body(NOT_FOUND)


class FastLookup:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        verification_id = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
        if scope.get("method") != "GET" or not verification_id or "/" in verification_id:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            await rate_limited(request)
            view = view_of(request, verification_id)
        except HTTPException as exc:
            headers = exc.headers or {}
            limited = [_JSON, *((k.lower().encode(), v.encode()) for k, v in headers.items())]
            await _answer(send, exc.status_code, limited, _body({"detail": exc.detail}))
            return
        except Exception:
            await self.app(scope, receive, send)
            return
        if view is None:
            await _answer(send, 404, _FOUND, _NOT_FOUND_BODY)
        else:
            await _answer(send, 200, _FOUND_CACHED, _body(view))


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    start = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
