"""Eligibility rules as data (R0): who may hold which qualification, per the Teachers Law, the
Regulations, the Ministry's implementing measures and the province's announcement.

A rule table gives, per qualification type, the minimum degree level and the subjects the type
has; and for all types the Mandarin grade (with higher grades per subject where the province
asks one), the age bounds and the physical examination. Every rule cites its legal source, and
a refusal names the rule and its source. The national minimums ship with the package
(`data/rules-national.toml`); a province loads its announcement's table (`certsvc rules load`),
validated against the national minimums, audited and versioned. A batch keeps the table in
force when it was created, so that a later load never changes the rules of a round under way.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.trail import record
from certify.models import Applicant, Application, Batch, CaseCheck, RuleTableRow
from common.errors import Conflict, InvalidInput, NotFound
from signer.actor import Actor
from verify.codes import QUALIFICATIONS, SUBJECTS

DEGREE_LEVELS = ("高中", "中专", "大专", "本科", "硕士", "博士")
MANDARIN_GRADES = ("三级乙等", "三级甲等", "二级乙等", "二级甲等", "一级乙等", "一级甲等")
NATIONAL_FILE = "rules-national.toml"
NATIONAL_VERSION = 0
MAX_BYTES = 64 * 1024
TEXT_MAX = 200


@dataclass(frozen=True)
class QualificationRules:
    degree: str
    degree_source: str
    subjects: frozenset[str]
    subjects_source: str


@dataclass(frozen=True)
class RoundDates:
    """The province's round (二(二)2, 3): its registration window and the day every case must
    be finished by; the batches of the round are checked against them."""

    registration_opens: date
    registration_closes: date
    closes_on: date
    source: str

    def misfits(self, opens: date, closes: date, closes_on: date) -> str | None:
        """Why a batch's dates fall outside the round (None: they fit)."""
        if opens < self.registration_opens or closes > self.registration_closes:
            return (
                f"registration: outside the province's round ({self.registration_opens} to "
                f"{self.registration_closes}, {self.source})"
            )
        if closes_on > self.closes_on:
            return f"closes_on: after the province's round closes ({self.closes_on}, {self.source})"
        return None


@dataclass(frozen=True)
class CaseFacts:
    """What the case shows, from its records: the values the electronic comparisons found."""

    qualification: str
    subject: str
    age: int
    degree: str | None
    mandarin: str | None
    physical: str | None


@dataclass(frozen=True)
class Unmet:
    """A rule the case does not meet: its name, legal source and what was found."""

    rule: str
    source: str
    found: str

    def __str__(self) -> str:
        return f"rule {self.rule} ({self.source}): {self.found}"


@dataclass(frozen=True)
class RuleTable:
    name: str
    document: str
    age_minimum: int
    age_maximum: int
    age_source: str
    mandarin_minimum: str
    mandarin_source: str
    mandarin_by_subject: Mapping[str, str]
    mandarin_by_subject_source: str
    physical_required: bool
    physical_source: str
    qualifications: Mapping[str, QualificationRules]
    round: RoundDates | None = None

    def unmet(self, facts: CaseFacts) -> list[Unmet]:
        """Every rule `facts` break, in the table's order (empty: eligible)."""
        q = facts.qualification
        rules = self.qualifications.get(q)
        if rules is None:
            return [Unmet(f"{q}", self.document, f"no rules for qualification {q}")]
        wrong_subject = self.subject_unmet(q, facts.subject)
        found = [wrong_subject] if wrong_subject is not None else []
        if facts.degree is None or _rank(DEGREE_LEVELS, facts.degree) < _rank(
            DEGREE_LEVELS, rules.degree
        ):
            found.append(
                Unmet(
                    f"{q}.degree",
                    rules.degree_source,
                    f"degree {facts.degree or 'not on file'}, {rules.degree} or higher needed",
                )
            )
        grade, rule, source = self.mandarin_for(facts.subject)
        if facts.mandarin is None or _rank(MANDARIN_GRADES, facts.mandarin) < _rank(
            MANDARIN_GRADES, grade
        ):
            found.append(
                Unmet(rule, source, f"Mandarin {facts.mandarin or 'not on file'}, {grade} needed")
            )
        if facts.age < self.age_minimum:
            found.append(
                Unmet("age.minimum", self.age_source, f"age {facts.age}, under {self.age_minimum}")
            )
        if facts.age > self.age_maximum:
            found.append(
                Unmet("age.maximum", self.age_source, f"age {facts.age}, over {self.age_maximum}")
            )
        if self.physical_required and facts.physical != "pass":
            found.append(
                Unmet(
                    "physical.required",
                    self.physical_source,
                    f"physical examination {facts.physical or 'not on file'}, pass needed",
                )
            )
        return found

    def subject_unmet(self, qualification: str, subject: str) -> Unmet | None:
        """The subjects rule, when `subject` is not one of the qualification type's."""
        rules = self.qualifications[qualification]
        if subject in rules.subjects:
            return None
        return Unmet(
            f"{qualification}.subjects",
            rules.subjects_source,
            f"subject {subject} ({SUBJECTS.get(subject, ('?', ''))[0]}) is not a subject of "
            f"{QUALIFICATIONS[qualification][0]}",
        )

    def mandarin_for(self, subject: str) -> tuple[str, str, str]:
        """The grade a subject needs, with the rule's name and source."""
        if subject in self.mandarin_by_subject:
            return (
                self.mandarin_by_subject[subject],
                f"mandarin.by_subject.{subject}",
                self.mandarin_by_subject_source,
            )
        return self.mandarin_minimum, "mandarin.minimum", self.mandarin_source

    def as_dict(self) -> dict[str, Any]:
        """The table in the file's shape (what is stored and shown)."""
        return {
            "name": self.name,
            "document": self.document,
            "age": {
                "minimum": self.age_minimum,
                "maximum": self.age_maximum,
                "source": self.age_source,
            },
            "mandarin": {
                "minimum": self.mandarin_minimum,
                "source": self.mandarin_source,
                "by_subject": dict(sorted(self.mandarin_by_subject.items())),
                "by_subject_source": self.mandarin_by_subject_source,
            },
            "physical": {"required": self.physical_required, "source": self.physical_source},
            **(
                {
                    "round": {
                        "registration_opens": self.round.registration_opens.isoformat(),
                        "registration_closes": self.round.registration_closes.isoformat(),
                        "closes_on": self.round.closes_on.isoformat(),
                        "source": self.round.source,
                    }
                }
                if self.round is not None
                else {}
            ),
            "qualifications": {
                code: {
                    "degree": r.degree,
                    "degree_source": r.degree_source,
                    "subjects": sorted(r.subjects),
                    "subjects_source": r.subjects_source,
                }
                for code, r in self.qualifications.items()
            },
        }


def _rank(scale: tuple[str, ...], value: str) -> int:
    return scale.index(value) if value in scale else -1


def parse_table(raw: Mapping[str, Any]) -> RuleTable:
    """A rule table from the file's shape; `InvalidInput` naming the field at fault."""
    age = _section(raw, "age")
    mandarin = _section(raw, "mandarin")
    physical = _section(raw, "physical")
    quals = _section(raw, "qualifications")
    if sorted(quals) != sorted(QUALIFICATIONS):
        raise InvalidInput(f"qualifications: one section each for {', '.join(QUALIFICATIONS)}")
    by_subject = mandarin.get("by_subject", {})
    if not isinstance(by_subject, dict):
        raise InvalidInput("mandarin.by_subject: a table of subject code = grade")
    for code, grade in by_subject.items():
        if code not in SUBJECTS:
            raise InvalidInput(f"mandarin.by_subject.{code}: not a known subject code")
        _one_of(f"mandarin.by_subject.{code}", grade, MANDARIN_GRADES)
    by_subject_source = _text(mandarin, "mandarin", "by_subject_source", required=bool(by_subject))
    table = RuleTable(
        name=_text(raw, "", "name"),
        document=_text(raw, "", "document"),
        age_minimum=_age(age, "minimum"),
        age_maximum=_age(age, "maximum"),
        age_source=_text(age, "age", "source"),
        mandarin_minimum=_one_of("mandarin.minimum", mandarin.get("minimum"), MANDARIN_GRADES),
        mandarin_source=_text(mandarin, "mandarin", "source"),
        mandarin_by_subject=dict(by_subject),
        mandarin_by_subject_source=by_subject_source,
        physical_required=_flag(physical, "physical.required"),
        physical_source=_text(physical, "physical", "source"),
        qualifications={code: _qualification(code, quals[code]) for code in QUALIFICATIONS},
        round=_round(raw.get("round")),
    )
    if table.age_minimum > table.age_maximum:
        raise InvalidInput("age: minimum above maximum")
    return table


def _round(raw: object) -> RoundDates | None:
    """The optional [round] section: the province's dates for this round."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput("round: a [round] section")
    dates = {name: _date(raw, name) for name in ("registration_opens", "registration_closes")}
    closes_on = _date(raw, "closes_on")
    if not dates["registration_opens"] <= dates["registration_closes"] <= closes_on:
        raise InvalidInput("round: registration_opens <= registration_closes <= closes_on")
    return RoundDates(**dates, closes_on=closes_on, source=_text(raw, "round", "source"))


def _date(raw: Mapping[str, Any], name: str) -> date:
    value = raw.get(name)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    elif isinstance(value, date):
        return value
    raise InvalidInput(f"round.{name}: a date, e.g. 2020-06-30")


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: a [{name}] section is needed")
    return value


def _text(raw: Mapping[str, Any], where: str, name: str, *, required: bool = True) -> str:
    value = raw.get(name, "")
    field = f"{where}.{name}" if where else name
    if not isinstance(value, str) or len(value) > TEXT_MAX:
        raise InvalidInput(f"{field}: text of at most {TEXT_MAX} characters")
    if required and not value.strip():
        raise InvalidInput(f"{field}: needed (the legal source: document and article)")
    return value.strip()


def _one_of(field: str, value: object, scale: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in scale:
        raise InvalidInput(f"{field}: one of {' '.join(scale)}")
    return value


def _age(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 100:
        raise InvalidInput(f"age.{name}: whole years, e.g. 18")
    return value


def _flag(raw: Mapping[str, Any], field: str) -> bool:
    value = raw.get(field.rpartition(".")[2])
    if not isinstance(value, bool):
        raise InvalidInput(f"{field}: true or false")
    return value


def _qualification(code: str, raw: object) -> QualificationRules:
    where = f"qualifications.{code}"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: a section is needed")
    subjects = raw.get("subjects")
    if not isinstance(subjects, list) or not subjects:
        raise InvalidInput(f"{where}.subjects: a list of subject codes")
    for subject in subjects:
        if subject not in SUBJECTS:
            raise InvalidInput(f"{where}.subjects: {subject!r} is not a known subject code")
    return QualificationRules(
        degree=_one_of(f"{where}.degree", raw.get("degree"), DEGREE_LEVELS),
        degree_source=_text(raw, where, "degree_source"),
        subjects=frozenset(subjects),
        subjects_source=_text(raw, where, "subjects_source"),
    )


def below_national(table: RuleTable, national: RuleTable) -> list[str]:
    """The fields where `table` asks less than the national minimums (a province may only
    raise them)."""
    lower: list[str] = []
    for code, rules in table.qualifications.items():
        floor = national.qualifications[code].degree
        if _rank(DEGREE_LEVELS, rules.degree) < _rank(DEGREE_LEVELS, floor):
            lower.append(f"qualifications.{code}.degree (national: {floor})")
    floor = national.mandarin_minimum
    if _rank(MANDARIN_GRADES, table.mandarin_minimum) < _rank(MANDARIN_GRADES, floor):
        lower.append(f"mandarin.minimum (national: {floor})")
    for code, grade in table.mandarin_by_subject.items():
        if _rank(MANDARIN_GRADES, grade) < _rank(MANDARIN_GRADES, table.mandarin_minimum):
            lower.append(f"mandarin.by_subject.{code} (below mandarin.minimum)")
    if table.age_minimum < national.age_minimum:
        lower.append(f"age.minimum (national: {national.age_minimum})")
    if table.age_maximum > national.age_maximum:
        lower.append(f"age.maximum (national: {national.age_maximum})")
    if national.physical_required and not table.physical_required:
        lower.append("physical.required (national: true)")
    return lower


def read_table(data: bytes) -> RuleTable:
    """The table a TOML file holds; `InvalidInput` naming the field at fault."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"file: larger than {MAX_BYTES // 1024} KiB")
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInput("file: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"file: not TOML ({exc})") from None
    return parse_table(raw)


@cache
def national_table() -> RuleTable:
    """The national minimums shipped with the package."""
    data = resources.files("certify").joinpath("data", NATIONAL_FILE).read_bytes()
    return read_table(data)


def load_table(db: Session, actor: Actor, data: bytes) -> RuleTableRow:
    """Store a province's table as the next version, in force for batches created from now
    on; refused when it asks less than the national minimums. Audited."""
    table = read_table(data)
    lower = below_national(table, national_table())
    if lower:
        raise InvalidInput(f"file: below the national minimums: {'; '.join(lower)}")
    sha256 = hashlib.sha256(data).hexdigest()
    newest = _newest(db)
    if newest is not None and newest.file_sha256 == sha256:
        raise Conflict(f"file: already in force as version {newest.version}")
    row = RuleTableRow(
        name=table.name[:64],
        document=table.document,
        content=json.dumps(table.as_dict(), ensure_ascii=False, sort_keys=True),
        file_sha256=sha256,
        loaded_by=actor.username,
    )
    db.add(row)
    db.flush()
    record(
        db,
        actor,
        "certify.rules.load",
        f"rules:{row.version}",
        reason=table.document,
        details={"name": row.name, "file_sha256": sha256},
    )
    return row


def _newest(db: Session) -> RuleTableRow | None:
    newest = db.scalar(select(func.max(RuleTableRow.version)))
    return None if newest is None else db.get(RuleTableRow, newest)


def version_in_force(db: Session) -> int:
    """The version new batches take: the newest loaded, else the national minimums (0)."""
    newest = db.scalar(select(func.max(RuleTableRow.version)))
    return NATIONAL_VERSION if newest is None else int(newest)


def table_version(db: Session, version: int) -> RuleTable:
    """Version `version` of the table (0: the national minimums)."""
    if version == NATIONAL_VERSION:
        return national_table()
    row = db.get(RuleTableRow, version)
    if row is None:
        raise NotFound(f"version: no rule table version {version}")
    return parse_table(json.loads(row.content))


def batch_table(db: Session, batch: Batch) -> RuleTable:
    """The table in force for `batch`: the one it took when it was created."""
    return table_version(db, batch.rule_version)


def age_on(birth: date, day: date) -> int:
    """Whole years of age on `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def case_facts(db: Session, application: Application, batch: Batch) -> CaseFacts:
    """The facts the rules look at, from the case's latest checks and the applicant's birth
    date (age on the first day of on-site confirmation)."""
    values: dict[str, tuple[str, str | None]] = {}
    for kind, result, value in db.execute(
        select(CaseCheck.kind, CaseCheck.result, CaseCheck.value)
        .where(CaseCheck.application_id == application.id)
        .order_by(CaseCheck.attempt)
    ):
        values[kind] = (result, value)

    def matched(kind: str) -> str | None:
        result, value = values.get(kind, ("", None))
        return value if result == "match" else None

    birth = db.get_one(Applicant, application.applicant_id).birth_date
    return CaseFacts(
        qualification=application.qualification,
        subject=application.subject,
        age=age_on(birth, batch.confirmation_starts),
        degree=matched("degree"),
        mandarin=matched("mandarin"),
        physical=values.get("physical", ("", None))[0] or None,
    )


def unmet_rules(db: Session, application: Application) -> list[Unmet]:
    """The rules of its batch's table that the case does not meet (empty: eligible)."""
    batch = db.get_one(Batch, application.batch_id)
    return batch_table(db, batch).unmet(case_facts(db, application, batch))


class Ineligible(Conflict):
    """An approval the rule table in force does not allow; names the first rule broken."""

    def __init__(self, unmet: list[Unmet]) -> None:
        self.rule = unmet[0].rule
        super().__init__(f"eligibility: cannot approve, {'; '.join(str(u) for u in unmet)}")

    def public(self) -> dict[str, object]:
        return {**super().public(), "rule": self.rule}
