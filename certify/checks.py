"""Checks (R1, R2): the outcome of each electronic comparison (identity, degree, Mandarin
certificate, teacher-exam result), the physical examination and the criminal-record check.
Each attempt is a new row — history is kept — and the latest attempt of a kind counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.trail import record
from certify.cases import get_application
from certify.eligibility import DEGREE_LEVELS, MANDARIN_GRADES
from certify.models import CaseCheck
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor
from signer.second_person import Approval, Party, approve_as_second

CRIMINAL_RECORD = "criminal_record"
VALUE_MAX = 32
# The kinds whose match must say what was found, on the eligibility rules' scale.
VALUE_SCALES: dict[str, tuple[str, ...]] = {"degree": DEGREE_LEVELS, "mandarin": MANDARIN_GRADES}
# The result each kind allows, and the one that lets a case through.
RESULTS: dict[str, tuple[frozenset[str], str]] = {
    "identity": (frozenset({"match", "mismatch"}), "match"),
    "degree": (frozenset({"match", "mismatch"}), "match"),
    "mandarin": (frozenset({"match", "mismatch"}), "match"),
    "exam": (frozenset({"match", "mismatch"}), "match"),
    "physical": (frozenset({"pass", "fail"}), "pass"),
    CRIMINAL_RECORD: (frozenset({"pending", "clear", "record"}), "clear"),
}

# Where each kind's outcome comes from: the national system's electronic comparisons (R1), the
# degree registries, the Mandarin and exam authorities, the designated hospital, the police.
SOURCE_SYSTEMS: dict[str, tuple[str, ...]] = {
    "identity": ("jszg.edu.cn",),
    "degree": ("jszg.edu.cn", "chsi.com.cn", "cdgdc.edu.cn"),
    "mandarin": ("jszg.edu.cn", "cltt.org"),
    "exam": ("jszg.edu.cn", "ntce.neea.edu.cn"),
    "physical": ("jszg.edu.cn", "hospital"),
    CRIMINAL_RECORD: ("gongan",),
}

# Who records an attempt: registrars the comparisons and the examination; only officers the
# criminal-record check (R2), which the body requests from the police itself.
RECORDER_ROLES: dict[str, frozenset[str]] = {
    kind: frozenset({"officer"} if kind == CRIMINAL_RECORD else {"registrar"}) for kind in RESULTS
}
POLICE_UNIT_MAX = 100
REASON_MIN = 10
NOT_CLEAR = "record"


@dataclass(frozen=True)
class PoliceReference:
    """The police's answer, as the body received it: the issuing unit, its reference number
    (the check's `reference`) and the date it was issued (none while pending)."""

    unit: str
    issued_on: date | None


@dataclass(frozen=True)
class CheckOutcome:
    kind: str
    result: str
    source_system: str
    reference: str
    checked_at: datetime
    value: str | None = None
    police: PoliceReference | None = None


def record_check(db: Session, actor: Actor, application_id: int, outcome: CheckOutcome) -> int:
    """Record one attempt; returns its attempt number. A reference, never a document copy."""
    if outcome.kind not in RESULTS:
        raise InvalidInput(f"kind: one of {', '.join(RESULTS)}")
    if actor.role not in RECORDER_ROLES[outcome.kind]:
        raise Conflict(f"kind: a {actor.role} may not record the {outcome.kind} check")
    allowed, _ = RESULTS[outcome.kind]
    if outcome.result not in allowed:
        raise InvalidInput(f"result: for {outcome.kind}, one of {', '.join(sorted(allowed))}")
    if outcome.source_system not in SOURCE_SYSTEMS[outcome.kind]:
        systems = ", ".join(SOURCE_SYSTEMS[outcome.kind])
        raise InvalidInput(f"source_system: for {outcome.kind}, one of {systems}")
    if not outcome.reference.strip():
        raise InvalidInput("reference: needed (which comparison, or the police's number)")
    value = _value(outcome)
    police = _police(outcome)
    get_application(db, application_id)
    previous = db.scalar(
        select(CaseCheck)
        .where(CaseCheck.application_id == application_id, CaseCheck.kind == outcome.kind)
        .order_by(CaseCheck.attempt.desc())
        .limit(1)
    )
    attempt = 1 + (previous.attempt if previous is not None else 0)
    # R2: a finished result that is not clear stands until a second officer approves its
    # replacement; the replaced result is kept on the new attempt, and carried over by any
    # attempt after an unapproved replacement (one more attempt does not wash it out).
    pending_approval = (
        previous is not None
        and previous.replaces_result is not None
        and previous.approved_by is None
    )
    replaces = (
        NOT_CLEAR
        if outcome.kind == CRIMINAL_RECORD
        and previous is not None
        and (previous.result == NOT_CLEAR or pending_approval)
        and outcome.result != NOT_CLEAR
        else None
    )
    db.add(
        CaseCheck(
            application_id=application_id,
            kind=outcome.kind,
            attempt=attempt,
            result=outcome.result,
            value=value,
            source_system=outcome.source_system,
            reference=outcome.reference[:64],
            police_unit=police.unit if police else None,
            police_issued_on=police.issued_on if police else None,
            replaces_result=replaces,
            checked_at=outcome.checked_at,
            recorded_by=actor.username,
            recorded_person=actor.person,
        )
    )
    db.flush()
    record(
        db,
        actor,
        "certify.check.record",
        f"application:{application_id}",
        details={
            "kind": outcome.kind,
            "attempt": attempt,
            "result": outcome.result,
            "value": value,
            "replaces": replaces,
        },
    )
    return attempt


def _police(outcome: CheckOutcome) -> PoliceReference | None:
    """The criminal-record check's structured reference, checked; None for other kinds."""
    if outcome.kind != CRIMINAL_RECORD:
        if outcome.police is not None:
            raise InvalidInput("police_unit: only for the criminal-record check")
        return None
    police = outcome.police
    if police is None or not police.unit.strip() or len(police.unit) > POLICE_UNIT_MAX:
        raise InvalidInput(
            f"police_unit: the issuing police unit (at most {POLICE_UNIT_MAX} characters), "
            f"e.g. 郑州市公安局金水分局"
        )
    if outcome.result != "pending" and police.issued_on is None:
        raise InvalidInput("police_issued_on: the date the police issued the result")
    if police.issued_on is not None and police.issued_on > outcome.checked_at.date():
        raise InvalidInput("police_issued_on: after checked_at")
    return PoliceReference(police.unit.strip(), police.issued_on)


def approve_replacement(
    db: Session, actor: Actor, application_id: int, attempt: int, reason: str
) -> None:
    """R2: a second officer (not the one who recorded it) lets a criminal-record attempt that
    replaced a non-clear result count. Audited with the reason."""
    if len(reason.strip()) < REASON_MIN:
        raise InvalidInput(f"reason: at least {REASON_MIN} characters")
    get_application(db, application_id)
    row = db.scalar(
        select(CaseCheck).where(
            CaseCheck.application_id == application_id,
            CaseCheck.kind == CRIMINAL_RECORD,
            CaseCheck.attempt == attempt,
        )
    )
    if row is None:
        raise NotFound(f"attempt: no criminal-record attempt {attempt} on this application")
    if row.replaces_result is None:
        raise Conflict(f"attempt: attempt {attempt} replaced no result that needs approval")
    approve_as_second(
        db,
        actor,
        Approval(
            f"attempt: criminal-record attempt {attempt}",
            [Party(row.recorded_by, "recorded it", row.recorded_person)],
            "certify.check.approve_replacement",
            f"application:{application_id}",
            approved_by=row.approved_by,
            reason=reason,
            details={"attempt": attempt, "replaces": row.replaces_result, "result": row.result},
        ),
    )
    row.approved_by, row.approved_at = actor.username, utcnow()


def unapproved_replacement(db: Session, application_id: int) -> str | None:
    """Why the criminal-record check does not count yet: its latest attempt replaced a
    non-clear result without a second officer's approval (None: nothing pending)."""
    latest = db.scalar(
        select(CaseCheck)
        .where(CaseCheck.application_id == application_id, CaseCheck.kind == CRIMINAL_RECORD)
        .order_by(CaseCheck.attempt.desc())
        .limit(1)
    )
    if latest is None or latest.replaces_result is None or latest.approved_by is not None:
        return None
    return (
        f"R2: criminal-record attempt {latest.attempt} by {latest.recorded_by} replaced a "
        f"{latest.replaces_result!r} result without a second officer's approval"
    )


def _value(outcome: CheckOutcome) -> str | None:
    """The value found, checked: a degree or Mandarin match says which level or grade."""
    value = (outcome.value or "").strip() or None
    scale = VALUE_SCALES.get(outcome.kind)
    needed = value is not None or outcome.result == "match"
    if scale is not None and needed and value not in scale:
        raise InvalidInput(
            f"value: the {outcome.kind} found by the comparison, one of {' '.join(scale)}"
        )
    if value is not None and len(value) > VALUE_MAX:
        raise InvalidInput(f"value: at most {VALUE_MAX} characters")
    return value


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
