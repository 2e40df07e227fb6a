"""HTTP hardening for every response and request, as plain ASGI (cheap on the public hot path):

- security headers unless a route set its own: `X-Content-Type-Options`, `Referrer-Policy:
  no-referrer` (a verification URL is never passed on), `X-Frame-Options`, a strict
  `Content-Security-Policy`, `Cache-Control: no-store` on staff API answers, and HSTS when the
  request came over TLS;
- request bodies over a limit refused with 413 before the application reads them, and JSON
  nested deeper than a limit refused with 422 (the parser would recurse into a 500).

No CORS middleware is installed: browsers on other origins get no access to any route.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=31536000; includeSubDomains"
_BASE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", STRICT_CSP.encode()),
)


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class Hardening:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _refuse(send, 413, f"body: larger than {self.max_body} bytes")
            return
        body_receive = receive
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = await _read_body(receive, self.max_body)
            if body is None:
                await _refuse(send, 413, f"body: larger than {self.max_body} bytes")
                return
            is_json = b"json" in headers.get(b"content-type", b"")
            if is_json and json_depth(body) > MAX_JSON_DEPTH:
                await _refuse(send, 422, f"body: JSON nested deeper than {MAX_JSON_DEPTH}")
                return
            body_receive = _replay(body, receive)
        secure = scope.get("scheme") == "https"
        staff_api = str(scope.get("path", "")).startswith("/api/") and not str(
            scope.get("path", "")
        ).startswith("/api/v1/verify/")

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in _BASE_HEADERS if n not in present]
                if staff_api and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                if secure:
                    extra.append((b"strict-transport-security", HSTS.encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, body_receive, send_hardened)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_BASE_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
