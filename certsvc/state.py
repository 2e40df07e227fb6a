"""What the full service keeps on `app.state` (set once by `certsvc.app.create_app`), read
through one typed function per thing: a route never reads an untyped attribute, and a wrong or
missing object fails here, by name, instead of deep inside a route."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from argon2 import PasswordHasher
from fastapi import Request
from fastapi.openapi.utils import get_openapi
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute

from certsvc.audit_keys import CheckpointKeyHolder
from certsvc.login_refusals import RefusedLogins
from certsvc.settings import Settings
from certsvc.vault_setup import open_vault
from signer.documents import DocumentSigner
from signer.gate import SigningGate
from signer.sessions import SigningSessions
from signer.tokens import Pkcs11Tokens
from vault.store import Vault
from verify.ratelimit import RateLimiter

T = TypeVar("T")
_vault_lock = threading.Lock()


def _held(request: Request, name: str, kind: type[T]) -> T:
    value = getattr(request.app.state, name, None)
    if not isinstance(value, kind):
        raise TypeError(f"app.state.{name}: expected {kind.__name__}, found {type(value).__name__}")
    return value


def settings(request: Request) -> Settings:
    return _held(request, "settings", Settings)


def reader_sessions(request: Request) -> sessionmaker[Session]:
    """Sessions for requests that only read (`make_sessionmaker`)."""
    return _held(request, "sessionmaker", sessionmaker)


def writer_sessions(request: Request) -> sessionmaker[Session]:
    """Sessions for requests and jobs that write (`make_writer_sessionmaker`)."""
    return _held(request, "writer_sessions", sessionmaker)


def password_hasher(request: Request) -> PasswordHasher:
    return _held(request, "password_hasher", PasswordHasher)


def tokens(request: Request) -> Pkcs11Tokens:
    return _held(request, "tokens", Pkcs11Tokens)


def signing_sessions(request: Request) -> SigningSessions:
    return _held(request, "signing_sessions", SigningSessions)


def signing_gate(request: Request) -> SigningGate:
    return _held(request, "signing_gate", SigningGate)


def document_signer(request: Request) -> DocumentSigner:
    return _held(request, "document_signer", DocumentSigner)


def checkpoint_key(request: Request) -> CheckpointKeyHolder:
    return _held(request, "checkpoint_key", CheckpointKeyHolder)


def login_limiter(request: Request) -> RateLimiter:
    """The per-client limit on login attempts (a protocol: memory or Redis)."""
    limiter: RateLimiter = request.app.state.login_limiter
    return limiter


def refused_logins(request: Request) -> RefusedLogins:
    """Logins refused by the limit, counted into one audit event per client and minute."""
    return _held(request, "refused_logins", RefusedLogins)


def public_openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document of the public routers the app was built with, made once."""
    app = request.app
    document: dict[str, Any] | None = getattr(app.state, "public_openapi", None)
    if document is None:
        routes: list[BaseRoute] = _held(request, "public_routes", list)
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=routes
        )
        app.state.public_openapi = document
    return document


def vault(request: Request) -> Vault:
    """The app's vault, made on first use: its keys are unwrapped only when needed."""
    with _vault_lock:
        held: Vault | None = getattr(request.app.state, "vault", None)
        if held is None:
            held = open_vault(settings(request), reader_sessions(request), tokens(request))
            request.app.state.vault = held
    return held
