"""`certsvc serve --workers 2`. A custodian's signing session lives in the worker that opened
it. Requests that land on the other worker must neither open a second session on the same
USBKey nor answer a batch as if no session were open (a 200 that signed nothing)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from certsvc.settings import Settings
from init_cache import initialised
from server_support import serving
from service_helpers import StaffMember, demo_member
from signer.models import SigningKey
from signing_env import WORKSTATION
from vault import synthetic

SESSIONS = "/api/v1/signing/sessions"
TRIES = 20


def _post(
    client: httpx.Client, path: str, body: dict[str, object], who: StaffMember
) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {**who.signed("POST", path, raw), "Content-Type": "application/json"}
    return client.post(path, content=raw, headers=headers)


def test_one_session_per_usbkey_across_workers(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    initialised(settings)
    secrets = json.loads(settings.credentials_file.read_text())
    custodian = demo_member(secrets, "custodian", WORKSTATION)
    usbkey = secrets["tokens"]["USBKEY-01"]
    opening = {
        "token_serial": usbkey["serial"],
        "key_label": "certificate-1",
        "pin": usbkey["user_pin"],
    }
    with sessions() as db:
        key_id = db.scalar(select(SigningKey.id).where(SigningKey.label == "certificate-1"))
    batch = {
        "key_id": key_id,
        "documents": [{"kind": "certificate", "document_id": "W0001"}],
    }
    answers: list[tuple[str, int, str]] = []
    with (
        serving("--workers", "2") as server,
        httpx.Client(base_url=server.base, timeout=30) as holder,
    ):
        assert _post(holder, SESSIONS, opening, custodian).status_code == 201
        for _ in range(TRIES):
            with httpx.Client(base_url=server.base, timeout=30) as fresh:
                again = _post(fresh, SESSIONS, opening, custodian)
                answers.append(("open", again.status_code, again.text))
            with httpx.Client(base_url=server.base, timeout=30) as fresh:
                signed = _post(fresh, "/api/v1/signing/batches", batch, custodian)
                answers.append(("sign", signed.status_code, signed.text))
    opened = [a for a in answers if a[0] == "open"]
    assert [a for a in opened if a[1] != 409] == []
    assert usbkey["user_pin"] not in server.output + "".join(text for *_, text in answers)
    for _, code, text in (a for a in answers if a[0] == "sign"):
        if code == 200:  # the worker holding the session signed it
            assert json.loads(text)["stopped_by"] is None, text
        else:  # the other worker says where the session is
            assert code == 409 and "another worker process" in text, text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_concurrent_staff_writes_on_sqlite_all_succeed(settings: Settings) -> None:
    """Twelve registrars at once on the embedded SQLite default, over two workers: each
    request that reads and then writes waits its turn for the write lock instead of failing
    (deferred transactions answered more than half of them 503, SQLITE_BUSY_SNAPSHOT)."""
    initialised(settings)
    token = json.loads(settings.credentials_file.read_text())["accounts"]["registrar"]["api_token"]
    registrars, each = 12, 10
    statuses: list[list[int]] = [[] for _ in range(registrars)]
    stop = threading.Event()

    def registrar(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
            while not stop.is_set():
                value = synthetic.id_number(rng)
                answer = client.post(
                    f"{server.base}/api/v1/vault/tokenise",
                    json={"items": [{"kind": "id_number", "value": value}]},
                )
                statuses[seed].append(answer.status_code)

    with serving("--workers", "2") as server:
        threads = [threading.Thread(target=registrar, args=(n,)) for n in range(registrars)]
        for thread in threads:
            thread.start()
        # Until every registrar has had `each` answers, all twelve were writing at once.
        deadline = time.monotonic() + 240
        while min(map(len, statuses)) < each and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    answers = Counter(status for mine in statuses for status in mine)
    assert min(map(len, statuses)) >= each
    assert answers == {200: answers.total()}
