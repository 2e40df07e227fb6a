"""The security officer's view of the audit log; for everyone, its newest checkpoint (the one
anchored outside the database, not a row its administrator could change) and the vkeys that
verify it."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import PlainTextResponse, Response
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.events import decode_leaf
from audit.log import consistency_proof, inclusion_proof, size
from audit.models import AuditCheckpoint
from audit.publish import latest_checkpoint
from audit.query import EventFilter, alerts, key_usage, query_events
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.alert_policy import alert_policy
from certsvc.audit_keys import export_bundle, published_vkeys
from certsvc.audit_trail import actor_of
from certsvc.auth import JobSessionsDep, SessionDep, SettingsDep, require_roles
from certsvc.routes.schemas import ROLE_GATED, answers
from common.errors import InvalidInput, NotFound
from common.unit_of_work import unit_of_work
from signer.custody import find_token
from verify.published import AUDIT_CHECKPOINT_PATH, CHECKPOINT_CACHE, TEXT, cached

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ROLE_GATED)
public_router = APIRouter(tags=["audit"])
OfficerDep = Annotated[StaffAccount, Depends(require_roles(Role.SECURITY_OFFICER))]
# A time without a zone names no instant: refused (422) rather than guessed.
ZonedTime = Annotated[
    AwareDatetime | None,
    Query(description="ISO 8601 with a zone, e.g. 2026-12-01T00:00:00+08:00"),
]


class EventOut(BaseModel):
    index: int
    occurred_at: datetime
    event: dict[str, Any]


class EventPage(BaseModel):
    events: list[EventOut]
    next_after: int | None


class CheckpointOut(BaseModel):
    size: int
    signed_at: datetime
    note: str


class ProofOut(BaseModel):
    index: int | None = None
    old_size: int | None = None
    tree_size: int
    hashes: list[str]


class KeyUsageOut(BaseModel):
    object: str
    signatures_per_day: dict[str, int]
    refused: int
    sessions: int
    pin_failures: int
    refused_per_day: dict[str, dict[str, int]]


@router.get("/events")
def get_events(
    _: OfficerDep,
    db: SessionDep,
    actor: str | None = None,
    action: str | None = None,
    object: str | None = Query(
        default=None,
        description="what an event is about; a USBKey's label or serial finds its keys, "
        "sessions and custody",
    ),
    outcome: str | None = None,
    since: ZonedTime = None,
    until: ZonedTime = None,
    after: int = Query(default=-1, ge=-1, description="index of the last event already seen"),
    limit: int = Query(default=100, ge=1, le=500),
) -> EventPage:
    """Events in log order, filtered, a page at a time."""
    objects = log_names(db, object) if object else ()
    where = EventFilter(actor, action, objects, outcome, since, until)
    rows = query_events(db, where, after, limit)
    return EventPage(
        events=[
            EventOut(index=r.idx, occurred_at=r.occurred_at, event=decode_leaf(r.leaf))
            for r in rows
        ],
        next_after=rows[-1].idx if len(rows) == limit else None,
    )


def log_names(db: Session, name: str) -> tuple[str, ...]:
    """`name` and, when it is a USBKey's label or serial, what the log calls that USBKey: its
    serial (enrolment; its keys as `SERIAL/label`) and `token:SERIAL` (sessions, custody)."""
    try:
        serial = find_token(db, name).serial
    except NotFound:
        return (name,)
    return (name, serial, f"token:{serial}")


@router.get("/events/{index}/proof")
def get_inclusion_proof(
    index: int, _: OfficerDep, db: SessionDep, tree_size: int | None = None
) -> ProofOut:
    """Inclusion proof of one event in the tree of `tree_size` (default: newest checkpoint)."""
    target = tree_size if tree_size is not None else _checkpointed_size(db)
    if not 0 <= index < target <= size(db):
        raise InvalidInput("index: must be inside the tree of tree_size events")
    hashes = inclusion_proof(db, index, target)
    return ProofOut(index=index, tree_size=target, hashes=[_b64(h) for h in hashes])


@router.get("/consistency")
def get_consistency_proof(old_size: int, tree_size: int, _: OfficerDep, db: SessionDep) -> ProofOut:
    """Proof that the tree of `old_size` is a prefix of the tree of `tree_size`."""
    if not 0 < old_size <= tree_size <= size(db):
        raise InvalidInput("old_size: need 0 < old_size <= tree_size <= log size")
    hashes = consistency_proof(db, old_size, tree_size)
    return ProofOut(old_size=old_size, tree_size=tree_size, hashes=[_b64(h) for h in hashes])


@router.get("/checkpoints")
def get_checkpoints(_: OfficerDep, db: SessionDep) -> list[CheckpointOut]:
    """The newest signed checkpoints, newest first."""
    rows = db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(100))
    return [CheckpointOut(size=r.size, signed_at=r.signed_at, note=r.note) for r in rows]


@router.post("/checkpoints", status_code=status.HTTP_201_CREATED, responses=answers(409, 423))
def post_checkpoint(
    request: Request, account: OfficerDep, sessions: JobSessionsDep
) -> CheckpointOut:
    """Sign a checkpoint for the log as it is now, through the signing gate (its event names
    the security officer who asked), in a unit of its own, then anchor it and publish it (once
    the witness quorum cosigned it, when witnesses are configured)."""
    holder = state.checkpoint_key(request)
    signed = holder.publish(sessions, actor_of(account)).row
    holder.witness()
    return CheckpointOut(size=signed.size, signed_at=signed.signed_at, note=signed.note)


@router.get("/report/keys")
def get_key_usage(
    _: OfficerDep, db: SessionDep, since: ZonedTime = None, until: ZonedTime = None
) -> list[KeyUsageOut]:
    """Per key (`<token>/<label>`) and token: signatures per day, refused attempts (and per
    day by the rule that refused), sessions, wrong PINs."""
    return [KeyUsageOut(**vars(usage)) for usage in key_usage(db, since, until)]


@router.get("/report/alerts")
def get_alerts(
    _: OfficerDep,
    db: SessionDep,
    settings: SettingsDep,
    since: ZonedTime = None,
    until: ZonedTime = None,
) -> list[EventOut]:
    """Events to act on, oldest first: security alerts (many lookup misses by one person),
    privileges refused for want of a grant event, certificates nearing expiry, checkpoint or
    witness failures, a locked or removed token, custodians' signatures outside office hours
    (`CERTSVC_OFFICE_HOURS_START`/`_END`, China time, on the work calendar's working days), a
    person's reveals in a day reaching `CERTSVC_REVEAL_SPIKE`."""
    return [
        EventOut(index=row.idx, occurred_at=row.occurred_at, event=decode_leaf(row.leaf))
        for row in alerts(db, since, until, alert_policy(db, settings))
    ]


@router.get("/export", responses=answers(409))
def get_export(
    account: OfficerDep,
    settings: SettingsDep,
    sessions: JobSessionsDep,
    since: ZonedTime = None,
    until: ZonedTime = None,
) -> dict[str, Any]:
    """A self-contained bundle for an outside auditor (`certsvc audit verify-bundle`); the
    export is audited (`audit.export`), in the writer unit the bundle is read in."""
    with unit_of_work(sessions) as db:
        return export_bundle(db, settings, actor_of(account), since, until)


@public_router.get(
    AUDIT_CHECKPOINT_PATH,
    response_class=PlainTextResponse,
    responses={**answers(404, 503), 304: {"description": "the client's copy is current"}},
)
def get_latest_checkpoint(request: Request) -> Response:
    """The published checkpoint note (C2SP signed note), read from the anchor outside the
    database: the newest anchored checkpoint that met the witness quorum, with the witnesses'
    cosignatures (`cosignature/v1` lines). Keep copies, and a rewritten history shows. When the
    database's log stops extending it, or witnesses refuse a newer one, it stays the one
    served."""
    note = state.checkpoint_key(request).public_note()
    if note is None:
        raise NotFound("no checkpoint has been published yet")
    return cached(request, note.encode(), TEXT, CHECKPOINT_CACHE)


@public_router.get(
    "/.well-known/certsvc/audit-vkeys",
    response_class=PlainTextResponse,
    responses=answers(503),
)
def get_vkeys(db: SessionDep, settings: SettingsDep) -> PlainTextResponse:
    """The verifier keys (C2SP vkeys, `<name>+<key ID>+<base64 key>`) of the keys that sign
    checkpoints now, one a line: Ed25519 (0x01) first, then ECDSA P-256 (0x02). A new key is
    announced in the log itself, vouched for by the keys before it."""
    text = "".join(f"{vkey}\n" for vkey in published_vkeys(db, settings))
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")


def _checkpointed_size(db: SessionDep) -> int:
    latest = latest_checkpoint(db)
    return latest.size if latest is not None else size(db)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
