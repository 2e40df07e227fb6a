"""Register rows carry their proof: a row is answered only when its stored COSE payload
verifies under the trust list — itself opened only under a pinned root (`verify.anchors`) — and
says exactly what the row says, and its status agrees with the signed revocation list.

A row that fails answers like an unknown id (404) and is logged for the security officer
(certificate number and what failed, nothing else): a public node has no audit log to write to,
and `certsvc audit reconcile` names the same row on the inside. A row edited back to "valid"
while the signed list names it is answered "revoked", as the list says.

Neither list may go back: the newest version a node has used stays in use when the database
offers an older one (a restored backup, a deleted row), and is kept in a watermark file in the
node's home, so that a node restarted onto a rolled-back database answers no row (404) rather
than an un-revoked one. Answers are cached keyed by
everything the row holds and the list versions they were judged under, so an edited row, or a
new list, is judged again at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from verify.lookup import RegisterRow
from verify.models import SignedRevocationList, SignedTrustList
from verify.offline import verify_signed_payload
from verify.trust import (
    RevocationList,
    TrustListInvalid,
    open_revocation_list,
    open_trust_list,
    published,
    published_revocations,
)
from verify.views import RegisterEntry

log = logging.getLogger("certsvc.verify.proof")
VALID, REVOKED = "valid", "revoked"
ANSWERS_KEPT = 65536
_UNKNOWN = object()
REPORTS_KEPT = 10000
TRUST, REVOCATIONS = "trust_list", "revocation_list"
TRUST_LIST, REVOCATION_LIST = "trust-list", "revocation-list"
# What a refusal is reported to beyond the log: (object, reason).
Reporter = Callable[[str, str], None]


class ListRolledBack(Exception):
    """The database offers an older list than this node has used: nothing is answered from it."""


class Watermark:
    """The newest trust and revocation list versions a node has used, kept in a small file of
    its own (its home, never the database), so that a restart does not forget them. A file that
    cannot be written (a read-only home) leaves them in memory, said once in the log."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._versions: dict[str, int] = {}
        if path is not None:
            try:
                stored = json.loads(path.read_text())
            except FileNotFoundError:
                stored = {}
            except (OSError, ValueError):
                raise ValueError(f"register watermark: {path} is not readable JSON") from None
            if not isinstance(stored, dict):
                raise ValueError(f"register watermark: {path} is not a JSON object")
            self._versions = {k: v for k, v in stored.items() if isinstance(v, int)}

    def floor(self, kind: str) -> int:
        return self._versions.get(kind, 0)

    def raise_to(self, kind: str, version: int) -> None:
        if version <= self.floor(kind):
            return
        self._versions[kind] = version
        if self._path is None:
            return
        temporary = self._path.with_name(f"{self._path.name}.{os.getpid()}.tmp")
        try:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600
            )
            with os.fdopen(descriptor, "w") as out:
                json.dump(self._versions, out)
            os.replace(temporary, self._path)
        except OSError as exc:
            log.warning("register watermark not kept in %s: %s", self._path, exc.strerror)
            self._path = None


class RegisterProof:
    """`judge(verification_id, row)`: the row to answer with, or None (answer 404). One per
    process, shared by requests."""

    def __init__(
        self,
        sessions: Callable[[], AbstractContextManager[Session]],
        anchors: frozenset[str],
        watermark: Path | None = None,
        on_refused: Reporter | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_refused = on_refused
        self._anchors = anchors
        self._watermark = Watermark(watermark)
        self._lock = threading.Lock()
        self._trust: tuple[int, dict[str, Any]] | None = None
        self._revocations: RevocationList | None = None
        self._refused: set[int] = set()  # revocation list versions that did not open
        self._examined = 0
        self._answers: dict[tuple[Any, ...], RegisterRow | None] = {}
        self._reported: set[tuple[str, str]] = set()

    def trust(self, version: int | None) -> dict[str, Any] | None:
        """The newest trust list that opens under the pinned anchors, as of `version` (the
        newest on file), never older than one used before (in this process or, through the
        watermark, before it); None when none does. A version that does not open is reported
        once and passed over."""
        with self._lock:
            known = 0 if self._trust is None else self._trust[0]
            if version is not None and version > max(known, self._examined):
                # Each version is read once: one that does not open costs no query after.
                self._examined = version
                self._open_trust(known, version)
                known = 0 if self._trust is None else self._trust[0]
            if (version or 0) < known:
                self._report(TRUST_LIST, f"version {version} on file, {known} used before")
            floor = self._watermark.floor(TRUST)
            if known < floor:
                self._report(TRUST_LIST, f"none opens at or above version {floor} used before")
                return None
            return None if self._trust is None else self._trust[1]

    def _open_trust(self, after: int, upto: int) -> None:
        with self._sessions() as db:
            candidates = db.scalars(
                select(SignedTrustList)
                .where(SignedTrustList.version > after, SignedTrustList.version <= upto)
                .order_by(SignedTrustList.version.desc())
            )
            for signed in candidates:
                try:
                    document = open_trust_list(published(signed), self._anchors)
                except TrustListInvalid as exc:
                    self._report(TRUST_LIST, f"version {signed.version} refused: {exc}")
                    continue
                self._trust = (signed.version, document)
                self._watermark.raise_to(TRUST, signed.version)
                return

    def revocations(self, version: int | None, trust: dict[str, Any]) -> RevocationList | None:
        """The newest signed revocation list, as of `version` (the newest on file); None when
        none was ever published. `ListRolledBack` when the newest that opens is older than one
        used before."""
        with self._lock:
            known = 0 if self._revocations is None else self._revocations.version
            if version is not None and version > known:
                self._open_revocations(version, trust)
                known = 0 if self._revocations is None else self._revocations.version
            if (version or 0) < known:
                self._report(REVOCATION_LIST, f"version {version} on file, {known} used before")
            floor = self._watermark.floor(REVOCATIONS)
            if known < floor:
                self._report(REVOCATION_LIST, f"version {known} opens, {floor} used before")
                raise ListRolledBack
            return self._revocations

    def _open_revocations(self, version: int, trust: dict[str, Any]) -> None:
        if version in self._refused:
            return
        with self._sessions() as db:
            signed = db.get(SignedRevocationList, version)
            served = None if signed is None else published_revocations(signed)
        try:
            if served is None:
                raise TrustListInvalid(f"revocation list: version {version} vanished")
            opened = open_revocation_list(served, trust)
            if opened.version != version:
                raise TrustListInvalid("revocation list: its version is not the one filed")
        except TrustListInvalid as exc:
            self._refused.add(version)
            self._report(REVOCATION_LIST, f"version {version} refused: {exc}")
            return
        self._revocations = opened
        self._watermark.raise_to(REVOCATIONS, version)

    def judge(self, verification_id: str, row: RegisterRow) -> RegisterRow | None:
        """The row as it may be answered, or None when its proof does not hold."""
        trust = self.trust(row.trust_version)
        if trust is None:
            self._report(f"certificate:{row.number}", "no trust list opens under the anchors")
            return None
        try:
            listing = self.revocations(row.revocations_version, trust)
        except ListRolledBack:
            return None
        key = (verification_id, row, trust["version"], 0 if listing is None else listing.version)
        known = self._answers.get(key, _UNKNOWN)
        if known is not _UNKNOWN:
            return cast(RegisterRow | None, known)
        answer = self._answer(verification_id, row, trust, listing)
        if len(self._answers) >= ANSWERS_KEPT:
            self._answers.clear()
        self._answers[key] = answer
        return answer

    def _answer(
        self,
        verification_id: str,
        row: RegisterRow,
        trust: dict[str, Any],
        listing: RevocationList | None,
    ) -> RegisterRow | None:
        if payload_disproves(verification_id, row, trust) is not None:
            self._report(f"certificate:{row.number}", "its signed payload does not match the row")
            return None
        entry = None if listing is None else listing.find(verification_id)
        if row.status == VALID and entry is None:
            return row
        if row.status == VALID and entry is not None:
            self._report(f"certificate:{row.number}", "row says valid, the signed list revoked")
            return row._replace(
                status=REVOKED, revoked_on=entry.on, revocation_category=entry.category
            )
        if (
            row.status == REVOKED
            and entry is not None
            and (entry.on, entry.category) == (row.revoked_on, row.revocation_category)
        ):
            return row
        self._report(f"certificate:{row.number}", "its status is not the signed list's")
        return None

    def _report(self, what: str, reason: str) -> None:
        """One log line per distinct finding (a flood of lookups writes it once), and, on a
        node that has an audit log, one event."""
        if (what, reason) in self._reported:
            return
        if len(self._reported) >= REPORTS_KEPT:
            self._reported.clear()
        self._reported.add((what, reason))
        log.warning("register proof refused: %s: %s", what, reason)
        if self._on_refused is not None:
            try:
                self._on_refused(what, reason)
            except Exception:  # the answer is a refusal already; the log line stands
                log.exception("register proof refusal not recorded: %s", what)


class ProvedFields(RegisterEntry, Protocol):
    """A register row with the signed payload that must say its fields (a lookup's row, a
    table row)."""

    @property
    def payload(self) -> bytes: ...


def payload_disproves(verification_id: str, row: ProvedFields, trust: dict[str, Any]) -> str | None:
    """Why the row's stored payload does not prove it under `trust` (None: it does): a payload
    that does not verify, or one that says other fields than the row."""
    verdict = verify_signed_payload(verification_id, row.payload, trust)
    claims = verdict.claims
    if not verdict.valid or claims is None:
        return f"its signed payload does not verify ({verdict.reason})"
    said = (claims.number, claims.qualification, claims.subject, claims.body)
    shown = (row.number, row.qualification, row.subject, row.body_code)
    if (*said, claims.issue_date, claims.masked_name) != (*shown, row.issue_date, row.masked_name):
        return "its fields differ from its signed payload"
    return None
