"""Checks (R1, R2): the outcome of each electronic comparison (identity, degree, Mandarin
certificate, teacher-exam result), the physical examination and the criminal-record check.
Each attempt is a new row — history is kept — and the latest attempt of a kind counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.trail import record
from certify.cases import get_application
from certify.models import CaseCheck
from common.errors import Conflict, InvalidInput
from signer.actor import Actor

CRIMINAL_RECORD = "criminal_record"
# The result each kind allows, and the one that lets a case through.
RESULTS: dict[str, tuple[frozenset[str], str]] = {
    "identity": (frozenset({"match", "mismatch"}), "match"),
    "degree": (frozenset({"match", "mismatch"}), "match"),
    "mandarin": (frozenset({"match", "mismatch"}), "match"),
    "exam": (frozenset({"match", "mismatch"}), "match"),
    "physical": (frozenset({"pass", "fail"}), "pass"),
    CRIMINAL_RECORD: (frozenset({"pending", "clear", "record"}), "clear"),
}

# Who records an attempt: registrars record every check; officers may also record the
# criminal-record check, which the body requests from the police itself.
RECORDER_ROLES: dict[str, frozenset[str]] = {
    kind: frozenset({"registrar", "officer"} if kind == CRIMINAL_RECORD else {"registrar"})
    for kind in RESULTS
}


@dataclass(frozen=True)
class CheckOutcome:
    kind: str
    result: str
    source_system: str
    reference: str
    checked_at: datetime


def record_check(db: Session, actor: Actor, application_id: int, outcome: CheckOutcome) -> int:
    """Record one attempt; returns its attempt number. A reference, never a document copy."""
    if outcome.kind not in RESULTS:
        raise InvalidInput(f"kind: one of {', '.join(RESULTS)}")
    if actor.role not in RECORDER_ROLES[outcome.kind]:
        raise Conflict(f"kind: a {actor.role} may not record the {outcome.kind} check")
    allowed, _ = RESULTS[outcome.kind]
    if outcome.result not in allowed:
        raise InvalidInput(f"result: for {outcome.kind}, one of {', '.join(sorted(allowed))}")
    if not outcome.source_system.strip() or not outcome.reference.strip():
        raise InvalidInput("source_system, reference: both needed (where and which comparison)")
    get_application(db, application_id)
    attempt = 1 + (
        db.scalar(
            select(func.max(CaseCheck.attempt)).where(
                CaseCheck.application_id == application_id, CaseCheck.kind == outcome.kind
            )
        )
        or 0
    )
    db.add(
        CaseCheck(
            application_id=application_id,
            kind=outcome.kind,
            attempt=attempt,
            result=outcome.result,
            source_system=outcome.source_system[:64],
            reference=outcome.reference[:64],
            checked_at=outcome.checked_at,
            recorded_by=actor.username,
        )
    )
    db.flush()
    record(
        db,
        actor,
        "certify.check.record",
        f"application:{application_id}",
        details={"kind": outcome.kind, "attempt": attempt, "result": outcome.result},
    )
    return attempt


def latest_results(db: Session, application_id: int) -> dict[str, str]:
    """kind → result of its latest attempt."""
    rows = db.execute(
        select(CaseCheck.kind, CaseCheck.result)
        .where(CaseCheck.application_id == application_id)
        .order_by(CaseCheck.attempt)
    )
    return {kind: result for kind, result in rows}


def missing_for_approval(results: dict[str, str]) -> list[str]:
    """The kinds whose latest result does not let an approval through."""
    return [kind for kind, (_, good) in RESULTS.items() if results.get(kind) != good]


def history(db: Session, application_id: int) -> list[CaseCheck]:
    return list(
        db.scalars(
            select(CaseCheck)
            .where(CaseCheck.application_id == application_id)
            .order_by(CaseCheck.kind, CaseCheck.attempt)
        )
    )
