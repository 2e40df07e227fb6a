"""Signs audit checkpoints in the background: after N new events, or M seconds after the
first unsigned one. Several workers may race; the checkpoint's size is its key, so one wins.
Each checkpoint covers its own signatures' audit events (the last it holds).

When the database's log no longer extends the anchored checkpoint (rewritten, truncated, an old
backup restored), nothing is signed: the refusal is logged once, as one line, not every tick,
and `/healthz` says the audit log is inconsistent until the log is repaired or re-anchored."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from audit.log import size
from audit.publish import latest_checkpoint
from certsvc.audit_keys import CHECKPOINTER, CheckpointKeyHolder
from certsvc.settings import Settings
from common.dbtypes import utcnow
from common.errors import CertsvcError

logger = logging.getLogger(__name__)
POLL_SECONDS = 5.0


class Checkpointer:
    def __init__(
        self, settings: Settings, holder: CheckpointKeyHolder, sessions: sessionmaker[Session]
    ) -> None:
        self._every_events = settings.audit_checkpoint_events
        self._every = timedelta(seconds=settings.audit_checkpoint_seconds)
        self._holder = holder
        self._sessions = sessions
        self._failing: str | None = None

    def due(self, db: Session) -> bool:
        latest = latest_checkpoint(db)
        if latest is None:
            return True
        grown = size(db) - latest.size
        return grown >= self._every_events or (
            grown > 0 and utcnow() - latest.signed_at >= self._every
        )

    def tick(self) -> None:
        """Sign one checkpoint if one is due; a failure is logged (once while it lasts) and
        retried next tick."""
        try:
            with self._sessions() as db:
                if not self.due(db):
                    return
            self._holder.publish(self._sessions, CHECKPOINTER)
        except IntegrityError:
            return  # another worker signed the same size first
        except CertsvcError as exc:
            if str(exc) != self._failing:
                logger.error("audit checkpoint not signed: %s", exc)
            self._failing = str(exc)
            return
        if self._failing is not None:
            logger.info("audit checkpoints are signed again")
        self._failing = None

    async def run(self) -> None:
        interval = min(POLL_SECONDS, self._every.total_seconds())
        while True:
            await asyncio.to_thread(self.tick)
            await asyncio.sleep(interval)
