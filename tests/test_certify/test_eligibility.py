"""R0: eligibility rules as data. The approvals the notice forbids are refused at intake, at
approval and at signing, each naming the rule and its legal source; the checks keep the
values the comparisons found; a province's table loads validated, audited and versioned."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from certify.cases import BatchPlan, create_application, create_batch
from certify.checks import RESULTS, history, record_check
from certify.decisions import decide, sign_decisions
from certify.eligibility import (
    NATIONAL_FILE,
    Ineligible,
    load_table,
    national_table,
    read_table,
    table_version,
    version_in_force,
)
from certify.models import Application, Batch, Decision
from certsvc.settings import Settings
from common.errors import Conflict, InvalidInput
from test_certify.conftest import OFFICER, PLAN, REGISTRAR, Body, confirm, late_ok, passed, recorder

CERTSVC = str(Path(__file__).parents[2] / ".venv" / "bin" / "certsvc")
NATIONAL = (Path(__file__).parents[2] / "certify" / "data" / NATIONAL_FILE).read_text()
# A province raising 语文 (subject 01) to 二级甲等, as provincial announcements do.
PROVINCE = NATIONAL.replace('name = "national minimums"', 'name = "河南 2020 上半年"').replace(
    'by_subject = {}\nby_subject_source = ""',
    'by_subject = { "01" = "二级甲等" }\n'
    'by_subject_source = "河南省2020年上半年中小学教师资格认定公告 第二条"',
)


def _direct_case(body: Body, batch_id: int, qualification: str, subject: str, seed: int) -> int:
    """A case written straight into the table (as an old row or a database administrator
    might), past intake's subject check, with every check passed."""
    applicant_id = body.applicant(seed)
    with body.sessions.begin() as db:
        application = Application(
            batch_id=batch_id,
            applicant_id=applicant_id,
            qualification=qualification,
            subject=subject,
            created_by="dba",
        )
        db.add(application)
        db.flush()
        confirm(db, application.id)
        for kind in RESULTS:
            record_check(db, recorder(kind), application.id, passed(kind))
        return application.id


@pytest.mark.parametrize(
    ("qualification", "subject", "rule"),
    [("SS", "00", "SS.subjects"), ("KG", "04", "KG.subjects")],
)
def test_a_subject_the_type_does_not_have_is_refused_at_every_step(
    body: Body, qualification: str, subject: str, rule: str
) -> None:
    batch_id = body.batch()
    with body.sessions.begin() as db, pytest.raises(Ineligible, match=rule) as refused:
        create_application(
            db,
            REGISTRAR,
            batch_id,
            body.applicant(50),
            qualification,
            subject,
            filed_on=PLAN.registration_opens,
        )
    assert refused.value.public()["rule"] == rule
    assert "《教师资格条例》第四条" in str(refused.value)

    application_id = _direct_case(body, batch_id, qualification, subject, 51)
    with body.sessions.begin() as db, pytest.raises(Ineligible, match=rule):
        decide(db, OFFICER, application_id, "approve", "all checks passed")

    with body.sessions.begin() as db:  # an approval written past `decide`
        db.add(
            Decision(application_id=application_id, outcome="approve", reasons="x", decided_by="o")
        )
        late_ok(db, application_id)
    body.open("decision-1")
    report = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert report.signed == []
    assert [r.rule for r in report.refused] == ["eligibility"]
    assert rule in report.refused[0].message


@pytest.mark.parametrize(
    ("birth", "rule"), [(date(2010, 1, 1), "age.minimum"), (date(1950, 1, 1), "age.maximum")]
)
def test_applicants_aged_10_and_70_are_refused(body: Body, birth: date, rule: str) -> None:
    batch_id = body.batch()
    application_id = body.case(batch_id, 60, birth=birth)
    with body.sessions.begin() as db, pytest.raises(Ineligible, match=rule) as refused:
        decide(db, OFFICER, application_id, "approve", "all checks passed")
    assert refused.value.rule == rule
    with body.sessions.begin() as db:  # a refusal stays possible
        decide(db, OFFICER, application_id, "refuse", "age outside the rules")


def test_degree_and_mandarin_values_are_recorded_and_judged(body: Body) -> None:
    batch_id = body.batch()
    short = body.case(batch_id, 70, found={"degree": "大专", "mandarin": "三级甲等"})
    with body.sessions() as db:
        found = {c.kind: c.value for c in history(db, short)}
        assert found["degree"] == "大专" and found["mandarin"] == "三级甲等"
    with body.sessions.begin() as db, pytest.raises(Ineligible) as refused:
        decide(db, OFFICER, short, "approve", "all checks passed")
    message = str(refused.value)
    assert "SS.degree" in message and "大专" in message and "本科" in message
    assert "mandarin.minimum" in message and "二级乙等" in message

    with body.sessions.begin() as db:
        for kind in ("degree", "mandarin"):
            with pytest.raises(InvalidInput, match="value"):  # a match must say what it found
                record_check(db, REGISTRAR, short, replace(passed(kind), value=None))
        with pytest.raises(InvalidInput, match="value"):
            record_check(
                db,
                REGISTRAR,
                short,
                replace(passed("degree"), value="大学"),
            )


def test_a_province_table_raises_a_subject_and_binds_only_later_batches(
    body: Body, settings: Settings
) -> None:
    earlier = body.batch()
    actor = OFFICER
    with body.sessions.begin() as db:
        row = load_table(db, actor, PROVINCE.encode())
        assert row.version == 1 and version_in_force(db) == 1
        with pytest.raises(Conflict, match="already in force"):
            load_table(db, actor, PROVINCE.encode())
        event = db.scalar(select(AuditEventRow).where(AuditEventRow.action == "certify.rules.load"))
        assert event is not None
    later = body.batch(BatchPlan(**{**PLAN.__dict__, "name": "after the province's table"}))
    with body.sessions() as db:
        assert db.get_one(Batch, earlier).rule_version == 0
        assert db.get_one(Batch, later).rule_version == 1
        assert table_version(db, 1).mandarin_for("01")[0] == "二级甲等"

    plain = {"degree": "本科", "mandarin": "二级乙等"}
    for batch_id, allowed in ((earlier, True), (later, False)):
        application_id = body.case(batch_id, 80 + batch_id, found=plain, subject="01")
        with body.sessions.begin() as db:
            if allowed:
                decide(db, OFFICER, application_id, "approve", "national table: 二级乙等 is enough")
            else:
                with pytest.raises(Ineligible, match=r"mandarin\.by_subject\.01 \(河南省"):
                    decide(db, OFFICER, application_id, "approve", "all checks passed")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('degree = "本科"', 'degree = "大专"'),
            "below the national minimums: qualifications.SS.degree",
        ),
        (('minimum = "二级乙等"', 'minimum = "三级甲等"'), "mandarin.minimum"),
        (("minimum = 18", "minimum = 10"), "age.minimum"),
        (("maximum = 60", "maximum = 70"), "age.maximum"),
        (("required = true", "required = false"), "physical.required"),
    ],
)
def test_a_province_table_below_the_national_minimums_is_refused(
    session: Session, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_table(session, OFFICER, NATIONAL.replace(*change, 1).encode())
    assert (
        session.scalar(select(AuditEventRow).where(AuditEventRow.action == "certify.rules.load"))
        is None
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('subjects_source = "《教师资格条例》第四条"', 'subjects_source = ""'),
            "qualifications.KG.subjects_source: needed",
        ),
        (('subjects = ["00"]', 'subjects = ["99"]'), "qualifications.KG.subjects: '99'"),
        (('degree = "中专"', 'degree = "大学"'), "qualifications.KG.degree: one of"),
        (("[qualifications.VP]", "[qualifications.XX]"), "qualifications: one section each"),
        (
            ("by_subject = {}", 'by_subject = { "01" = "二级甲等" }'),
            "mandarin.by_subject_source: needed",
        ),
        (("name = ", "name = = "), "file: not TOML"),
    ],
)
def test_a_malformed_table_is_refused_naming_the_field(
    change: tuple[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_table(NATIONAL.replace(*change, 1).encode())


def test_the_national_table_cites_a_source_for_every_rule() -> None:
    table = national_table()
    assert table.mandarin_minimum == "二级乙等"
    assert table.qualifications["SS"].degree == "本科"
    assert all(r.degree_source and r.subjects_source for r in table.qualifications.values())
    assert table.age_source and table.physical_source and table.mandarin_source


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_rules_commands(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    env = {**dict(__import__("os").environ), "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CERTSVC, "rules", *args], capture_output=True, text=True, check=False, env=env
        )

    national = run("show")
    assert national.returncode == 0, national.stderr
    assert "national minimums" in national.stdout and "SS.degree" in national.stdout
    province = tmp_path / "henan.toml"
    province.write_text(PROVINCE)
    loaded = run("load", str(province))
    assert loaded.returncode == 0, loaded.stderr
    assert "version 1" in loaded.stdout
    shown = run("show")
    assert "version 1" in shown.stdout and "mandarin.by_subject.01" in shown.stdout
    bad = tmp_path / "low.toml"
    bad.write_text(NATIONAL.replace("minimum = 18", "minimum = 10"))
    refused = run("load", str(bad))
    assert refused.returncode != 0 and "age.minimum" in refused.stderr
    assert "national minimums" in run("show", "--version", "0").stdout
    with sessions() as db:
        assert version_in_force(db) == 1


def test_a_provinces_round_dates_bind_the_batches_created_under_it(body: Body) -> None:
    rounded = PROVINCE + (
        "\n[round]\nregistration_opens = 2020-06-08\nregistration_closes = 2020-06-30\n"
        'closes_on = 2020-08-20\nsource = "教办师〔2020〕81号 二(二)2、3"\n'
    )
    with body.sessions.begin() as db:
        load_table(db, OFFICER, rounded.encode())
    with body.sessions.begin() as db:
        for change, message in (
            ({"closes_on": date(2020, 8, 21)}, r"closes_on: after the province's round"),
            ({"registration_closes": date(2020, 7, 1)}, "registration: outside the province's"),
            ({"registration_opens": date(2020, 6, 1)}, "registration: outside the province's"),
        ):
            with pytest.raises(InvalidInput, match=message):
                create_batch(db, OFFICER, replace(PLAN, **change))
        assert create_batch(db, OFFICER, PLAN).rule_version == 1
    with body.sessions() as db:
        shown = table_version(db, 1).round
        assert shown is not None and shown.closes_on == date(2020, 8, 20)
    with pytest.raises(InvalidInput, match="round: registration_opens <= registration_closes"):
        read_table(rounded.replace("closes_on = 2020-08-20", "closes_on = 2020-06-20").encode())
