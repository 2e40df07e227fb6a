"""Errors whose message is safe to show a user as is: one line, naming the field or object at
fault, never a secret. Each class carries its own answer — the HTTP status, the body the public
may see (`public`), and the headers (`headers`) — so one handler answers them all
(`certsvc.error_answers`), and the CLI prints the message and exits non-zero."""

from __future__ import annotations

from typing import ClassVar

# What a client waits before trying again after a fault of the service's own (a token that
# stopped answering, the audit log unreachable): short, a person is usually fixing it.
SERVICE_RETRY_SECONDS = 5


class CertsvcError(Exception):
    """Base of every error the service reports to its user verbatim; without a status of its
    own it answers 400 (documented so in `certsvc.routes.schemas`)."""

    status_code: ClassVar[int] = 400
    # Seconds a client should wait before retrying (sent as Retry-After), when waiting helps.
    retry_after: ClassVar[int | None] = None

    def public(self) -> dict[str, object]:
        """The answer's body: the message, plus what the caller can act on (never a secret)."""
        return {"detail": str(self)}

    def headers(self) -> dict[str, str]:
        """The answer's headers."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(self.retry_after)}


class InvalidInput(CertsvcError):
    """A value given by the caller breaks a rule; the message starts with the field's name."""

    status_code = 422


class NotFound(CertsvcError):
    """The named object does not exist (or the caller may not know that it does)."""

    status_code = 404


class Conflict(CertsvcError):
    """The request clashes with the current state, e.g. a name already taken."""

    status_code = 409


class ServiceFault(CertsvcError):
    """The service's own fault (a token, the vault's keys, the audit log, its configuration):
    the request was fine and nothing was done; try again shortly."""

    status_code = 503
    retry_after = SERVICE_RETRY_SECONDS
