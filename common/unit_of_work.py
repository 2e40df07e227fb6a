"""One unit of work: one transaction, ended in one place — here — and the few writes that must
outlive its rollback.

Domain functions (in `audit`, `certify`, `signer`, `vault`, `verify`) write into the session
they are given and never commit or roll back; whoever opened the unit ends it:

- **A request** is one unit: `certsvc.auth.get_session` runs it in `unit_of_work`, committed
  after the route returns and before the answer is sent, so nothing is answered 2xx that is not
  stored (a commit that fails is `NotStored`, 503).
- **A job** is many units, each atomic: the batch signer (`signer.documents`), signing a
  batch's decisions (`certify.decisions.sign_decisions`), issuing and revoking certificates
  (`certify.issuance`), the applicant import (`certify.applicant_import`) and the vault's key
  rotation (`vault.rotation`) take a sessionmaker, not a request's session, and commit chunk
  by chunk by design: a fault keeps every chunk finished and nothing half-done, and running the
  job again finishes it. A request whose action is a job ends its own unit first
  (`end_before_job`): on SQLite a second writer in the same thread would wait on the first.
- **Writes kept although the unit rolls back** — a refused attempt's audit event, a wrong PIN
  counted, a workstation's nonce used up, a leaked API token revoked — go through `keep`, the
  one side-transaction mechanism: the write is done in the unit at once (a unit that goes on
  commits it with the rest), and when the unit rolls back `unit_of_work` does every kept write
  again, in order, right after the rollback in one transaction of its own. Fail closed: when
  that fails too, `NotRecorded` (503) is raised instead of the unit's own error, so a refusal
  whose record is lost is never answered as if it had been recorded.
- **Effects outside the database** that a unit records (a USBKey logged in) are undone when the
  unit rolls back (`if_rolled_back`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from common.errors import ServiceFault

Write = Callable[[Session], object]
Undo = Callable[[], object]

# Where a unit keeps its state on its session (`Session.info`, SQLAlchemy's slot for this).
_KEPT = "unit_of_work.kept"
_UNDO = "unit_of_work.undo"
_ENDED = "unit_of_work.ended"


class NotStored(ServiceFault):
    """The database refused the unit when it was committed (a constraint checked at commit):
    nothing of the request was stored."""

    def __init__(self) -> None:
        super().__init__("the change could not be stored, so nothing of it was done: try again")


class NotRecorded(ServiceFault):
    """A refused or failed attempt could not be recorded after its action rolled back."""

    def __init__(self) -> None:
        super().__init__(
            "the attempt could not be recorded in the audit log, so nothing was done: try again"
        )


@contextmanager
def unit_of_work(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose one transaction is committed when the block ends, or rolled back when
    it raises — then the kept writes are written on their own and the undos run."""
    with sessions() as db:
        kept: list[Write] = []
        undo: list[Undo] = []
        db.info.update({_KEPT: kept, _UNDO: undo})
        try:
            yield db
            if db.info.get(_ENDED) and db.in_transaction():
                raise RuntimeError(
                    "the unit of work was ended for a job and then used again: a job route "
                    "reads and writes through its job's sessions only"
                )
            _commit(db)
        except BaseException:
            db.rollback()
            try:
                if kept:
                    _write_kept(sessions, kept)
            finally:
                for action in reversed(undo):
                    action()
            raise


def keep(db: Session, write: Write) -> None:
    """Do `write` in `db`'s unit now, and again on its own should the unit roll back."""
    kept: list[Write] | None = db.info.get(_KEPT)
    if kept is None:
        raise RuntimeError(
            "keep() on a session outside a unit of work: nothing would write it after a rollback"
        )
    write(db)
    kept.append(write)


def if_rolled_back(db: Session, undo: Undo) -> None:
    """Run `undo` should `db`'s unit roll back (after the rollback, latest first)."""
    actions: list[Undo] | None = db.info.get(_UNDO)
    if actions is None:
        raise RuntimeError("if_rolled_back() on a session outside a unit of work")
    actions.append(undo)


def end_before_job(db: Session) -> None:
    """Commit `db`'s unit now, for a request whose action is a job that commits units of its
    own: what the request wrote so far (its token's use, its workstation's nonce) is stored,
    and the session must not be used again."""
    _commit(db)
    db.info[_KEPT].clear()
    db.info[_UNDO].clear()
    db.info[_ENDED] = True


def _commit(db: Session) -> None:
    try:
        db.commit()
    except IntegrityError as exc:
        raise NotStored() from exc


def _write_kept(sessions: sessionmaker[Session], kept: list[Write]) -> None:
    try:
        with sessions.begin() as side:
            for write in kept:
                write(side)
    except Exception as exc:
        raise NotRecorded() from exc
