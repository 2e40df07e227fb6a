"""Per-person limits that hold (issue 14): parallel reveals against the limit, exact-match
lookups limited, audited with their misses, and many misses raising a security alert. On
SQLite and on a real PostgreSQL, with requests fired from parallel threads."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from certsvc.app import create_app
from certsvc.bootstrap import DEMO_WORKSTATIONS
from certsvc.settings import get_settings, reset_settings
from common.unit_of_work import unit_of_work
from service_helpers import demo_member
from signer.actor import Actor
from test_vault.conftest import VaultEnv
from test_vault.test_api import Api, file_case, tokenise
from vault.errors import RevealRateLimited
from vault.models import VaultReveal
from vault.reveal import RevealLimit, reveal

PARALLEL = 10
REVEAL_LIMIT = 20


@pytest.fixture
def api(vault_env: VaultEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    for name, value in {
        "CERTSVC_VAULT_REVEAL_LIMIT": str(REVEAL_LIMIT),
        "CERTSVC_VAULT_LOOKUP_LIMIT": "10",
        "CERTSVC_VAULT_LOOKUP_ALERT_MISSES": "3",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    settings = get_settings()
    secrets = json.loads(settings.credentials_file.read_text())
    workstation_of = {owner: name for name, owner in DEMO_WORKSTATIONS.items()}
    members = {
        name: demo_member(secrets, name, workstation_of.get(name)) for name in secrets["accounts"]
    }
    app = create_app(settings)
    with TestClient(app) as client:
        yield Api(client, vault_env, members)
    app.state.engine.dispose()


def test_parallel_reveals_never_pass_the_limit(api: Api) -> None:
    """Ten reveals of three values each, at once, against a limit of 20: six are answered
    (18 values), four get 429 — never more values, never a 500."""
    tokens = [
        t["token"]
        for t in tokenise(
            api, ("id_number", "11010519491231002X"), ("name", "张三"), ("phone", "13800138000")
        )
    ]
    case = file_case(api, id_number_token=tokens[0], name_token=tokens[1], phone_token=tokens[2])
    body = {"tokens": tokens, "case": case, "purpose": "复核申请人身份（现场确认）"}

    # The token's last use is recorded now, so that the parallel requests do not queue on
    # that update and meet only in the limit's own check.
    revealer = api.members["vault_revealer"]
    assert api.client.get("/api/v1/staff/me", headers=revealer.auth).status_code == 200

    def reveal(_: int) -> tuple[int, int]:
        response = api.post("reveal", "vault_revealer", body)
        return response.status_code, len(response.json()) if response.status_code == 200 else 0

    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(reveal, range(PARALLEL)))
    statuses = Counter(status for status, _ in answers)
    answered = REVEAL_LIMIT // len(tokens)
    assert statuses == {200: answered, 429: PARALLEL - answered}
    assert sum(values for _, values in answers) <= REVEAL_LIMIT
    with api.env.sessions() as db:
        assert db.scalar(select(func.count()).select_from(VaultReveal)) <= REVEAL_LIMIT


def test_lookups_are_limited_audited_and_many_misses_alert(api: Api) -> None:
    # The report from now on: the body's provisioning signatures are the custodian's, and
    # outside office hours they are alerts of their own.
    start = datetime.now(UTC)
    known = tokenise(api, ("phone", "13800138000"))[0]["token"]
    guesses = [{"kind": "phone", "value": f"1380013800{digit}"} for digit in range(4)]
    found = api.post("lookup", "officer", {"items": guesses})
    assert found.status_code == 200 and found.json()["tokens"] == [known, None, None, None]
    [batch] = api.events("vault.lookup")
    assert batch["details"] == {"values": 4, "found": 1, "misses": 3}
    [alert] = api.events("security.alert")
    assert alert["actor"] == "officer" and alert["details"]["kind"] == "lookup_misses"
    assert "13800138001" not in json.dumps(alert, ensure_ascii=False, default=str)
    report = api.client.get(
        "/api/v1/audit/report/alerts",
        params={"since": start.isoformat()},
        headers=api.members["security_officer"].auth,
    )
    assert [e["event"]["action"] for e in report.json()] == ["security.alert"]
    more = [{"kind": "phone", "value": f"1391234567{digit}"} for digit in range(7)]
    limited = api.post("lookup", "officer", {"items": more})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "at most 10 values per 60 minutes" in limited.json()["detail"]
    assert [e["outcome"] for e in api.events("vault.lookup")] == ["ok", "refused"]
    # The limit is the person's: the registrar (another person) still looks up.
    assert api.post("lookup", "registrar", {"items": more}).status_code == 200


def test_parallel_lookups_never_pass_the_limit(api: Api) -> None:
    items = {"items": [{"kind": "email", "value": f"n{n}@example.cn"} for n in range(3)]}

    assert api.client.get("/api/v1/staff/me", headers=api.members["officer"].auth).is_success

    def lookup(_: int) -> int:
        return int(api.post("lookup", "officer", items).status_code)

    with ThreadPoolExecutor(PARALLEL) as pool:
        statuses = Counter(pool.map(lookup, range(PARALLEL)))
    assert statuses == {200: 3, 429: PARALLEL - 3}


def test_another_account_of_the_same_person_shares_the_limit(api: Api) -> None:
    """Values revealed under one account count for its person under any other: a custodian
    account of the revealer's person, printing, finds the person's limit used up."""
    tokens = [t["token"] for t in tokenise(api, ("name", "王五"), ("phone", "13900001111"))]
    case = file_case(api, name_token=tokens[0], phone_token=tokens[1])
    body = {"tokens": tokens, "case": case, "purpose": "复核申请人身份（现场确认）"}
    for _ in range(REVEAL_LIMIT // len(tokens)):
        assert api.post("reveal", "vault_revealer", body).status_code == 200
    limit = RevealLimit(REVEAL_LIMIT, timedelta(hours=1))
    same_person = Actor("printing.account", 0, "custodian", person="vault_revealer")
    other_person = Actor("printing.other", 0, "custodian", person="P-OTHER")
    with pytest.raises(RevealRateLimited), unit_of_work(api.env.sessions) as db:
        reveal(db, api.env.vault, same_person, tokens[:1], "printing the certificate", limit)
    with unit_of_work(api.env.sessions) as db:
        opened = reveal(db, api.env.vault, other_person, tokens[:1], "printing the cert", limit)
        assert opened[tokens[0]].value == "王五"
