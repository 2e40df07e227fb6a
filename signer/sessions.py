"""Signing sessions: a custodian's USBKey inserted and unlocked at a workstation, for a while.

A session is a logged-in token session plus who opened it, where, and for which key; it ends on
demand, after an absolute time, or when left unused. The PIN is passed to the token once and not
kept. Sessions live in the process that opened them: with several service workers, a custodian's
session is in the worker that served the opening request, and `SessionClaims` keeps the other
workers from opening a second session on the same USBKey or silently signing without one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import CertsvcError
from signer.claims import SessionClaims, SessionElsewhere
from signer.errors import SessionLost
from signer.tokens import PinCounter, Pkcs11Tokens, TokenSession


class NotYourSession(CertsvcError):
    """The session belongs to another custodian; its existence is all they learn."""

    status_code = 403


@dataclass
class SigningSession:
    token: TokenSession
    custodian: str
    workstation: str
    opened_at: float
    last_used_at: float
    expires_at: float
    idle_seconds: float
    key_label: str | None = None

    def expired(self, now: float) -> bool:
        return now >= self.expires_at or now - self.last_used_at >= self.idle_seconds

    @property
    def is_open(self) -> bool:
        return self.token.is_open


class SigningSessions:
    """The open signing sessions of this process, one per token at most."""

    def __init__(
        self,
        tokens: Pkcs11Tokens,
        absolute_seconds: float,
        idle_seconds: float,
        clock: Callable[[], float] = time.time,
        claims: SessionClaims | None = None,
    ) -> None:
        self._tokens = tokens
        self._claims = claims
        self._absolute = absolute_seconds
        self._idle = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, SigningSession] = {}

    def open(
        self,
        serial: str,
        pin: str,
        custodian: str,
        workstation: str,
        key_label: str | None = None,
        counter: PinCounter | None = None,
    ) -> SigningSession:
        """Log in to the token for `custodian` at `workstation`; wrong PINs are counted by
        `counter` (the request's unit of work), else by the process's."""
        with self._lock:
            self._expire()
            claimed = self._claims is not None and self._claims.claim(serial)
            try:
                token = self._tokens.login(serial, pin, counter=counter)
            except BaseException:
                if claimed:  # never the claim of a session this process already has open
                    self._release(serial)
                raise
            now = self._clock()
            session = SigningSession(
                token=token,
                custodian=custodian,
                workstation=workstation,
                opened_at=now,
                last_used_at=now,
                expires_at=now + self._absolute,
                idle_seconds=self._idle,
                key_label=key_label,
            )
            self._open[serial] = session
            return session

    def use(self, serial: str, custodian: str) -> SigningSession:
        """The live session on `serial` held by `custodian`, its idle clock restarted."""
        with self._lock:
            self._expire()
            session = self._open.get(serial)
            if session is None:
                raise self._lost(serial)
            if session.custodian != custodian:
                raise NotYourSession(f"token {serial}: the session is held by another custodian")
            session.last_used_at = self._clock()
            return session

    def current(self, serial: str) -> SigningSession | None:
        """The live session on `serial`, whoever holds it; the signing policy judges the rest.
        Raises `SessionElsewhere` when another worker holds it: refusing as if there were none
        would tell the custodian to open one, which that worker's claim forbids."""
        with self._lock:
            self._expire()
            session = self._open.get(serial)
            if session is None and self._claims is not None and self._claims.held_elsewhere(serial):
                raise SessionElsewhere(serial)
            return session

    def touch(self, session: SigningSession) -> None:
        """Restart the idle clock after a use."""
        with self._lock:
            session.last_used_at = self._clock()

    def end(self, serial: str, key_label: str | None = None) -> bool:
        """Close the session on `serial` (only if it is for `key_label`, when given) whoever
        holds it: the token changed hands or the key was retired. Whether one was closed."""
        with self._lock:
            session = self._open.get(serial)
            if session is None or key_label not in (None, session.key_label):
                return False
            self._drop(serial, session)
            return True

    def close(self, serial: str, custodian: str) -> None:
        with self._lock:
            session = self._open.get(serial)
            if session is None:
                raise self._lost(serial)
            if session.custodian != custodian:
                raise NotYourSession(f"token {serial}: the session is held by another custodian")
            self._drop(serial, session)

    def held_by(self, custodian: str) -> list[SigningSession]:
        with self._lock:
            self._expire()
            return [s for s in self._open.values() if s.custodian == custodian]

    def close_all(self) -> None:
        with self._lock:
            for serial, session in list(self._open.items()):
                self._drop(serial, session)

    def _expire(self) -> None:
        now = self._clock()
        for serial, session in list(self._open.items()):
            if session.expired(now) or not session.is_open:
                self._drop(serial, session)

    def _drop(self, serial: str, session: SigningSession) -> None:
        del self._open[serial]
        session.token.close()
        self._release(serial)

    def _release(self, serial: str) -> None:
        if self._claims is not None:
            self._claims.release(serial)

    def _lost(self, serial: str) -> SessionLost | SessionElsewhere:
        if self._claims is not None and self._claims.held_elsewhere(serial):
            return SessionElsewhere(serial)
        return SessionLost(serial)
