"""Errors whose message is safe to show a user as is: one line, naming the field or object at
fault, never a secret. The API and the CLI turn them into a status code or an exit code."""


class CertsvcError(Exception):
    """Base of every error the service reports to its user verbatim."""


class InvalidInput(CertsvcError):
    """A value given by the caller breaks a rule; the message starts with the field's name."""


class NotFound(CertsvcError):
    """The named object does not exist (or the caller may not know that it does)."""


class Conflict(CertsvcError):
    """The request clashes with the current state, e.g. a name already taken."""
