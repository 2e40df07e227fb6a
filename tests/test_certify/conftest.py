"""A provisioned body (`certsvc init`) with certify wired as the service wires it: real SoftHSM
USBKeys, the vault, the signer with `CaseRecords` as its records, real database and audit."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import (
    CHINA,
    BatchPlan,
    SlotPlan,
    add_slot,
    book_slot,
    create_application,
    create_batch,
    file_plan,
    get_batch,
    record_attendance,
    record_training,
)
from certify.checks import (
    CRIMINAL_RECORD,
    RESULTS,
    SOURCE_SYSTEMS,
    CheckOutcome,
    PoliceReference,
    record_check,
)
from certify.decisions import OverrideRequest, approve_override, override_deadline
from certify.issuance import Issuer
from certify.models import Applicant, Application, ConfirmationSlot
from certify.workdays import work_calendar
from certsvc.accounts import StaffAccount
from certsvc.cli_demo import open_issuer
from certsvc.db import make_engine, make_sessionmaker
from certsvc.settings import Settings
from init_cache import initialised
from signer.actor import Actor
from signer.sessions import SigningSessions
from vault import synthetic
from vault.kinds import Kind

WORKSTATION = "ws-custodian-01"
REGISTRAR = Actor("registrar", 0, "registrar")
OFFICER = Actor("officer", 0, "officer")
OFFICER_2 = Actor("officer-b", 0, "officer")
# What the electronic comparisons of an eligible 高级中学 applicant find (R0).
FOUND = {"degree": "本科", "mandarin": "二级甲等"}
PLACE = "郑州市金水区政务服务中心三楼教师资格认定窗口"
POLICE = PoliceReference("郑州市公安局金水分局", date(2020, 7, 8))
# 2020 first half, as in the notice: confirmation ends 2020-07-10 (a Friday).
PLAN = BatchPlan(
    name="2020 first half",
    body_code="410000",
    registration_opens=date(2020, 6, 8),
    registration_closes=date(2020, 6, 30),
    confirmation_starts=date(2020, 7, 6),
    confirmation_ends=date(2020, 7, 10),
    closes_on=date(2020, 8, 20),
)


@dataclass
class Body:
    sessions: sessionmaker[Session]
    issuer: Issuer
    signing: SigningSessions
    custodian: Actor
    usbkey: dict[str, str]

    def open(self, key_label: str) -> None:
        self.signing.end(self.usbkey["serial"])
        self.signing.open(
            self.usbkey["serial"], self.usbkey["user_pin"], "custodian", WORKSTATION, key_label
        )

    def applicant(self, seed: int, birth: date = date(1990, 1, 1)) -> int:
        rng = random.Random(seed)
        vault = self.issuer.vault
        with self.sessions.begin() as db:
            number = synthetic.id_number(rng)
            token = vault.tokenise(db, Kind.ID_NUMBER, [number])[0].token
            name = vault.tokenise(db, Kind.NAME, [synthetic.name(rng)])[0].token
            applicant = Applicant(
                id_number_token=token,
                name_token=name,
                birth_date=birth,
            )
            db.add(applicant)
            db.flush()
            return applicant.id

    def case(
        self,
        batch_id: int,
        seed: int,
        skip: tuple[str, ...] = (),
        *,
        found: dict[str, str] | None = None,
        birth: date = date(1990, 1, 1),
        subject: str = "02",
    ) -> int:
        """A 高级中学 application (default: mathematics) filed on registration's first day, booked,
        confirmed on site (unless `skip` holds "attendance") and with every check passed (but
        those in `skip`), the comparisons finding `found` (default `FOUND`)."""
        applicant_id = self.applicant(seed, birth)
        values = FOUND if found is None else found
        with self.sessions.begin() as db:
            filed_on = get_batch(db, batch_id).registration_opens
            application = create_application(
                db, REGISTRAR, batch_id, applicant_id, "SS", subject, filed_on=filed_on
            )
            confirm(db, application.id, attend="attendance" not in skip)
            for kind in RESULTS:
                if kind not in skip:
                    record_check(db, recorder(kind), application.id, passed(kind, values))
            return application.id

    def batch(self, plan: BatchPlan = PLAN, *, plan_filed: bool = True) -> int:
        """A batch with one large slot on its first working day of on-site confirmation, the
        registrar trained for it and (with `plan_filed`) its implementation plan filed."""
        with self.sessions.begin() as db:
            batch = create_batch(db, OFFICER, plan)
            trained_on = plan.confirmation_starts - timedelta(days=3)
            record_training(db, OFFICER, batch.id, REGISTRAR.username, trained_on)
            if plan_filed:
                filed_on = plan.registration_opens - timedelta(days=14)
                file_plan(db, OFFICER, batch.id, filed_on, "豫教资〔2020〕12号")
            calendar = work_calendar(db)
            day = plan.confirmation_starts
            while not calendar.is_workday(day):
                day += timedelta(days=1)
            starts_at = datetime.combine(day, time(9), CHINA)
            add_slot(db, OFFICER, batch.id, SlotPlan(starts_at, PLACE, 10000))
            return batch.id


def _now() -> datetime:
    return datetime.now(UTC)


def confirm(db: Session, application_id: int, *, attend: bool = True) -> None:
    """Book the application into its batch's first slot (made by `Body.batch`) and, with
    `attend`, record that the applicant came."""
    batch_id = db.get_one(Application, application_id).batch_id
    slot = db.scalars(select(ConfirmationSlot).where(ConfirmationSlot.batch_id == batch_id)).first()
    assert slot is not None, "make batches with Body.batch: it adds a slot"
    book_slot(db, REGISTRAR, application_id, slot.id)
    if attend:
        record_attendance(db, REGISTRAR, application_id, slot.starts_at, f"QR{application_id}")


def late_ok(db: Session, application_id: int, reason: str = "test signs long after 2020") -> None:
    """Let a 2020 case be signed today: an officer's deadline override, approved by a second."""
    expires = date.today() + timedelta(days=30)
    override_deadline(db, OFFICER, application_id, OverrideRequest(reason, "other", expires))
    approve_override(db, OFFICER_2, application_id)


def recorder(kind: str) -> Actor:
    """Who records a check of `kind`: an officer the criminal-record check, else a registrar."""
    return OFFICER if kind == CRIMINAL_RECORD else REGISTRAR


def passed(kind: str, found: Mapping[str, str] = FOUND) -> CheckOutcome:
    """A passing attempt at `kind`, from its first source system, finding `found`."""
    _, good = RESULTS[kind]
    police = POLICE if kind == CRIMINAL_RECORD else None
    return CheckOutcome(
        kind, good, SOURCE_SYSTEMS[kind][0], f"ref-{kind}", _now(), found.get(kind), police
    )


@pytest.fixture
def body(settings: Settings) -> Iterator[Body]:
    initialised(settings)
    credentials = json.loads(settings.credentials_file.read_text())
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    issuer = open_issuer(settings, sessions)
    signing = issuer.gate.signing_sessions
    with sessions() as db:
        account = db.scalar(select(StaffAccount).where(StaffAccount.username == "custodian"))
        assert account is not None
        custodian = Actor("custodian", account.id, "custodian", WORKSTATION)
    yield Body(sessions, issuer, signing, custodian, credentials["tokens"]["USBKEY-01"])
    signing.close_all()
    engine.dispose()
