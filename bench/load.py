"""Multi-worker load on PostgreSQL and Redis (issue 9): `certsvc serve --workers 2` on a fresh
database, loaded over loopback from a process of its own with a bounded mix of

- public verifications (valid, revoked and unknown ids);
- vault tokenise calls (registrars tokenising new identifiers);
- staff intake through the staff HTTP API, case after case in one new certification batch:
  tokenise the applicant, file the application, book a confirmation slot, record the checks
  (the criminal-record one by an officer), then an officer's decision (about one case in ten
  refused after a failed check);
- batch signing by the custodian from the demo workstation (signed requests), in rounds while
  the load runs: open a USBKey session for the decision key and sign the batch's decisions,
  then one for the certificate key and issue the certificates of the signed approvals.

Signing sessions live in the worker process that opened them, so the custodian's client holds
one keep-alive connection (one worker) for its session and the batches that use it. Before the
load, a probe checks how sessions and workers meet: over fresh connections the session is
looked up; on a worker without it, a decision batch and a second opening must answer 409 (one
session per USBKey across workers), never a 200 that signed nothing.

Afterwards, from the database: applications, applicants, checks, decisions, signed documents
and certificates are exactly those the answers reported, each signed once; every audit event
since the start, counted by action and outcome, is one the answers account for; no answer is a
5xx; `certsvc audit verify` passes; every certificate issued verifies as valid over the public
API. Prints p50/p99 per request kind. The ratio is the share of requests answered without a
server error (target 1.0); when anything fails to reconcile, the run says what and exits 1
without a RESULT line.

    python bench/load.py [--quick] [--serve-log FILE] [--database-url URL]
        (needs PostgreSQL — by default on 127.0.0.1:5432 — and Redis on 127.0.0.1:6379; unlike
        the other benches it runs on PostgreSQL only: several workers and Redis are the
        scale-out set-up, which the embedded SQLite is not)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, create_engine, func, make_url, select, text
from sqlalchemy.pool import NullPool

from audit.models import AuditCheckpoint, AuditEventRow
from certify.models import Applicant, Application, CaseCheck, Certificate, Decision
from certsvc.workstations import load_workstation_key, sign_request
from signer.models import KeyPurpose, KeyStatus, SignedDocumentRow, SigningKey
from vault import synthetic
from vault.models import VaultEntry
from verify.models import PublicCertificate

POSTGRES = os.environ.get(
    "CERTSVC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS = os.environ.get("CERTSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
TARGET = 1.0
CERTSVC = str(Path(sys.executable).parent / "certsvc")
API = "/api/v1/certify"
SESSIONS = "/api/v1/signing/sessions"
CHECKPOINT_SIGNATURES = "signer.sign (audit checkpoints)"
WORKSTATION = "ws-custodian-01"
USBKEY = "USBKEY-01"
# Fixed dates the holiday calendar covers (as `certsvc demo` does): the decision deadline has
# passed, so every decision carries an officer's override with its reason, approved by a
# second officer (R3, audited).
BATCH_DATES = {
    "registration_opens": "2026-09-01",
    "registration_closes": "2026-09-10",
    "confirmation_starts": "2026-09-14",
    "confirmation_ends": "2026-09-18",
    "closes_on": "2026-12-31",
}
PLACE = "郑州市金水区政务服务中心三楼"
EXTENSION = "load run: the batch's dates are fixed, its registration closed"
OVERRIDE = "load run: the batch's dates are fixed, its deadline passed"
REGISTRAR_CHECKS = (
    ("identity", "match"),
    ("degree", "match"),
    ("mandarin", "match"),
    ("exam", "match"),
    ("physical", "pass"),
)
# What the comparisons of an eligible 高级中学 applicant find (R0).
FOUND = {"degree": "本科", "mandarin": "二级甲等"}
VERIFIERS, TOKENISERS, DESKS = 16, 2, 4
ROUND_PAUSE = 1.0  # between the custodian's rounds; well under uvicorn's 5 s keep-alive
PROBES = 12


@dataclass(frozen=True)
class Staff:
    """A demo account's API token and, for the custodian, the workstation key that signs its
    requests (as the workstation client would)."""

    token: str
    workstation: str | None = None
    key: Ed25519PrivateKey | None = None

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if body:
            headers["Content-Type"] = "application/json"
        if self.workstation is not None and self.key is not None:
            proof = sign_request(
                self.key, self.workstation, method, path, body, headers["Authorization"]
            )
            headers.update(proof)
        return headers


@dataclass
class Desk:
    """Who acts, and the batch they work on."""

    registrar: Staff
    officer: Staff
    officer_2: Staff
    custodian: Staff
    usbkey_serial: str
    usbkey_pin: str
    verification_ids: list[str]
    batch_id: int = 0
    slot_id: int = 0
    override: bool = False
    session_key: str | None = None  # the key of the custodian's session, when one is open


@dataclass
class Tally:
    """Every answer, and what the answers say the database and the audit log must hold."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    values_tokenised: int = 0
    applications: list[int] = field(default_factory=list)
    applicants: set[int] = field(default_factory=set)
    checks: int = 0
    decisions: dict[int, str] = field(default_factory=dict)  # decision id -> outcome
    approved: set[int] = field(default_factory=set)  # application ids
    signed_decisions: list[str] = field(default_factory=list)
    signed_certificates: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    session_stops: int = 0
    workstation: httpx.AsyncClient | None = None  # the custodian's one-connection client
    custodian_ports: list[int] = field(default_factory=list)
    custodian_switches: list[str] = field(default_factory=list)
    probe: Counter[str] = field(default_factory=Counter)

    def answered(self, kind: str, status: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        self.statuses.setdefault(kind, Counter())[status] += 1


async def call(
    client: httpx.AsyncClient,
    tally: Tally,
    kind: str,
    method: str,
    path: str,
    who: Staff | None = None,
    body: Any = None,
    expect: Iterable[int] = (200,),
) -> httpx.Response | None:
    """One request, timed and tallied; None when the connection failed (counted as an error)."""
    raw = json.dumps(body).encode() if body is not None else b""
    headers = who.headers(method, path, raw) if who is not None else {}
    started = time.perf_counter()
    try:
        answer = await client.request(method, path, content=raw or None, headers=headers)
    except httpx.TransportError as exc:
        tally.answered(kind, "transport-error", time.perf_counter() - started)
        tally.server_errors.append(f"{kind}: {method} {path}: {type(exc).__name__}: {exc}")
        return None
    tally.answered(kind, str(answer.status_code), time.perf_counter() - started)
    if answer.status_code >= 500:
        tally.server_errors.append(
            f"{kind}: {method} {path} -> {answer.status_code}: {answer.text[:300]}"
        )
    elif answer.status_code not in set(expect):
        tally.unexpected.append(
            f"{kind}: {method} {path} -> {answer.status_code}: {answer.text[:300]}"
        )
    return answer


def _local_port(answer: httpx.Response) -> int | None:
    stream = answer.extensions.get("network_stream")
    address = stream.get_extra_info("client_addr") if stream is not None else None
    return int(address[1]) if isinstance(address, tuple) else None


# --- public verifications and vault traffic --------------------------------------------------


async def verifier(
    client: httpx.AsyncClient, tally: Tally, desk: Desk, seed: int, stop: float
) -> None:
    rng = random.Random(seed)  # noqa: S311 (which request to send, not a secret)
    while time.monotonic() < stop:
        verification_id = rng.choice(desk.verification_ids)
        path = f"/api/v1/verify/{verification_id}"
        await call(client, tally, "verify", "GET", path, expect=(200, 404))


async def tokeniser(
    client: httpx.AsyncClient, tally: Tally, desk: Desk, seed: int, stop: float
) -> None:
    rng = random.Random(seed)  # noqa: S311 (synthetic identifiers)
    while time.monotonic() < stop:
        items = [{"kind": "id_number", "value": synthetic.id_number(rng)}]
        answer = await call(
            client,
            tally,
            "tokenise",
            "POST",
            "/api/v1/vault/tokenise",
            desk.registrar,
            {"items": items},
        )
        if answer is not None and answer.status_code == 200:
            tally.events["vault.tokenise", "ok"] += 1
            tally.values_tokenised += len(items)


# --- staff intake ------------------------------------------------------------------------------


async def one_case(client: httpx.AsyncClient, tally: Tally, desk: Desk, rng: random.Random) -> None:
    """A case from intake to the officer's decision, over the staff API as the test does."""
    person = {
        "id_number": synthetic.id_number(rng),
        "name": synthetic.name(rng),
        "phone": synthetic.phone(rng),
    }
    items = [{"kind": kind, "value": value} for kind, value in person.items()]
    answer = await call(
        client,
        tally,
        "intake.tokenise",
        "POST",
        "/api/v1/vault/tokenise",
        desk.registrar,
        {"items": items},
    )
    if answer is None or answer.status_code != 200:
        return
    tally.events["vault.tokenise", "ok"] += 1
    tally.values_tokenised += len(items)
    tokens = {f"{t['kind']}_token": t["token"] for t in answer.json()["tokens"]}
    body = {
        "batch_id": desk.batch_id,
        "applicant": tokens,
        "qualification": "SS",
        "subject": rng.choice(("01", "02", "03", "08")),
    }
    # 409: the same synthetic person drawn twice for this batch (rare, and refused rightly).
    answer = await call(
        client,
        tally,
        "intake.application",
        "POST",
        f"{API}/applications",
        desk.registrar,
        body,
        (201, 409),
    )
    if answer is None or answer.status_code != 201:
        return
    application = answer.json()
    application_id = int(application["id"])
    tally.applications.append(application_id)
    tally.applicants.add(int(application["applicant_id"]))
    tally.events["certify.application.create", "ok"] += 1
    case = f"{API}/applications/{application_id}"
    answer = await call(
        client,
        tally,
        "intake.booking",
        "POST",
        f"{case}/booking",
        desk.registrar,
        {"slot_id": desk.slot_id},
        (201,),
    )
    if answer is None or answer.status_code != 201:
        return
    tally.events["certify.application.book", "ok"] += 1
    attendance = {
        "confirmed_at": "2026-09-14T09:30:00+08:00",
        "national_reference": f"load-{application_id}",
    }
    answer = await call(
        client,
        tally,
        "intake.attend",
        "POST",
        f"{case}/attendance",
        desk.registrar,
        attendance,
        (201,),
    )
    if answer is None or answer.status_code != 201:
        return
    tally.events["certify.application.attend", "ok"] += 1
    failing = rng.random() < 0.1
    for n, (kind, result) in enumerate(REGISTRAR_CHECKS):
        check = {
            "kind": kind,
            "result": "mismatch" if failing and kind == "degree" else result,
            "source_system": "chsi.com.cn" if kind == "degree" else "jszg.edu.cn",
            "reference": f"load-{application_id}-{kind}",
            "checked_at": f"2026-09-14T10:{n:02d}:00+08:00",
            **({"value": FOUND[kind]} if kind in FOUND else {}),
        }
        if await _check(client, tally, desk.registrar, case, check) is None:
            return
    criminal = {
        "kind": "criminal_record",
        "result": "clear",
        "source_system": "gongan",
        "reference": f"load-{application_id}-q",
        "checked_at": "2026-09-16T10:00:00+08:00",
        "police_unit": "郑州市公安局金水分局",
        "police_issued_on": "2026-09-16",
    }
    if await _check(client, tally, desk.officer, case, criminal) is None:
        return
    decision: dict[str, Any] = (
        {"outcome": "refuse", "reasons": "degree not confirmed by chsi.com.cn"}
        if failing
        else {"outcome": "approve", "reasons": "all checks passed"}
    )
    if desk.override:
        decision["deadline_override"] = {
            "reason": OVERRIDE,
            "category": "other",
            "expires_on": (datetime.now(UTC).date() + timedelta(days=30)).isoformat(),
        }
    answer = await call(
        client,
        tally,
        "intake.decision",
        "POST",
        f"{case}/decision",
        desk.officer,
        decision,
        (201,),
    )
    if answer is None or answer.status_code != 201:
        return
    tally.decisions[int(answer.json()["id"])] = decision["outcome"]
    tally.events["certify.decision.make", "ok"] += 1
    if desk.override:
        tally.events["certify.deadline.override", "ok"] += 1
        approval = f"{case}/deadline-override/approval"
        answer = await call(client, tally, "intake.override", "POST", approval, desk.officer_2)
        if answer is None:
            return
        tally.events["certify.deadline.override.approve", "ok"] += 1
    if not failing:
        tally.approved.add(application_id)


async def _check(
    client: httpx.AsyncClient, tally: Tally, who: Staff, case: str, check: dict[str, str]
) -> httpx.Response | None:
    answer = await call(client, tally, "intake.check", "POST", f"{case}/checks", who, check, (201,))
    if answer is None or answer.status_code != 201:
        return None
    tally.checks += 1
    tally.events["certify.check.record", "ok"] += 1
    return answer


async def case_desk(
    client: httpx.AsyncClient, tally: Tally, desk: Desk, seed: int, stop: float
) -> None:
    rng = random.Random(seed)  # noqa: S311 (synthetic applicants)
    while time.monotonic() < stop:
        await one_case(client, tally, desk, rng)


# --- the custodian -----------------------------------------------------------------------------


async def custodian_call(
    client: httpx.AsyncClient,
    tally: Tally,
    desk: Desk,
    kind: str,
    method: str,
    path: str,
    body: Any = None,
    expect: Iterable[int] = (200,),
) -> httpx.Response | None:
    answer = await call(client, tally, kind, method, path, desk.custodian, body, expect)
    port = _local_port(answer) if answer is not None else None
    if client is tally.workstation and port is not None:
        ports = tally.custodian_ports
        if ports and ports[-1] != port:
            tally.custodian_switches.append(f"new connection at {kind} {method} {path}")
        ports.append(port)
    return answer


async def open_session(client: httpx.AsyncClient, tally: Tally, desk: Desk, key_label: str) -> bool:
    """Close the custodian's session if one is open, then open one for `key_label` (the USBKey
    inserted and unlocked), over `client`'s connection: the worker that will sign."""
    await close_session(client, tally, desk)
    body = {"token_serial": desk.usbkey_serial, "key_label": key_label, "pin": desk.usbkey_pin}
    answer = await custodian_call(
        client, tally, desk, "session.open", "POST", SESSIONS, body, (201,)
    )
    if answer is None:
        return False
    if answer.status_code == 201:
        tally.events["signer.session.open", "ok"] += 1
        desk.session_key = key_label
        return True
    if answer.status_code in (403, 404, 409, 423):  # a custody or token refusal, audited
        tally.events["signer.session.open", "refused"] += 1
    return False


async def close_session(client: httpx.AsyncClient, tally: Tally, desk: Desk) -> None:
    if desk.session_key is None:
        return
    path = f"{SESSIONS}/{desk.usbkey_serial}"
    # 409: this connection reached a worker that holds no session (see the probe).
    answer = await custodian_call(
        client, tally, desk, "session.close", "DELETE", path, None, (204, 409)
    )
    if answer is not None and answer.status_code == 204:
        tally.events["signer.session.close", "ok"] += 1
    desk.session_key = None


def account_signing(tally: Tally, report: dict[str, Any], into: list[str]) -> None:
    """What a batch report means for the audit log: one `signer.sign` event per document
    signed or refused, and one more when a key or session rule stopped the batch at once."""
    into.extend(report["signed"])
    tally.events["signer.sign", "ok"] += len(report["signed"])
    refused = report["refused"]
    tally.events["signer.sign", "refused"] += len(refused)
    stopped = report["stopped_by"]
    if stopped is not None and not any(r["rule"] == stopped for r in refused):
        tally.events["signer.sign", "refused"] += 1


async def sign_decisions(
    client: httpx.AsyncClient, tally: Tally, desk: Desk, kind: str = "sign.decisions"
) -> dict[str, Any] | None:
    path = f"{API}/batches/{desk.batch_id}/decisions/sign"
    answer = await custodian_call(client, tally, desk, kind, "POST", path)
    if answer is None or answer.status_code != 200:
        return None
    report: dict[str, Any] = answer.json()
    account_signing(tally, report, tally.signed_decisions)
    return report


async def issue_certificates(
    client: httpx.AsyncClient, tally: Tally, desk: Desk
) -> dict[str, Any] | None:
    path = f"{API}/batches/{desk.batch_id}/certificates"
    answer = await custodian_call(client, tally, desk, "sign.certificates", "POST", path, {})
    if answer is None or answer.status_code != 200:
        return None
    result: dict[str, Any] = answer.json()
    if result["signing"] is not None:
        account_signing(tally, result["signing"], tally.signed_certificates)
    tally.issued.extend(result["issued"])
    tally.events["certify.certificate.issue", "ok"] += len(result["issued"])
    tally.events["signer.sign", "ok"] += len(result["issued"])  # each one's QR payload
    return result


async def signing_round(client: httpx.AsyncClient, tally: Tally, desk: Desk) -> int:
    """Sign the batch's new decisions, then issue its new certificates; how much was done."""
    done = 0
    if await open_session(client, tally, desk, "decision-1"):
        report = await sign_decisions(client, tally, desk)
        if report is not None:
            done += len(report["signed"])
            tally.session_stops += report["stopped_by"] == "session"
    if await open_session(client, tally, desk, "certificate-1"):
        result = await issue_certificates(client, tally, desk)
        if result is not None:
            done += len(result["issued"])
            signing = result["signing"] or {}
            tally.session_stops += signing.get("stopped_by") == "session"
    return done


async def custodian(
    client: httpx.AsyncClient, tally: Tally, desk: Desk, stop: float, intake: asyncio.Event
) -> None:
    """Rounds while the load runs and intake finishes its cases (never idle long enough for
    the server to drop the connection), then rounds until nothing is left."""
    while time.monotonic() < stop or not intake.is_set():
        await signing_round(client, tally, desk)
        await asyncio.sleep(ROUND_PAUSE)
    for _ in range(10):
        if await signing_round(client, tally, desk) == 0:
            break
    await close_session(client, tally, desk)


# --- the probe: a session and the two workers --------------------------------------------------


async def probe(base: str, client: httpx.AsyncClient, tally: Tally, desk: Desk) -> None:
    """With one case decided, open a decision-key session over the custodian's connection,
    then look for it over fresh connections (each reaches either worker). Over the first fresh
    connection that finds none, send the sign request for the case as the custodian: the
    answer shows what a request reaching the other worker gets. The custodian's rounds sign
    the case afterwards."""
    rng = random.Random(99)  # noqa: S311 (synthetic applicant)
    await one_case(client, tally, desk, rng)
    if not await open_session(client, tally, desk, "decision-1"):
        return
    for _ in range(PROBES):
        async with httpx.AsyncClient(base_url=base, timeout=30) as fresh:
            who = Staff(desk.custodian.token)
            answer = await call(fresh, tally, "probe", "GET", SESSIONS, who)
            if answer is None or answer.status_code != 200:
                continue
            if answer.json():
                tally.probe["fresh connections finding the session"] += 1
                continue
            tally.probe["fresh connections not finding it"] += 1
            if tally.probe["sign batches sent there"]:
                continue
            tally.probe["sign batches sent there"] += 1
            # The worker without the session must say where it is (409), not sign nothing.
            path = f"{API}/batches/{desk.batch_id}/decisions/sign"
            answer = await custodian_call(fresh, tally, desk, "probe", "POST", path, None, (409,))
            if answer is not None:
                tally.probe[f"... answered {answer.status_code}"] += 1
            await second_session(fresh, tally, desk)


async def second_session(client: httpx.AsyncClient, tally: Tally, desk: Desk) -> None:
    """While the custodian's session is open in one worker, open another on the same USBKey
    through the other worker: the service must refuse it (409), one session per USBKey."""
    body = {"token_serial": desk.usbkey_serial, "key_label": "decision-1", "pin": desk.usbkey_pin}
    answer = await custodian_call(client, tally, desk, "probe", "POST", SESSIONS, body, (409,))
    if answer is None:
        return
    tally.probe[f"second session opened there: answered {answer.status_code}"] += 1
    tally.events["signer.session.open", "refused"] += answer.status_code == 409


# --- the load ----------------------------------------------------------------------------------


async def load(base: str, desk: Desk, seconds: float) -> Tally:
    tally = Tally()
    async with (
        httpx.AsyncClient(base_url=base, timeout=60) as client,
        httpx.AsyncClient(
            base_url=base,
            timeout=60,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ) as workstation,
    ):
        tally.workstation = workstation
        batch = {"name": f"load {secrets.token_hex(4)}", **BATCH_DATES}
        answer = await call(
            client, tally, "setup", "POST", f"{API}/batches", desk.officer, batch, (201,)
        )
        if answer is None or answer.status_code != 201:
            return tally
        tally.events["certify.batch.create", "ok"] += 1
        desk.batch_id = int(answer.json()["id"])
        today = datetime.now(UTC).date()
        desk.override = today > date.fromisoformat(answer.json()["decision_deadline"])
        slot = {"starts_at": "2026-09-14T09:00:00+08:00", "place": PLACE, "capacity": 10000}
        path = f"{API}/batches/{desk.batch_id}/slots"
        answer = await call(client, tally, "setup", "POST", path, desk.officer, slot, (201,))
        if answer is None or answer.status_code != 201:
            return tally
        tally.events["certify.slot.add", "ok"] += 1
        desk.slot_id = int(answer.json()["id"])
        training = {"username": "registrar", "trained_on": "2026-09-11"}
        path = f"{API}/batches/{desk.batch_id}/trainings"
        answer = await call(client, tally, "setup", "POST", path, desk.officer, training, (201,))
        if answer is None or answer.status_code != 201:
            return tally
        tally.events["certify.training.record", "ok"] += 1
        if today > date.fromisoformat(BATCH_DATES["registration_closes"]):
            extension = {"until": (today + timedelta(days=30)).isoformat(), "reason": EXTENSION}
            path = f"{API}/batches/{desk.batch_id}/registration-extension"
            answer = await call(client, tally, "setup", "POST", path, desk.officer, extension)
            if answer is None or answer.status_code != 200:
                return tally
            tally.events["certify.registration.extend", "ok"] += 1
        await probe(base, workstation, tally, desk)

        stop = time.monotonic() + seconds
        intake = asyncio.Event()

        async def staff_intake() -> None:
            await asyncio.gather(
                *(case_desk(client, tally, desk, 1000 + n, stop) for n in range(DESKS))
            )
            intake.set()

        await asyncio.gather(
            *(verifier(client, tally, desk, n, stop) for n in range(VERIFIERS)),
            *(tokeniser(client, tally, desk, 500 + n, stop) for n in range(TOKENISERS)),
            staff_intake(),
            custodian(workstation, tally, desk, stop, intake),
        )
        # Every certificate issued answers "valid" on the public side.
        path = f"{API}/batches/{desk.batch_id}/certificates"
        answer = await call(client, tally, "after", "GET", path, desk.registrar)
        if answer is not None and answer.status_code == 200:
            for certificate in answer.json():
                if certificate["status"] != "issued" or not certificate["verification_url"]:
                    tally.unexpected.append(f"certificate {certificate['number']} not issued")
                    continue
                verification_id = certificate["verification_url"].rsplit("/", 1)[1]
                shown = await call(
                    client, tally, "after", "GET", f"/api/v1/verify/{verification_id}"
                )
                if (
                    shown is not None
                    and shown.status_code == 200
                    and shown.json()["status"] != "valid"
                ):
                    tally.unexpected.append(f"certificate {certificate['number']} not valid")
    return tally


# --- reconciliation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Before:
    audit_size: int
    applicant_max: int
    vault_entries: int
    checkpoints: int


def snapshot(engine: Engine) -> Before:
    with engine.connect() as db:
        return Before(
            audit_size=int(db.scalar(select(func.count()).select_from(AuditEventRow)) or 0),
            applicant_max=int(db.scalar(select(func.max(Applicant.id))) or 0),
            vault_entries=int(db.scalar(select(func.count()).select_from(VaultEntry)) or 0),
            checkpoints=_checkpoints(db),
        )


def _checkpoints(db: Connection) -> int:
    return int(db.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0)


def reconcile(engine: Engine, tally: Tally, desk: Desk, before: Before) -> list[str]:
    """What the database holds against what the answers said; one line per difference."""
    problems: list[str] = []

    def same(what: str, database: Any, answers: Any) -> None:
        """Counts, or collections compared as sorted lists (shown by size, and by the
        differences when they differ)."""
        if isinstance(database, list | set):
            database, answers = sorted(database), sorted(answers)
            line = f"{what}: database {len(database)}, answers {len(answers)}"
            if database != answers:
                only_db = sorted(set(database) - set(answers))[:10]
                only_answers = sorted(set(answers) - set(database))[:10]
                line += f" (only in the database: {only_db}; only in answers: {only_answers})"
        else:
            line = f"{what}: database {database}, answers {answers}"
        print(("  ok  " if database == answers else "  BAD ") + line)
        if database != answers:
            problems.append(line)

    batch = desk.batch_id
    with engine.connect() as db:
        applications = set(db.scalars(select(Application.id).where(Application.batch_id == batch)))
        applicants = set(
            db.scalars(select(Applicant.id).where(Applicant.id > before.applicant_max))
        )
        checks = db.scalar(
            select(func.count())
            .select_from(CaseCheck)
            .join(Application, Application.id == CaseCheck.application_id)
            .where(Application.batch_id == batch)
        )
        decisions = {
            decision: signed_at
            for decision, signed_at in db.execute(
                select(Decision.id, Decision.signed_at)
                .join(Application, Application.id == Decision.application_id)
                .where(Application.batch_id == batch)
            )
        }
        certificates = db.execute(
            select(Certificate.number, Certificate.application_id, Certificate.status)
            .join(Application, Application.id == Certificate.application_id)
            .where(Application.batch_id == batch)
        ).all()
        numbers = {number for number, _, _ in certificates}
        signed_rows = Counter(
            (kind, document_id)
            for kind, document_id in db.execute(
                select(SignedDocumentRow.kind, SignedDocumentRow.document_id).where(
                    SignedDocumentRow.document_id.in_(
                        [f"DEC-{d}" for d in decisions] + [f"CRT-{n}" for n in numbers]
                    )
                )
            )
        )
        public = {
            number: status
            for number, status in db.execute(
                select(PublicCertificate.number, PublicCertificate.status).where(
                    PublicCertificate.number.in_(numbers)
                )
            )
        }
        # The service's own checkpoints are signed through the gate too: one event per
        # checkpoint key (Ed25519 and P-256) each.
        events = Counter(
            (CHECKPOINT_SIGNATURES if obj.startswith("audit-checkpoint:") else action, outcome)
            for action, obj, outcome in db.execute(
                select(AuditEventRow.action, AuditEventRow.object, AuditEventRow.outcome).where(
                    AuditEventRow.idx >= before.audit_size
                )
            )
        )
        signing_keys = db.scalar(
            select(func.count())
            .select_from(SigningKey)
            .where(
                SigningKey.purpose == KeyPurpose.AUDIT_CHECKPOINT,
                SigningKey.status == KeyStatus.ACTIVE,
            )
        )
        tally.events[CHECKPOINT_SIGNATURES, "ok"] = (_checkpoints(db) - before.checkpoints) * (
            signing_keys or 0
        )
        vault_entries = int(db.scalar(select(func.count()).select_from(VaultEntry)) or 0)

    same("applications in the batch (ids)", applications, set(tally.applications))
    same("  answered 201, none twice", len(tally.applications), len(set(tally.applications)))
    new_applicants = {a for a in tally.applicants if a > before.applicant_max}
    same("new applicants (ids)", applicants, new_applicants)
    tally.events["certify.applicant.register", "ok"] = len(new_applicants)
    same("checks recorded", checks, tally.checks)
    same("decisions (ids)", set(decisions), set(tally.decisions))
    unsigned = [d for d, signed_at in decisions.items() if signed_at is None]
    same("decisions left unsigned after the drain", unsigned, [])
    reported = tally.signed_decisions
    same("decisions reported signed, none twice", len(reported), len(set(reported)))
    same("decisions signed = decisions made", [f"DEC-{d}" for d in decisions], reported)
    stored = [d for kind, d in signed_rows if kind == "decision"]
    same("signed decision documents stored", stored, reported)
    same("documents stored more than once", [k for k, n in signed_rows.items() if n > 1], [])
    issued = [number for number, _, status in certificates if status == "issued"]
    same("certificates issued, none twice", len(tally.issued), len(set(tally.issued)))
    same("certificates issued (numbers)", issued, tally.issued)
    same("certificates left pending", len(certificates) - len(issued), 0)
    per_case = Counter(application for _, application, _ in certificates)
    same("cases with more than one certificate", [a for a, n in per_case.items() if n > 1], [])
    same("certified cases = approved cases", list(per_case), tally.approved)
    certificate_docs = [d for kind, d in signed_rows if kind == "certificate"]
    same("signed certificate documents stored", certificate_docs, tally.signed_certificates)
    same("  one per certificate issued", certificate_docs, [f"CRT-{n}" for n in tally.issued])
    same(
        "public register entries, valid",
        [f"{n} {status}" for n, status in public.items()],
        [f"{n} valid" for n in tally.issued],
    )
    if not (tally.applications and tally.issued and tally.events["signer.session.open", "ok"]):
        problems.append("the run did no staff work: no application, session or certificate")
    created = vault_entries - before.vault_entries
    print(f"  --  new vault entries: {created} for {tally.values_tokenised} values tokenised")
    if created > tally.values_tokenised:
        problems.append(f"{created} new vault entries for {tally.values_tokenised} values")
    for action, outcome in sorted(set(events) | set(tally.events)):
        same(
            f"audit events {action} ({outcome})",
            events[action, outcome],
            tally.events[action, outcome],
        )
    return problems


# --- the run -----------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1e3 if ordered else 0.0


def tracebacks(log: str, limit: int = 3) -> list[str]:
    """The last few exceptions in the server's log: JSON lines with an `exception` field, or
    plain tracebacks from anything that wrote to stderr directly."""
    found: list[str] = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("exception"):
            found.append(f"{entry.get('time')} {entry.get('message')}\n{entry['exception']}")
    found += re.findall(r"^Traceback \(most recent call last\):\n(?:[ \t].*\n)+.*", log, re.M)
    return found[-limit:]


def wait_healthy(base: str, server: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"certsvc serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit("certsvc serve did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    parser.add_argument(
        "--serve-log", type=Path, help="keep the server's stderr here (default: shown on failure)"
    )
    parser.add_argument(
        "--database-url",
        default=POSTGRES,
        help="a PostgreSQL server, on which the bench creates and drops a database of its own",
    )
    args = parser.parse_args()
    if make_url(args.database_url).get_backend_name() != "postgresql":
        raise SystemExit("--database-url: a PostgreSQL server (this bench is the scale-out set-up)")
    seconds = 15.0 if args.quick else 60.0
    started = time.monotonic()
    admin = create_engine(
        make_url(args.database_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    name = f"certsvc_load_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(args.database_url).set(drivername="postgresql+psycopg", database=name)
    problems: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "CERTSVC_HOME": str(Path(tmp) / "home"),
                "CERTSVC_DATABASE_URL": url.render_as_string(hide_password=False),
                "CERTSVC_REDIS_URL": REDIS,
                "CERTSVC_VERIFY_RATE_PER_MINUTE": "100000000",
            }
            demo = subprocess.run(
                [CERTSVC, "demo", "--out", str(Path(tmp) / "demo")],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if demo.returncode != 0:
                raise SystemExit(f"certsvc demo failed:\n{demo.stderr[-3000:]}")
            second = subprocess.run(  # the demo made a second officer (dual control)
                [CERTSVC, "staff", "token", "officer-2"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if second.returncode != 0:
                raise SystemExit(f"certsvc staff token failed:\n{second.stderr[-3000:]}")
            manifest = json.loads((Path(tmp) / "demo" / "manifest.json").read_text())
            credentials = json.loads((Path(tmp) / "home" / "credentials.json").read_text())
            accounts, usbkey = credentials["accounts"], credentials["tokens"][USBKEY]
            desk = Desk(
                registrar=Staff(accounts["registrar"]["api_token"]),
                officer=Staff(accounts["officer"]["api_token"]),
                officer_2=Staff(second.stdout.strip()),
                custodian=Staff(
                    accounts["custodian"]["api_token"],
                    WORKSTATION,
                    load_workstation_key(credentials["workstations"][WORKSTATION]["private_key"]),
                ),
                usbkey_serial=usbkey["serial"],
                usbkey_pin=usbkey["user_pin"],
                verification_ids=[
                    *(m["verification_url"].rsplit("/", 1)[1] for m in manifest),
                    "A" * 26,  # unknown
                ],
            )
            engine = create_engine(env["CERTSVC_DATABASE_URL"], poolclass=NullPool)
            port = 18000 + secrets.randbelow(1000)
            base = f"http://127.0.0.1:{port}"
            log_path = args.serve_log or Path(tmp) / "serve.log"
            with log_path.open("wb") as log:
                server = subprocess.Popen(
                    [CERTSVC, "serve", "--workers", "2", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    wait_healthy(base, server, 60)
                    before = snapshot(engine)
                    tally = asyncio.run(load(base, desk, seconds))
                finally:
                    server.terminate()
                    server.wait(timeout=30)
            serve_log = log_path.read_text(errors="replace")
            print(f"batch {desk.batch_id}; reconciliation against the database:")
            problems += reconcile(engine, tally, desk, before)
            engine.dispose()
            verified = subprocess.run(
                [CERTSVC, "audit", "verify"], env=env, capture_output=True, text=True, check=False
            )
            print(
                f"certsvc audit verify: exit {verified.returncode}: "
                f"{(verified.stdout + verified.stderr).strip()}"
            )
            if verified.returncode != 0:
                problems.append("certsvc audit verify failed")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    total = sum(sum(c.values()) for c in tally.statuses.values())
    errors = len(tally.server_errors)
    print(
        f"requests by kind ({seconds:.0f} s of load, {VERIFIERS} verifiers, "
        f"{TOKENISERS} tokenisers, {DESKS} intake desks, 1 custodian):"
    )
    for kind in sorted(tally.latencies):
        values = tally.latencies[kind]
        print(
            f"  {kind:<20} {len(values):>6,}  p50 {percentile(values, 0.5):7.1f} ms  "
            f"p99 {percentile(values, 0.99):7.1f} ms  {dict(sorted(tally.statuses[kind].items()))}"
        )
    approved = len(tally.approved)
    print(
        f"intake: {len(tally.applications)} applications ({approved} approved, "
        f"{len(tally.decisions) - approved} refused); signed {len(tally.signed_decisions)} "
        f"decisions and {len(tally.signed_certificates)} certificates, "
        f"{len(tally.issued)} issued"
    )
    print("signing sessions (one per worker process): probe over fresh connections:")
    for what, n in tally.probe.items():
        print(f"  {what}: {n}")
    print(
        f"custodian: {len(tally.custodian_ports)} requests over "
        f"{len(set(tally.custodian_ports))} connection(s); its batches stopped for want of a "
        f"session: {tally.session_stops}"
    )
    for line in tally.custodian_switches:
        print(f"  {line}")
    if errors:
        problems.append(f"{errors} server error(s) or failed connection(s)")
        for line in tally.server_errors[:10]:
            print(f"  5xx {line}", file=sys.stderr)
        for trace in tracebacks(serve_log):
            print(trace, file=sys.stderr)
        if args.serve_log:
            print(f"the server's log: {args.serve_log}", file=sys.stderr)
    if tally.unexpected:
        problems.append(f"{len(tally.unexpected)} unexpected answer(s)")
        for line in tally.unexpected[:10]:
            print(f"  unexpected {line}", file=sys.stderr)
    ratio = (total - errors) / total if total else 0.0
    print(f"{total:,} requests, {errors} server errors; {time.monotonic() - started:.0f} s in all")
    if problems:
        print(f"load: ratio={ratio:.3f}, but {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1)
    print(f"RESULT load ratio={ratio:.3f} target=>={TARGET}")


if __name__ == "__main__":
    main()
