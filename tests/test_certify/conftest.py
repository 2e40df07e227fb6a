"""A provisioned body (`certsvc init`) with certify wired as the service wires it: real SoftHSM
USBKeys, the vault, the signer with `CaseRecords` as its records, real database and audit."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import BatchPlan, create_application, create_batch
from certify.checks import RESULTS, CheckOutcome, record_check
from certify.issuance import Issuer
from certify.models import Applicant
from certsvc.accounts import StaffAccount
from certsvc.bootstrap import initialise
from certsvc.cli_demo import open_issuer
from certsvc.db import make_engine, make_sessionmaker
from certsvc.settings import Settings
from signer.actor import Actor
from signer.sessions import SigningSessions
from vault import synthetic
from vault.kinds import Kind

WORKSTATION = "ws-custodian-01"
REGISTRAR = Actor("registrar", 0, "registrar")
OFFICER = Actor("officer", 0, "officer")
OFFICER_2 = Actor("officer-b", 0, "officer")
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

    def applicant(self, seed: int) -> int:
        rng = random.Random(seed)
        vault = self.issuer.vault
        with self.sessions.begin() as db:
            number = synthetic.id_number(rng)
            token = vault.tokenise(db, Kind.ID_NUMBER, [number])[0].token
            name = vault.tokenise(db, Kind.NAME, [synthetic.name(rng)])[0].token
            applicant = Applicant(
                id_number_token=token,
                name_token=name,
                birth_date=date(1990, 1, 1),
                sex="F",
                region_code=number[:6],
            )
            db.add(applicant)
            db.flush()
            return applicant.id

    def case(self, batch_id: int, seed: int, skip: tuple[str, ...] = ()) -> int:
        """An application with every check passed (but those in `skip`)."""
        applicant_id = self.applicant(seed)
        with self.sessions.begin() as db:
            application = create_application(db, REGISTRAR, batch_id, applicant_id, "SS", "02")
            for kind, (_, good) in RESULTS.items():
                if kind not in skip:
                    outcome = CheckOutcome(kind, good, "jszg.edu.cn", f"ref-{kind}", _now())
                    record_check(db, REGISTRAR, application.id, outcome)
            return application.id

    def batch(self, plan: BatchPlan = PLAN) -> int:
        with self.sessions.begin() as db:
            return create_batch(db, OFFICER, plan).id


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def body(settings: Settings) -> Iterator[Body]:
    initialise(settings)
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
