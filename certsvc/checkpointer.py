"""Signs audit checkpoints in the background: after N new events, or M seconds after the
first unsigned one. Several workers may race; the checkpoint's size is its key, so one wins.
Each checkpoint covers its own signature's audit event (the last it holds)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from audit.log import size
from audit.publish import latest_checkpoint, publish_checkpoint
from certsvc.audit_keys import CHECKPOINTER, CheckpointKeyHolder
from certsvc.settings import Settings
from common.dbtypes import utcnow
from common.errors import CertsvcError
from signer.gate import signing_transaction

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

    def due(self, db: Session) -> bool:
        latest = latest_checkpoint(db)
        if latest is None:
            return True
        grown = size(db) - latest.size
        return grown >= self._every_events or (
            grown > 0 and utcnow() - latest.signed_at >= self._every
        )

    def tick(self) -> None:
        """Sign one checkpoint if one is due; a failure is logged and retried next tick."""
        try:
            with self._sessions() as db:
                if not self.due(db):
                    return
            self._holder.unlock()
            with signing_transaction(self._sessions) as unit:
                publish_checkpoint(unit.db, self._holder.signer(unit, CHECKPOINTER))
        except IntegrityError:
            pass  # another worker signed the same size first
        except CertsvcError as exc:
            logger.error("audit checkpoint not signed: %s", exc)

    async def run(self) -> None:
        interval = min(POLL_SECONDS, self._every.total_seconds())
        while True:
            await asyncio.to_thread(self.tick)
            await asyncio.sleep(interval)
