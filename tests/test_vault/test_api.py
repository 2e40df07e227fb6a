"""The vault's HTTP API: roles, errors that name the item but not the value, the audited and
rate-limited reveal, 503 without the key token."""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certify.intake import ApplicantTokens
from certsvc.app import create_app
from certsvc.bootstrap import DEMO_REVEALER_WORKSTATION, DEMO_WORKSTATIONS
from certsvc.settings import Settings, get_settings, reset_settings
from service_helpers import StaffMember, demo_member
from test_vault.conftest import VaultEnv, case_for
from vault import synthetic
from vault.models import VaultEntry, VaultReveal

ID = "11010519491231002X"
PHONE = "13812345678"


@dataclass
class Api:
    client: TestClient
    env: VaultEnv
    members: dict[str, StaffMember]

    def post(self, path: str, who: str, body: dict[str, Any], signed: bool = True) -> Any:
        """POST as `who`, from their registered workstation when they have one."""
        member, target, raw = self.members[who], f"/api/v1/vault/{path}", json.dumps(body)
        headers = member.auth
        if signed and member.workstation is not None:
            headers = member.signed("POST", target, raw.encode())
        return self.client.post(
            target, content=raw, headers={**headers, "Content-Type": "application/json"}
        )

    def events(self, action: str) -> list[dict[str, object]]:
        with self.env.sessions() as db:
            leaves = db.scalars(
                select(AuditEventRow.leaf)
                .where(AuditEventRow.action == action)
                .order_by(AuditEventRow.idx)
            )
            return [decode_leaf(leaf) for leaf in leaves]


@pytest.fixture
def api(vault_env: VaultEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv("CERTSVC_VAULT_REVEAL_LIMIT", "3")
    reset_settings()
    settings: Settings = get_settings()
    secrets = json.loads(settings.credentials_file.read_text())
    workstation_of = {owner: name for name, owner in DEMO_WORKSTATIONS.items()}
    members = {
        name: demo_member(secrets, name, workstation_of.get(name)) for name in secrets["accounts"]
    }
    app = create_app(settings)
    with TestClient(app) as client:
        yield Api(client, vault_env, members)
    app.state.engine.dispose()


def file_case(api: Api, **tokens: str) -> str:
    """`application:<id>` of a case whose applicant holds `tokens` (an ID number and a name of
    their own added when not given)."""
    rng = random.Random(secrets.randbits(32))
    for field, kind, value in (
        ("id_number_token", "id_number", synthetic.id_number(rng)),
        ("name_token", "name", "李四"),
    ):
        tokens.setdefault(field, tokenise(api, (kind, value))[0]["token"])
    return case_for(api.env, ApplicantTokens(**tokens))


def tokenise(api: Api, *items: tuple[str, str]) -> list[dict[str, Any]]:
    body = {"items": [{"kind": k, "value": v} for k, v in items]}
    response = api.post("tokenise", "registrar", body)
    assert response.status_code == 200, response.text
    tokens: list[dict[str, Any]] = response.json()["tokens"]
    return tokens


def test_tokenise_many_with_facts_then_look_up(api: Api) -> None:
    out = tokenise(
        api, ("id_number", ID.lower()), ("phone", "+86 138 0013 8000"), ("id_number", ID)
    )
    assert out[0]["token"] == out[2]["token"] and out[0]["created"] and not out[2]["created"]
    assert out[0]["facts"] == {"birth_date": "1949-12-31", "sex": "F", "region_code": "110105"}
    assert out[1]["facts"] is None
    found = api.post(
        "lookup",
        "officer",
        {
            "items": [
                {"kind": "phone", "value": "13800138000"},
                {"kind": "email", "value": "a@b.cn"},
            ]
        },
    )
    assert found.json() == {"tokens": [out[1]["token"], None]}
    [event] = api.events("vault.tokenise")
    assert event["details"] == {"values": 3, "created": 2}


def test_invalid_items_are_all_named_without_their_values(api: Api) -> None:
    body = {
        "items": [
            {"kind": "phone", "value": "13800138000"},
            {"kind": "id_number", "value": "110105194912310021"},
            {"kind": "email", "value": "no-at-sign"},
        ]
    }
    response = api.post("tokenise", "registrar", body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [
        ["body", "items", 1, "value"],
        ["body", "items", 2, "value"],
    ]
    assert detail[0]["msg"] == "id_number: check character does not match"
    assert "110105194912310021" not in response.text and "no-at-sign" not in response.text
    assert api.post("lookup", "officer", {"items": []}).status_code == 422


def test_mask_for_staff_without_reveal_rights(api: Api) -> None:
    name, phone = tokenise(api, ("name", "张三明"), ("phone", "13812345678"))
    response = api.post("mask", "officer", {"tokens": [name["token"], phone["token"]]})
    assert [m["masked"] for m in response.json()] == ["张*明", "138****5678"]
    assert api.post("mask", "admin", {"tokens": [name["token"]]}).status_code == 403


def test_reveal_is_audited_per_value(api: Api) -> None:
    id_token, name_token = (t["token"] for t in tokenise(api, ("id_number", ID), ("name", "张三")))
    case = file_case(api, id_number_token=id_token, name_token=name_token)
    body = {"tokens": [id_token, name_token], "case": case, "purpose": "复核申请人身份（现场确认）"}
    response = api.post("reveal", "vault_revealer", body)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert [(r["kind"], r["value"]) for r in response.json()] == [
        ("id_number", ID),
        ("name", "张三"),
    ]
    events = api.events("vault.reveal")
    assert [(e["object"], e["outcome"], e["actor"], e["ws"]) for e in events] == [
        (id_token, "ok", "vault_revealer", DEMO_REVEALER_WORKSTATION),
        (name_token, "ok", "vault_revealer", DEMO_REVEALER_WORKSTATION),
    ]
    assert events[0]["reason"] == f"{case}: 复核申请人身份（现场确认）"
    assert ID not in json.dumps(events, ensure_ascii=False, default=str)


def test_reveal_needs_the_revealers_registered_workstation(api: Api) -> None:
    token = tokenise(api, ("id_number", ID))[0]["token"]
    body = {
        "tokens": [token],
        "case": file_case(api, id_number_token=token),
        "purpose": "复核申请人身份",
    }
    # The API token alone (stolen, say) reveals nothing, and the attempt is on record.
    bare = api.post("reveal", "vault_revealer", body, signed=False)
    assert bare.status_code == 401 and ID not in bare.text
    assert api.events("vault.reveal") == []
    [attempt] = api.events("service.workstation_proof")
    assert (attempt["actor"], attempt["outcome"]) == ("vault_revealer", "refused")


@pytest.mark.parametrize("who", ["admin", "security_officer", "registrar", "officer"])
def test_reveal_refused_for_other_roles_and_audited(api: Api, who: str) -> None:
    token = tokenise(api, ("phone", "13800138000"))[0]["token"]
    case = file_case(api, phone_token=token)
    body = {"tokens": [token], "case": case, "purpose": "just curious about it"}
    response = api.post("reveal", who, body)
    assert response.status_code == 403
    assert "13800138000" not in response.text
    [event] = api.events("vault.reveal")
    assert (event["actor"], event["outcome"]) == (who, "refused")


def test_reveal_needs_a_purpose_and_a_known_token(api: Api) -> None:
    token = tokenise(api, ("phone", "13800138000"))[0]["token"]
    case = file_case(api, phone_token=token)
    ask = {"tokens": [token], "case": case}
    short = api.post("reveal", "vault_revealer", {**ask, "purpose": "why"})
    assert short.status_code == 422
    quoting = "confirm holder of 138 0013 8000 for the school"
    leaking = api.post("reveal", "vault_revealer", {**ask, "purpose": quoting})
    assert leaking.status_code == 422 and "purpose" in leaking.text
    assert "138" not in leaking.text
    no_case = api.post("reveal", "vault_revealer", {"tokens": [token], "purpose": "a" * 10})
    assert no_case.status_code == 422 and no_case.json()["detail"][0]["loc"] == ["body", "case"]
    unknown = "tk_ph_AAAAAAAAAAAAAAAAAAAAAA"
    missing = api.post(
        "reveal",
        "vault_revealer",
        {"tokens": [unknown], "case": case, "purpose": "check the applicant"},
    )
    assert missing.status_code == 422 and "tokens[0]" in missing.json()["detail"]
    [event] = api.events("vault.reveal")
    assert (event["object"], event["outcome"], event["reason"]) == (
        unknown,
        "refused",
        f"token outside {case}",
    )


def test_a_reveal_opens_only_the_values_of_the_case_it_names(api: Api) -> None:
    """A purpose is checked against the records: the case must exist and every token must be
    its applicant's; each refusal is on record."""
    mine, theirs = (t["token"] for t in tokenise(api, ("phone", PHONE), ("phone", "13900139000")))
    case = file_case(api, phone_token=mine)
    file_case(api, phone_token=theirs)
    purpose = "核对联系方式以便通知领证"
    other = api.post(
        "reveal", "vault_revealer", {"tokens": [mine, theirs], "case": case, "purpose": purpose}
    )
    assert other.status_code == 422 and other.json()["detail"].startswith("tokens[1]: ")
    assert "13900139000" not in other.text
    nowhere = api.post(
        "reveal",
        "vault_revealer",
        {"tokens": [mine], "case": "application:999999", "purpose": purpose},
    )
    assert nowhere.status_code == 404 and nowhere.json()["detail"].startswith("case: ")
    granted = api.post(
        "reveal", "vault_revealer", {"tokens": [mine], "case": case, "purpose": purpose}
    )
    assert granted.status_code == 200 and granted.json()[0]["value"] == PHONE
    outcomes = [(e["object"], e["outcome"]) for e in api.events("vault.reveal")]
    assert outcomes == [
        (mine, "refused"),
        (theirs, "refused"),
        (mine, "refused"),
        (mine, "ok"),
    ]


def test_reveal_rate_limit_per_person(api: Api) -> None:
    token = tokenise(api, ("phone", "13800138000"))[0]["token"]
    case = file_case(api, phone_token=token)
    body = {"tokens": [token, token], "case": case, "purpose": "check the applicant"}
    assert api.post("reveal", "vault_revealer", body).status_code == 200
    limited = api.post("reveal", "vault_revealer", body)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "at most 3 values per 60 minutes" in limited.json()["detail"]
    outcomes = [e["outcome"] for e in api.events("vault.reveal")]
    assert outcomes == ["ok", "ok", "refused", "refused"]


def test_key_token_unavailable_answers_503_and_stores_nothing(api: Api) -> None:
    api.env.bay.unplug(api.env.kek_serial)
    body = {"items": [{"kind": "id_number", "value": ID}]}
    response = api.post("tokenise", "registrar", body)
    assert response.status_code == 503
    assert "vault key token unavailable" in response.json()["detail"]
    assert ID not in response.text
    assert api.events("vault.tokenise") == []
    api.env.bay.replug(api.env.kek_serial)
    assert api.post("tokenise", "registrar", body).status_code == 200


def test_tampered_ciphertext_is_its_own_error(api: Api) -> None:
    """A byte of a stored ciphertext flipped in the database: the reveal answers 500 'stored
    value failed its integrity check' (not the 503 of a token that stopped answering), audits
    the failure, records no reveal; the key token itself still works."""
    phone, name = (t["token"] for t in tokenise(api, ("phone", PHONE), ("name", "张三明")))
    with api.env.sessions.begin() as db:
        sealed = bytearray(
            db.scalar(select(VaultEntry.ciphertext).where(VaultEntry.token == phone))
        )
        sealed[-1] ^= 0x01
        db.execute(update(VaultEntry).where(VaultEntry.token == phone).values(ciphertext=sealed))
    case = file_case(api, phone_token=phone, name_token=name)
    body = {"tokens": [name, phone], "case": case, "purpose": "check the applicant"}
    response = api.post("reveal", "vault_revealer", body)
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert "stored value failed its integrity check" in detail and "security officer" in detail
    assert PHONE not in response.text and "张三明" not in response.text
    [event] = api.events("vault.reveal")
    assert (event["object"], event["outcome"], event["reason"]) == (
        phone,
        "failed",
        "stored value failed its integrity check",
    )
    with api.env.sessions() as db:
        assert db.scalar(select(func.count()).select_from(VaultReveal)) == 0
    assert api.post("mask", "officer", {"tokens": [phone]}).status_code == 500
    masked = api.post("mask", "officer", {"tokens": [name]})
    assert masked.status_code == 200 and masked.json()[0]["masked"] == "张*明"
