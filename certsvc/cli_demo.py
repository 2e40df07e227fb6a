"""`certsvc demo --out DIR`: a full certification round on synthetic applicants — intake,
checks, decisions, signing, issue, one revocation — on the demo body that `certsvc init`
provisions, writing `DIR/manifest.json` and one QR PNG per certificate.

The batch has fixed dates in 2026 (the holiday calendar must cover the deadline's year), so
its decision deadline has passed: an officer asks an override for each case, with a category,
a reason and an expiry, a second officer approves it, as R3 allows, and the audit log shows
it. Applicants are filed inside the registration window, booked, confirmed on site and meet
the national eligibility rules. Each run makes a new batch and new applicants.
"""

from __future__ import annotations

import json
import random
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import (
    BatchPlan,
    SlotPlan,
    add_slot,
    book_slot,
    create_application,
    create_batch,
    file_plan,
    record_attendance,
    record_training,
)
from certify.certificate_pdf import certificate_pdf
from certify.checks import (
    CRIMINAL_RECORD,
    RESULTS,
    SOURCE_SYSTEMS,
    CheckOutcome,
    PoliceReference,
    record_check,
)
from certify.decisions import (
    OverrideRequest,
    approve_override,
    decide,
    override_deadline,
    sign_decisions,
)
from certify.issuance import Issuer, approve, issue, request_revocation, sign_revocations
from certify.models import Applicant, Certificate
from certify.records import CaseRecords
from certsvc.accounts import Role, StaffAccount, password_hasher
from certsvc.bootstrap import INIT_SIGNER, initialise
from certsvc.cli_audit import report_findings
from certsvc.cli_hsm import read_pin
from certsvc.cli_vault import console
from certsvc.db import make_engine, make_sessionmaker
from certsvc.grants import account_backed, bootstrap_account
from certsvc.hsm import open_tokens
from certsvc.reconcile import reconcile
from certsvc.settings import Settings, get_settings
from certsvc.vault_setup import open_vault, print_reveal_limit
from common.errors import InvalidInput
from common.files import open_for_writing
from signer.actor import Actor
from signer.claims import SessionClaims
from signer.custody import find_token
from signer.documents import DocumentSigner
from signer.gate import SigningGate, signing_transaction
from signer.sessions import SigningSessions
from vault import synthetic
from vault.kinds import Kind
from verify.qrimage import write_png

WORKSTATION = "ws-custodian-01"
APPLICANTS = 4
SECOND_OFFICER = "officer-2"
# Who the round acts as, and from which workstation.
DEMO_STAFF = {"registrar": None, "officer": None, SECOND_OFFICER: None, "custodian": WORKSTATION}
SUBJECTS = ("01", "02", "03", "08")
# What the demo's electronic comparisons find: enough for 高级中学 in any subject (R0).
FOUND = {"degree": "本科", "mandarin": "二级甲等"}
DEMO_PLACE = "郑州市金水区政务服务中心三楼（演示）"


def demo(
    out: Annotated[Path, typer.Option(help="directory for manifest.json and the QR images")],
    usbkey: Annotated[
        str | None,
        typer.Option(
            help="with CERTSVC_HSM_SIMULATION=false: the custodian's enrolled USBKey (label or "
            "serial); its PIN is asked for, or read from the first line of standard input"
        ),
    ] = None,
) -> None:
    """Run a certification round on synthetic applicants, write what it issued, and reconcile
    the records with the audit log (exit 1 naming any mismatch)."""
    settings = get_settings()
    initialise(settings)
    out.mkdir(parents=True, exist_ok=True)
    (out / "qr").mkdir(exist_ok=True)
    with _issuer(settings, usbkey) as (issuer, signing, usbkey_pin):
        manifest = _round(settings, issuer, signing, usbkey_pin, out)
        with issuer.sessions() as db:
            held = db.scalar(select(func.count()).select_from(Certificate))
            findings = reconcile(db, issuer.trust_anchors)
    with open_for_writing(out / "manifest.json", "out") as stream:
        stream.write(json.dumps(manifest, ensure_ascii=False, indent=2))
    revoked = sum(1 for m in manifest if m["status"] == "revoked")
    console.print(f"{len(manifest)} certificates ({revoked} revoked): {out / 'manifest.json'}")
    console.print(
        f"each run adds a new batch: the register now holds {held} demo certificates "
        f"(start afresh with an empty CERTSVC_HOME)"
    )
    report_findings(findings)


@contextmanager
def _issuer(
    settings: Settings, usbkey_name: str | None
) -> Iterator[tuple[Issuer, SigningSessions, dict[str, str]]]:
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    issuer = open_issuer(settings, sessions)
    signing = issuer.gate.signing_sessions
    if settings.hsm_simulation:
        usbkey = json.loads(settings.credentials_file.read_text())["tokens"]["USBKEY-01"]
    else:
        if usbkey_name is None:
            raise InvalidInput("--usbkey: with the simulation off, name the custodian's USBKey")
        with sessions() as db:
            serial = find_token(db, usbkey_name, "--usbkey").serial
        usbkey = {"serial": serial, "user_pin": read_pin(None, "--usbkey", f"PIN of {serial}")}
    try:
        yield issuer, signing, usbkey
    finally:
        signing.close_all()
        engine.dispose()


def _actors(settings: Settings, sessions: sessionmaker[Session]) -> dict[str, Actor]:
    """The demo's staff. The simulation makes its second officer on first use (dual control
    needs two); with the simulation off each must have been proposed and approved, as any
    account is, and the round refuses to act as one that was not."""
    with sessions.begin() as db:
        second = db.scalar(select(StaffAccount).where(StaffAccount.username == SECOND_OFFICER))
        if second is None and settings.hsm_simulation:
            bootstrap_account(
                db,
                INIT_SIGNER,
                SECOND_OFFICER,
                Role.OFFICER,
                secrets.token_urlsafe(24),
                "demo second officer",
                hasher=password_hasher(settings),
            )
        by_name = {a.username: a for a in db.scalars(select(StaffAccount))}
        ungranted = [
            name
            for name in DEMO_STAFF
            if name not in by_name
            or not by_name[name].active
            or not account_backed(db, by_name[name])
        ]
    if ungranted:
        raise InvalidInput(
            f"staff: the round acts as {', '.join(DEMO_STAFF)}; not granted: "
            f"{', '.join(ungranted)} (an admin proposes each, a security officer approves it)"
        )
    return {
        name: Actor(name, by_name[name].id, by_name[name].role.value, workstation)
        for name, workstation in DEMO_STAFF.items()
    }


def open_issuer(settings: Settings, sessions: sessionmaker[Session]) -> Issuer:
    """Everything issuing needs, outside a web app: token access, signing sessions held by this
    process, the signing gate, the signer with the case records, the vault."""
    tokens = open_tokens(settings, sessions)
    claims = SessionClaims(settings.signing_claims_dir)
    gate = SigningGate(SigningSessions(tokens, 3600, 600, claims=claims))
    return Issuer(
        sessions,
        DocumentSigner(sessions, gate, CaseRecords()),
        gate,
        open_vault(settings, sessions, tokens),
        settings.body_code,
        settings.public_base_url,
        settings.pinned_anchors(),
    )


def decided_round(
    settings: Settings, issuer: Issuer, applicants: int = APPLICANTS
) -> tuple[int, list[int]]:
    """A demo batch up to its officers' approvals, their decisions ready for the custodian to
    sign (as the console's custodian finds them): the batch and its applications."""
    sessions = issuer.sessions
    actors = _actors(settings, sessions)
    registrar, officer = actors["registrar"], actors["officer"]
    tag = uuid.uuid4().hex[:8]
    plan = BatchPlan(
        name=f"2026下半年（演示 {tag}）",
        body_code=settings.body_code,
        registration_opens=date(2026, 9, 1),
        registration_closes=date(2026, 9, 10),
        confirmation_starts=date(2026, 9, 14),
        confirmation_ends=date(2026, 9, 18),
        closes_on=date(2026, 11, 30),
    )
    today = datetime.now(UTC).date()
    with sessions.begin() as db:
        batch = create_batch(db, officer, plan)
        record_training(db, officer, batch.id, registrar.username, date(2026, 9, 11))
        file_plan(db, officer, batch.id, date(2026, 8, 25), f"演示〔2026〕{tag}")
        confirmation = SlotPlan(datetime(2026, 9, 14, 1, tzinfo=UTC), DEMO_PLACE, applicants)
        slot = add_slot(db, officer, batch.id, confirmation)
        applications = []
        for n, applicant_id in enumerate(_applicants(issuer, db, applicants)):
            subject = SUBJECTS[n % len(SUBJECTS)]
            application = create_application(
                db, registrar, batch.id, applicant_id, "SS", subject, filed_on=date(2026, 9, 2)
            )
            book_slot(db, registrar, application.id, slot)
            attended = confirmation.starts_at + timedelta(minutes=n)
            record_attendance(db, registrar, application.id, attended, f"DEMO-{tag}-{n}")
            for kind, (_, good) in RESULTS.items():
                checked = datetime(2026, 9, 14, 2, tzinfo=UTC) + timedelta(minutes=n)
                police = None
                if kind == CRIMINAL_RECORD:
                    police = PoliceReference("郑州市公安局金水分局（演示）", checked.date())
                outcome = CheckOutcome(
                    kind,
                    good,
                    SOURCE_SYSTEMS[kind][0],
                    f"demo-{tag}-{n}-{kind}",
                    checked,
                    FOUND.get(kind),
                    police,
                )
                who = officer if kind == CRIMINAL_RECORD else registrar
                record_check(db, who, application.id, outcome)
            if today > batch.decision_deadline:
                late = OverrideRequest(
                    "演示：批次日期固定在过去", "other", today + timedelta(days=30)
                )
                override_deadline(db, officer, application.id, late)
                approve_override(db, actors[SECOND_OFFICER], application.id)
            decide(db, officer, application.id, "approve", "各项核查均通过")
            applications.append(application.id)
        batch_id = batch.id
    return batch_id, applications


def _round(
    settings: Settings,
    issuer: Issuer,
    signing: SigningSessions,
    usbkey: dict[str, str],
    out: Path,
) -> list[dict[str, Any]]:
    sessions = issuer.sessions
    actors = _actors(settings, sessions)
    officer = actors["officer"]
    today = datetime.now(UTC).date()
    batch_id, applications = decided_round(settings, issuer)
    _session(signing, usbkey, "decision-1")
    sign_decisions(sessions, issuer.signer, actors["custodian"], batch_id)
    _session(signing, usbkey, "certificate-1")
    numbers = issue(issuer, actors["custodian"], applications, today).issued
    pdfs = _print(settings, issuer, actors["custodian"], numbers, out)
    with sessions.begin() as db:
        revocation = request_revocation(db, officer, numbers[-1], "error", "演示：更正认定结论")
        approve(db, officer, revocation.id, "核对无误")
        approve(db, actors[SECOND_OFFICER], revocation.id, "复核无误")
        revocation_id = revocation.id
    _session(signing, usbkey, "revocation-1")
    sign_revocations(issuer, actors["custodian"], [revocation_id], today)
    signing.end(usbkey["serial"])
    return _manifest(settings, sessions, numbers, pdfs, out)


def _applicants(issuer: Issuer, db: Session, count: int) -> list[int]:
    """Synthetic applicants not yet on file (each run draws new people)."""
    rng = random.Random(secrets.randbits(64))  # noqa: S311 (synthetic people, not secrets)
    made: list[int] = []
    while len(made) < count:
        number = synthetic.id_number(rng)
        token = issuer.vault.tokenise(db, Kind.ID_NUMBER, [number])[0]
        if db.scalar(select(Applicant.id).where(Applicant.id_number_token == token.token)):
            continue
        name = issuer.vault.tokenise(db, Kind.NAME, [synthetic.name(rng)])[0].token
        phone = issuer.vault.tokenise(db, Kind.PHONE, [synthetic.phone(rng)])[0].token
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        applicant = Applicant(
            id_number_token=token.token,
            name_token=name,
            phone_token=phone,
            birth_date=birth,
        )
        db.add(applicant)
        db.flush()
        made.append(applicant.id)
    return made


def _session(signing: SigningSessions, usbkey: dict[str, str], key_label: str) -> None:
    """The custodian inserts the USBKey and opens a session for the next key."""
    signing.end(usbkey["serial"])
    signing.open(usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, key_label)


def _print(
    settings: Settings,
    issuer: Issuer,
    custodian: Actor,
    numbers: list[str],
    out: Path,
) -> dict[str, Path]:
    """Render and PAdES-sign each certificate in the open certificate-key session; each holder
    name is a reveal under the custodian's print limit (the default lets many rounds through)."""
    folder = out.resolve() / "pdf"
    folder.mkdir(exist_ok=True)
    paths: dict[str, Path] = {}
    limit = print_reveal_limit(settings)
    with Progress(console=console) as progress:
        task = progress.add_task("printing and signing certificates", total=len(numbers))
        for number in numbers:
            with signing_transaction(issuer.sessions) as unit:
                pdf = certificate_pdf(
                    unit, issuer.vault, issuer.gate, custodian, settings.body_code, number, limit
                )
            paths[number] = folder / f"{number}.pdf"
            with open_for_writing(paths[number], "out", "wb") as stream:
                stream.write(pdf)
            progress.advance(task)
    return paths


def _manifest(
    settings: Settings,
    sessions: sessionmaker[Session],
    numbers: list[str],
    pdfs: dict[str, Path],
    out: Path,
) -> list[dict[str, Any]]:
    manifest: list[dict[str, Any]] = []
    with sessions() as db:
        for number in numbers:
            certificate = db.scalar(select(Certificate).where(Certificate.number == number))
            assert certificate is not None and certificate.qr_text is not None
            png = out.resolve() / "qr" / f"{number}.png"
            version = write_png(certificate.qr_text, png)
            manifest.append(
                {
                    "number": number,
                    "status": "revoked" if certificate.status == "revoked" else "valid",
                    # The canonical form; the QR carries the upper-case one (alphanumeric mode).
                    "verification_url": (
                        f"{settings.public_base_url.rstrip('/')}/v/{certificate.verification_id}"
                    ),
                    "pdf": str(pdfs[number]),
                    "qr_png": str(png),
                    "qr_version": version,
                }
            )
    return manifest
