"""Signs audit checkpoints in the background: after N new events, or M seconds after the
first unsigned one. Several workers may race; the checkpoint's size is its key, so one wins.
Each checkpoint covers its own signatures' audit events (the last it holds).

When the database's log no longer extends the anchored checkpoint (rewritten, truncated, an old
backup restored), nothing is signed: the refusal is logged once, as one line, not every tick,
and `/healthz` says the audit log is inconsistent until the log is repaired or re-anchored.

With witnesses configured, a signed checkpoint is published only once enough of them cosigned
it; until then the one published before stays published, the failure is logged once and
recorded as an audit event, and `/healthz` says the log is unwitnessed."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from audit.log import size
from audit.publish import latest_checkpoint
from audit.trail import record
from certsvc.audit_keys import CHECKPOINTER, CheckpointKeyHolder
from certsvc.settings import Settings
from certsvc.witness_client import Witnessing
from common.dbtypes import utcnow
from common.errors import CertsvcError

logger = logging.getLogger(__name__)
POLL_SECONDS = 5.0
WITNESS_QUORUM = "audit.witness.quorum"


class Checkpointer:
    def __init__(
        self, settings: Settings, holder: CheckpointKeyHolder, sessions: sessionmaker[Session]
    ) -> None:
        self._every_events = settings.audit_checkpoint_events
        self._every = timedelta(seconds=settings.audit_checkpoint_seconds)
        self._holder = holder
        self._sessions = sessions
        self._failing: str | None = None
        self._unwitnessed: tuple[tuple[str, str], ...] | None = None
        self._unpublished: str | None = None
        self._tiles_dir = settings.audit_tiles_dir

    def due(self, db: Session) -> bool:
        latest = latest_checkpoint(db)
        if latest is None:
            return True
        grown = size(db) - latest.size
        return grown >= self._every_events or (
            grown > 0 and utcnow() - latest.signed_at >= self._every
        )

    def tick(self) -> None:
        """Sign one checkpoint if one is due, then publish it (witnessed, when witnesses are
        configured); a failure is logged (once while it lasts) and retried next tick."""
        try:
            with self._sessions() as db:
                due = self.due(db)
            if due:
                self._holder.publish(self._sessions, CHECKPOINTER)
        except IntegrityError:
            return  # another worker signed the same size first
        except (CertsvcError, OperationalError) as exc:
            problem = _problem(exc)
            if problem != self._failing:
                logger.error("audit checkpoint not signed: %s", problem)
            self._failing = problem
            return
        if self._failing is not None:
            logger.info("audit checkpoints are signed again")
        self._failing = None
        try:
            self._report(self._holder.witness())
            if self._tiles_dir is not None:
                self._holder.publish_tiles(self._tiles_dir)
        except (CertsvcError, OperationalError) as exc:
            problem = _problem(exc)
            if problem != self._unpublished:
                logger.error("audit checkpoint not published: %s", problem)
            self._unpublished = problem
            return
        self._unpublished = None

    def _report(self, witnessing: Witnessing | None) -> None:
        """Below the quorum: one log line and one audit event (`audit.witness.quorum`, failed)
        while the same witnesses fail the same way; once met again, one line saying so."""
        if witnessing is None:
            return
        if witnessing.met:
            if self._unwitnessed is not None:
                logger.info("audit checkpoints are witnessed and published again")
            self._unwitnessed = None
            return
        key = witnessing.failure_key()
        if key == self._unwitnessed:
            return
        self._unwitnessed = key
        problems = "; ".join(witnessing.problems())
        logger.error(
            "audit checkpoint %d not published: %d of %d witness cosignatures needed (%s); "
            "the checkpoint published before stays published",
            witnessing.size,
            witnessing.cosigned,
            witnessing.quorum,
            problems,
        )
        with self._sessions.begin() as db:
            record(
                db,
                CHECKPOINTER,
                WITNESS_QUORUM,
                f"audit-checkpoint:{witnessing.size}",
                outcome="failed",
                reason=problems,
                details={"cosigned": witnessing.cosigned, "quorum": witnessing.quorum},
            )

    async def run(self) -> None:
        interval = min(POLL_SECONDS, self._every.total_seconds())
        while True:
            await asyncio.to_thread(self.tick)
            await asyncio.sleep(interval)


def _problem(exc: Exception) -> str:
    """What a failed tick logs: our own errors as they say; a database that is busy (SQLite's
    lock) or unreachable by its driver's error class only, never the statement."""
    if isinstance(exc, OperationalError):
        return f"the database is busy or unreachable ({type(exc.orig).__name__})"
    return str(exc)
