"""Errors the vault reports; messages name the field and the reason, never the value."""

from __future__ import annotations

from common.errors import CertsvcError, InvalidInput, ServiceFault


class InvalidValue(InvalidInput):
    """A personal identifier fails its kind's rules; `field` is where it came from."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class VaultUnavailable(ServiceFault):
    """The vault's key token cannot be used now, so nothing is stored or revealed."""


class StoredValueCorrupt(CertsvcError):
    """A stored ciphertext fails its AES-GCM tag: the row was changed or damaged outside the
    vault (or copied from another token, kind or key version). Not a token fault: the keys work
    and retrying cannot help, so it is kept apart from `VaultUnavailable`; the token names the
    row for the security officer and is no personal value."""

    status_code = 500

    def __init__(self, token: str) -> None:
        self.token = token
        super().__init__(
            f"vault entry {token}: stored value failed its integrity check: "
            "report it to the security officer"
        )


class RevealRateLimited(CertsvcError):
    """The person has revealed as many values as the window allows."""

    status_code = 429

    def __init__(self, limit: int, window_minutes: int, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"reveal limit reached: at most {limit} values per {window_minutes} minutes; "
            f"try again in {retry_after_seconds} s"
        )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class LookupRateLimited(CertsvcError):
    """The person has looked up as many values as the window allows."""

    status_code = 429

    def __init__(self, limit: int, window_minutes: int, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"lookup limit reached: at most {limit} values per {window_minutes} minutes; "
            f"try again in {retry_after_seconds} s"
        )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}
