"""`kill -9` in the middle of the work, then the same work again: nothing lost, nothing done
twice, and the audit log still verifies. Real processes, tokens and databases throughout; every
wait is bounded in time."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from certify.cases import BatchPlan, create_application, create_batch
from certify.checks import CRIMINAL_RECORD, CheckOutcome, PoliceReference, record_check
from certify.decisions import (
    OverrideRequest,
    approve_override,
    decide,
    decision_document_id,
    override_deadline,
)
from certify.models import Applicant
from certsvc.accounts import Role, StaffAccount
from certsvc.db import make_engine, make_sessionmaker
from certsvc.hsm import open_tokens
from certsvc.settings import Settings
from certsvc.workstations import load_workstation_key
from common.cose import verify_sign1
from hsm_sim import UsbKeyBay
from init_cache import initialised
from server_support import free_port, serving
from service_helpers import StaffMember
from signer.actor import Actor
from signer.custody import certificate_of
from signer.documents import DocumentSigner
from signer.gate import SigningGate
from signer.models import SignedDocumentRow, SigningKey
from signer.sessions import SigningSessions
from signing_env import WORKSTATION, Records, SigningEnv, certificates
from vault import synthetic

CERTSVC = str(Path(sys.executable).parent / "certsvc")
ROWS = 3000
DOCUMENTS = 200
SESSIONS = "/api/v1/signing/sessions"
BATCHES = "/api/v1/signing/batches"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "500"}  # one line per message, whatever the terminal
    return subprocess.run(
        [CERTSVC, *args], capture_output=True, text=True, check=False, timeout=120, env=env
    )


def _count(sessions: sessionmaker[Session], what: Any) -> int:
    with sessions() as db:
        return int(db.scalar(select(func.count()).select_from(what)) or 0)


def _wait_until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _synthetic_csv(path: Path, rows: int) -> set[str]:
    rng = random.Random(20269)
    seen: set[str] = set()
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "id_number", "phone", "email", "address"])
        while len(seen) < rows:
            number = synthetic.id_number(rng)
            if number in seen:
                continue
            seen.add(number)
            writer.writerow(
                [
                    synthetic.name(rng),
                    number,
                    synthetic.phone(rng),
                    synthetic.email(rng),
                    synthetic.address(rng),
                ]
            )
    return seen


def test_bulk_import_killed_mid_run_resumes_without_loss_or_duplicates(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    initialised(settings)
    people = tmp_path / "applicants.csv"
    assert len(_synthetic_csv(people, ROWS)) == ROWS

    with serving() as server:
        importer = subprocess.Popen(
            [CERTSVC, "import", "applicants", str(people), "--batch-size", "100"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until(
                lambda: _count(sessions, Applicant) >= 300 or importer.poll() is not None,
                60,
                "the import's first batches",
            )
            importer.send_signal(signal.SIGKILL)
        finally:
            importer.kill()
            importer.wait(timeout=30)
        assert importer.returncode == -signal.SIGKILL, "the import finished before the kill"
        at_kill = _count(sessions, Applicant)
        assert 0 < at_kill < ROWS
        assert at_kill % 100 == 0, "only whole batches are committed"
        # The service kept answering while its database's writer was killed mid-transaction.
        assert httpx.get(f"{server.base}/healthz", timeout=10).json()["status"] == "ok"

        again = _run("import", "applicants", str(people), "--batch-size", "100")
        assert again.returncode == 0, again.stderr
        assert f"resumed after row {at_kill}" in again.stderr
        assert "0 already on file" in again.stderr
        assert "0 invalid" in again.stderr

        rerun = _run("import", "applicants", str(people), "--batch-size", "100")
        assert rerun.returncode == 0, rerun.stderr
        assert httpx.get(f"{server.base}/healthz", timeout=10).json()["status"] == "ok"

    with sessions() as db:
        tokens = list(db.scalars(select(Applicant.id_number_token)))
    assert len(tokens) == len(set(tokens)) == ROWS
    verified = _run("audit", "verify")
    assert verified.returncode == 0, verified.stderr


def _sign_until_killed(key_label: str, count: int, chunk_size: int) -> None:
    """A worker process signing a batch as the service would: own login, own engine."""
    settings = Settings()
    usbkey = json.loads(settings.credentials_file.read_text())["tokens"]["USBKEY-01"]
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    signing = SigningSessions(open_tokens(settings, sessions), 3600, 600)
    signer = DocumentSigner(sessions, SigningGate(signing), Records(), chunk_size=chunk_size)
    with sessions() as db:
        account = db.scalar(select(StaffAccount).where(StaffAccount.username == "custodian"))
        key_id = db.scalar(select(SigningKey.id).where(SigningKey.label == key_label))
    assert account is not None and key_id is not None
    signing.open(usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, key_label)
    actor = Actor("custodian", account.id, "custodian", WORKSTATION)
    signer.sign_batch(actor, key_id, certificates(count))


def test_batch_signing_killed_mid_batch_signs_each_document_exactly_once(
    env: SigningEnv,
) -> None:
    env.tokens.reset()
    env.bay.set_latency(env.usbkey["serial"], 15)
    worker = multiprocessing.get_context("spawn").Process(
        target=_sign_until_killed, args=("certificate-1", DOCUMENTS, 10)
    )
    worker.start()
    try:
        _wait_until(
            lambda: _count(env.sessions, SignedDocumentRow) >= 30 or not worker.is_alive(),
            60,
            "the worker's first chunks",
        )
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL, "the batch finished before the kill"
    at_kill = _count(env.sessions, SignedDocumentRow)
    assert 0 < at_kill < DOCUMENTS

    # The custodian opens a new session and runs the same batch again.
    env.bay.set_latency(env.usbkey["serial"], None)
    env.tokens.reset()
    env.open("certificate-1")
    key_id = env.key_id("certificate-1")
    report = env.signer.sign_batch(env.custodian, key_id, certificates(DOCUMENTS))
    assert report.stopped is None and not report.refused
    assert len(report.already_signed) == at_kill
    assert len(report.signed) == DOCUMENTS - at_kill

    with env.sessions() as db:
        rows = list(db.scalars(select(SignedDocumentRow)))
        key = db.get(SigningKey, key_id)
        assert key is not None
        certificate = certificate_of(key)
        assert key.usage_count == DOCUMENTS, "a signature counted but not recorded, or twice"
    expected = sorted(d.document_id for d in certificates(DOCUMENTS))
    assert sorted(r.document_id for r in rows) == expected
    assert len({r.audit_index for r in rows}) == DOCUMENTS
    for row in rows:
        verify_sign1(row.cose, certificate)
    verified = _run("audit", "verify")
    assert verified.returncode == 0, verified.stderr


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A real `certsvc serve` on a free port, answering `/healthz`; the caller kills it."""
    port = free_port()
    process = subprocess.Popen(
        [CERTSVC, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "certsvc serve exited"
        try:
            httpx.get(f"{base}/healthz", timeout=5)
            return process, base
        except httpx.TransportError:
            assert time.monotonic() < deadline, "certsvc serve did not come up"
            time.sleep(0.1)


def _post(base: str, path: str, body: dict[str, Any], who: StaffMember, timeout: float) -> Any:
    raw = json.dumps(body).encode()
    headers = {**who.signed("POST", path, raw), "Content-Type": "application/json"}
    return httpx.post(f"{base}{path}", content=raw, headers=headers, timeout=timeout)


def test_serve_killed_mid_http_batch_then_restarted_signs_each_document_once(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    initialised(settings)
    secrets = json.loads(settings.credentials_file.read_text())
    usbkey = secrets["tokens"]["USBKEY-01"]
    account = secrets["accounts"]["custodian"]
    custodian = StaffMember(
        username="custodian",
        role=Role.CUSTODIAN,
        password=account["password"],
        token=account["api_token"],
        token_id="",
        workstation=WORKSTATION,
        workstation_key=load_workstation_key(secrets["workstations"][WORKSTATION]["private_key"]),
    )
    # Decisions an officer recorded, ready to sign: the server signs what its records say.
    document_ids = _decided_cases(sessions, DOCUMENTS)
    with sessions() as db:
        key_id = db.scalar(select(SigningKey.id).where(SigningKey.label == "decision-1"))
    assert key_id is not None
    batch = {
        "key_id": key_id,
        "documents": [{"kind": "decision", "document_id": d} for d in document_ids],
    }
    opening = {
        "token_serial": usbkey["serial"],
        "key_label": "decision-1",
        "pin": usbkey["user_pin"],
    }
    bay = UsbKeyBay(settings.hsm_dir)
    bay.set_latency(usbkey["serial"], 15)  # a USB token's pace, so the kill lands mid-batch
    server, base = _serve(dict(os.environ))
    try:
        assert _post(base, SESSIONS, opening, custodian, 30).status_code == 201
        answers: list[Any] = []
        sender = threading.Thread(
            target=lambda: answers.append(
                _try_post(base, "/api/v1/signing/batches", batch, custodian)
            ),
            daemon=True,
        )
        sender.start()
        _wait_until(
            lambda: _count(sessions, SignedDocumentRow) >= 30 or not sender.is_alive(),
            60,
            "the server's first chunks",
        )
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        sender.join(timeout=30)
    finally:
        server.kill()
        server.wait(timeout=30)
    assert answers and isinstance(answers[0], httpx.TransportError), "batch finished before kill"
    at_kill = _count(sessions, SignedDocumentRow)
    assert 0 < at_kill < DOCUMENTS

    bay.set_latency(usbkey["serial"], None)
    server, base = _serve(dict(os.environ))
    try:
        # The session died with the process: the custodian opens a new one and re-sends.
        assert _post(base, SESSIONS, opening, custodian, 30).status_code == 201
        answer = _post(base, BATCHES, batch, custodian, 60)
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["refused"] == [] and report["stopped_by"] is None
        assert len(report["already_signed"]) == at_kill
        assert len(report["signed"]) == DOCUMENTS - at_kill
    finally:
        server.terminate()
        server.wait(timeout=30)

    with sessions() as db:
        rows = list(db.scalars(select(SignedDocumentRow)))
        key = db.get(SigningKey, key_id)
        assert key is not None
        assert key.usage_count == DOCUMENTS, "a signature counted but not recorded, or twice"
        certificate = certificate_of(key)
    assert sorted(r.document_id for r in rows) == sorted(document_ids)
    assert len({r.audit_index for r in rows}) == DOCUMENTS
    for row in rows:
        verify_sign1(row.cose, certificate)
    verified = _run("audit", "verify")
    assert verified.returncode == 0, verified.stderr


def _decided_cases(sessions: sessionmaker[Session], count: int) -> list[str]:
    """`count` cases refused by an officer after a finished criminal-record check (R2), the
    2020 deadline overridden with a reason (R3): decisions ready to sign, by document id."""
    registrar = Actor("registrar", 0, "registrar")
    officer = Actor("officer", 0, "officer")
    second_officer = Actor("officer-b", 0, "officer")
    expires = date.today() + timedelta(days=30)
    plan = BatchPlan(
        name="crash survival",
        body_code="410000",
        registration_opens=date(2020, 6, 8),
        registration_closes=date(2020, 6, 30),
        confirmation_starts=date(2020, 7, 6),
        confirmation_ends=date(2020, 7, 10),
        closes_on=date(2020, 8, 20),
    )
    checked = datetime(2020, 7, 8, 2, tzinfo=UTC)
    with sessions.begin() as db:
        batch = create_batch(db, officer, plan)
        document_ids = []
        for n in range(count):
            applicant = Applicant(
                id_number_token=f"tk_id_crash{n:05d}",
                name_token=f"tk_nm_crash{n:05d}",
                birth_date=date(1990, 1, 1),
            )
            db.add(applicant)
            db.flush()
            application = create_application(
                db, registrar, batch.id, applicant.id, "SS", "02", filed_on=plan.registration_opens
            )
            police = PoliceReference("郑州市公安局金水分局", checked.date())
            outcome = CheckOutcome(
                CRIMINAL_RECORD, "record", "gongan", f"q-{n}", checked, police=police
            )
            record_check(db, officer, application.id, outcome)
            late = OverrideRequest("a 2020 batch signed in a test", "other", expires)
            override_deadline(db, officer, application.id, late)
            approve_override(db, second_officer, application.id)
            decision = decide(db, officer, application.id, "refuse", "criminal record on file")
            document_ids.append(decision_document_id(decision.id))
    return document_ids


def _try_post(base: str, path: str, body: dict[str, Any], who: StaffMember) -> Any:
    try:
        return _post(base, path, body, who, 60)
    except httpx.TransportError as exc:
        return exc
