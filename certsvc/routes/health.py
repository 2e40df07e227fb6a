"""`/healthz` of the full service: is the database reachable, the PKCS#11 module answering, and
does the database's audit log still extend the checkpoint anchored outside it? How many key
certificates and API tokens end within 90, 30 and 7 days (a warning, not a fault: it never
turns the answer to 503). Counts and states only — no token label, serial, key or custodian is
shown to an unauthenticated caller; `certsvc status` names them. How many register changes
wait in the outbox for the relay, and for how long the oldest has (never a 503: the public side
lags, the inside is healthy). A public node answers
`verify.health`'s instead, status only."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from audit.anchor import Anchor
from audit.log import size, tree_root
from audit.publish import latest_checkpoint
from certsvc import state
from certsvc.audit_keys import note_keys, published_size
from certsvc.expiry import THRESHOLDS, counts, expiring
from certsvc.settings import Settings
from common.dbtypes import utcnow
from common.errors import CertsvcError
from signer.models import HsmToken
from verify.outbox import backlog as outbox_backlog

AuditLogState = Literal["ok", "inconsistent", "unanchored"]
WitnessState = Literal["ok", "unwitnessed"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    hsm: Literal["ok", "unavailable"]
    tokens_registered: int
    tokens_present: int
    tokens_locked: int
    audit_log: AuditLogState
    expiring_within_90_days: int
    expiring_within_30_days: int
    expiring_within_7_days: int
    audit_witnesses: WitnessState
    register_outbox_backlog: int
    register_outbox_lag_seconds: int | None


def audit_log_state(db: Session, settings: Settings, anchor: Anchor) -> AuditLogState:
    """`ok` when the database's log extends the anchored checkpoint (or nothing was signed
    yet); `unanchored` when checkpoints were signed but none is anchored (`certsvc init`);
    `inconsistent` when the log no longer extends it, or the anchor cannot be read. Costs a
    handful of stored nodes, whatever the log's size."""
    try:
        if not anchor.exists():
            return "ok" if latest_checkpoint(db) is None else "unanchored"
        anchored = anchor.read(note_keys(db, settings))
        if anchored is None:
            return "unanchored"
        if (
            size(db) >= anchored.size
            and tree_root(db, anchored.size) == anchored.checkpoint.root_hash
        ):
            return "ok"
    except CertsvcError:
        pass
    return "inconsistent"


def witness_state(db: Session, settings: Settings, anchor: Anchor) -> WitnessState:
    """`unwitnessed` when witnesses must cosign (a quorum is set) and the newest anchored
    checkpoint is not published yet: the quorum was not met (or is being asked for)."""
    if settings.audit_witness_quorum == 0:
        return "ok"
    try:
        keys = note_keys(db, settings)
        anchored = anchor.read(keys)
        if anchored is None:
            return "ok"
        published = anchor.published(keys)
    except CertsvcError:
        return "unwitnessed"
    if published is None or published_size(published) < anchored.size:
        return "unwitnessed"
    return "ok"


@router.get(
    "/healthz",
    responses={
        503: {
            "model": Health,
            "description": "the database or the token module fails, or the audit log does not "
            "extend its anchored checkpoint, or fewer witnesses than the quorum cosigned it",
        }
    },
)
def healthz(request: Request, response: Response) -> Health:
    """200 when the database and the token module answer, the audit log extends its anchor and
    its newest checkpoint is witnessed (when a quorum is set); 503, saying which does not,
    else."""
    registered: set[str] = set()
    database: Literal["ok", "unavailable"] = "ok"
    audit_log: AuditLogState = "ok"
    soon = {threshold: 0 for threshold in THRESHOLDS}
    witnesses: WitnessState = "ok"
    backlog: tuple[int, timedelta | None] = (0, None)
    try:
        with state.reader_sessions(request)() as db:
            db.execute(text("SELECT 1"))
            registered = set(db.scalars(select(HsmToken.serial)))
            anchor = state.checkpoint_key(request).anchor
            audit_log = audit_log_state(db, state.settings(request), anchor)
            witnesses = witness_state(db, state.settings(request), anchor)
            soon = counts(expiring(db, utcnow()))
            backlog = outbox_backlog(db)
    except SQLAlchemyError:
        database = "unavailable"
    hsm: Literal["ok", "unavailable"] = "ok"
    present = locked = 0
    try:
        for token in state.tokens(request).statuses():
            if token.serial in registered:
                present += 1
                locked += token.pin_locked
    except (CertsvcError, RuntimeError):
        hsm = "unavailable"
    healthy = database == "ok" and hsm == "ok" and audit_log == "ok" and witnesses == "ok"
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(
        status="ok" if healthy else "degraded",
        database=database,
        hsm=hsm,
        tokens_registered=len(registered),
        tokens_present=present,
        tokens_locked=locked,
        audit_log=audit_log,
        expiring_within_90_days=soon[90],
        expiring_within_30_days=soon[30],
        expiring_within_7_days=soon[7],
        audit_witnesses=witnesses,
        register_outbox_backlog=backlog[0],
        register_outbox_lag_seconds=None if backlog[1] is None else int(backlog[1].total_seconds()),
    )
