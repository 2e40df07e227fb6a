"""Errors a custodian or operator can act on.

Each message says what happened and what to do, names the token by label and serial, and never
carries a PIN, key material or the data being signed.
"""

from __future__ import annotations

from common.errors import CertsvcError, ServiceFault


class SignerError(CertsvcError):
    """Base class; `str(error)` is safe to show to the person at the workstation."""


class TokenAbsent(SignerError):
    status_code = 409

    def __init__(self, token: str) -> None:
        super().__init__(f"USBKey {token} is not inserted: insert it and try again")


class WrongPin(SignerError):
    status_code = 403

    def __init__(self, token: str, tries_left: int | None) -> None:
        self.tries_left = tries_left
        if tries_left is None:
            detail = "the key locks after too many wrong PINs in a row"
        elif tries_left == 1:
            detail = "1 try left before the key locks"
        else:
            detail = f"{tries_left} tries left before the key locks"
        super().__init__(f"wrong PIN for USBKey {token}: {detail}")

    def public(self) -> dict[str, object]:
        return {**super().public(), "tries_left": self.tries_left}


class TokenLocked(SignerError):
    status_code = 423

    def __init__(self, token: str) -> None:
        super().__init__(
            f"USBKey {token} is locked after too many wrong PINs: the security officer unblocks "
            f"it with the SO PIN (`certsvc hsm unblock`) and sets a new user PIN"
        )


class TokenBusy(SignerError):
    status_code = 409

    def __init__(self, token: str) -> None:
        super().__init__(
            f"USBKey {token} already has an open session in this service: close it first"
        )


class TokenFault(SignerError, ServiceFault):
    def __init__(self, token: str) -> None:
        super().__init__(
            f"USBKey {token} stopped answering (removed or reset): re-insert it and open a new "
            f"session; nothing was signed by the failed operation"
        )


class LoggedInElsewhere(SignerError):
    """CKR_USER_ALREADY_LOGGED_IN after the module was initialised again: another application
    holds the login. It is never reused (the PIN would go unchecked)."""

    status_code = 409

    def __init__(self, token: str) -> None:
        super().__init__(
            f"USBKey {token} is logged in by another application: close it, or remove and "
            "re-insert the USBKey, then try again"
        )


class ModuleAnswer(SignerError, ServiceFault):
    """The module answered in a form its profile cannot read (`signer.profile`)."""


class SessionLost(SignerError):
    status_code = 409

    def __init__(self, token: str) -> None:
        super().__init__(f"the session on USBKey {token} is closed: open a new one with the PIN")


class KeyNotFound(SignerError):
    status_code = 404

    def __init__(self, token: str, label: str) -> None:
        super().__init__(f"USBKey {token} holds no private key labelled {label!r}")


class SignatureInvalid(SignerError, ServiceFault):
    """The token returned a signature that does not verify; it is never handed out."""

    def __init__(self, token: str, label: str) -> None:
        super().__init__(
            f"USBKey {token} produced a signature with key {label!r} that does not verify: "
            f"it was discarded; report the token to the security officer"
        )


class NotCustodian(SignerError):
    """The caller does not hold the token (or is not the party) a custody act needs."""

    status_code = 403
