"""Register rows carry their proof: a row is answered only when its stored COSE payload
verifies under the trust list — itself opened only under a pinned root (`verify.anchors`) — and
says exactly what the row says, and its status agrees with the signed revocation list.

A row that fails answers like an unknown id (404) and is logged for the security officer
(certificate number and what failed, nothing else): a public node has no audit log to write to,
and `certsvc audit reconcile` names the same row on the inside. A row edited back to "valid"
while the signed list names it is answered "revoked", as the list says.

Neither list may go back: the newest version a process has opened stays in use when the
database offers an older one (a restored backup, a deleted row). Verdicts on a row are cached
keyed by everything the row holds, so an edited row is checked again at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

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

log = logging.getLogger("certsvc.verify.proof")
VALID, REVOKED = "valid", "revoked"
VERDICTS_KEPT = 65536
REPORTS_KEPT = 10000


class RegisterProof:
    """`judge(verification_id, row)`: the row to answer with, or None (answer 404). One per
    process, shared by requests."""

    def __init__(
        self, sessions: Callable[[], AbstractContextManager[Session]], anchors: frozenset[str]
    ) -> None:
        self._sessions = sessions
        self._anchors = anchors
        self._lock = threading.Lock()
        self._trust: tuple[int, dict[str, Any]] | None = None
        self._revocations: RevocationList | None = None
        self._refused: set[tuple[str, int]] = set()
        self._verdicts: dict[tuple[Any, ...], bool] = {}
        self._reported: set[tuple[str, str]] = set()

    def trust(self, version: int | None) -> dict[str, Any] | None:
        """The newest trust list that opens under the pinned anchors, as of `version` (the
        newest on file), never older than one opened before; None when none does. A version
        that does not open is reported once and passed over."""
        with self._lock:
            current = self._trust
            if version is None or (current is not None and version <= current[0]):
                if current is not None and (version or 0) < current[0]:
                    self._report("trust list", f"version {version} on file, {current[0]} seen")
                return None if current is None else current[1]
            floor = 0 if current is None else current[0]
            with self._sessions() as db:
                candidates = db.scalars(
                    select(SignedTrustList)
                    .where(SignedTrustList.version > floor, SignedTrustList.version <= version)
                    .order_by(SignedTrustList.version.desc())
                )
                for signed in candidates:
                    if ("trust", signed.version) in self._refused:
                        continue
                    try:
                        document = open_trust_list(published(signed), self._anchors)
                    except TrustListInvalid as exc:
                        self._refused.add(("trust", signed.version))
                        self._report("trust list", f"version {signed.version} refused: {exc}")
                        continue
                    self._trust = (signed.version, document)
                    return document
            return None if current is None else current[1]

    def revocations(self, version: int | None, trust: dict[str, Any]) -> RevocationList | None:
        """The newest signed revocation list, as of `version` (the newest on file)."""
        with self._lock:
            current = self._revocations
            if version is None or (current is not None and version <= current.version):
                if current is not None and (version or 0) < current.version:
                    self._report(
                        "revocation list", f"version {version} on file, {current.version} seen"
                    )
                return current
            if ("revocations", version) in self._refused:
                return current
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
                self._refused.add(("revocations", version))
                self._report("revocation list", f"version {version} refused: {exc}")
                return current
            self._revocations = opened
            return opened

    def judge(self, verification_id: str, row: RegisterRow) -> RegisterRow | None:
        """The row as it may be answered, or None when its proof does not hold."""
        trust = self.trust(row.trust_version)
        if trust is None:
            self._report(f"certificate {row.number}", "no trust list opens under the anchors")
            return None
        if not self._payload_holds(verification_id, row, trust):
            self._report(f"certificate {row.number}", "its signed payload does not match the row")
            return None
        listing = self.revocations(row.revocations_version, trust)
        entry = None if listing is None else listing.find(verification_id)
        if row.status == VALID and entry is None:
            return row
        if row.status == VALID and entry is not None:
            self._report(f"certificate {row.number}", "row says valid, the signed list revoked")
            return row._replace(
                status=REVOKED, revoked_on=entry.on, revocation_category=entry.category
            )
        if (
            row.status == REVOKED
            and entry is not None
            and (entry.on, entry.category) == (row.revoked_on, row.revocation_category)
        ):
            return row
        self._report(f"certificate {row.number}", "its status is not the signed list's")
        return None

    def _payload_holds(self, verification_id: str, row: RegisterRow, trust: dict[str, Any]) -> bool:
        fields = (
            row.number,
            row.qualification,
            row.subject,
            row.body_code,
            row.issue_date,
            row.masked_name,
        )
        key = (trust["version"], verification_id, row.payload, *fields)
        known = self._verdicts.get(key)
        if known is not None:
            return known
        verdict = verify_signed_payload(verification_id, row.payload, trust)
        claims = verdict.claims
        holds = (
            verdict.valid
            and claims is not None
            and (
                claims.number,
                claims.qualification,
                claims.subject,
                claims.body,
                claims.issue_date,
                claims.masked_name,
            )
            == fields
        )
        if len(self._verdicts) >= VERDICTS_KEPT:
            self._verdicts.clear()
        self._verdicts[key] = holds
        return holds

    def _report(self, what: str, reason: str) -> None:
        """One log line per distinct finding (a flood of lookups writes it once)."""
        if (what, reason) in self._reported:
            return
        if len(self._reported) >= REPORTS_KEPT:
            self._reported.clear()
        self._reported.add((what, reason))
        log.warning("register proof refused: %s: %s", what, reason)
