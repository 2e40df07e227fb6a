"""The vault revealer's console page in a real browser against a real `certsvc serve`: the
browser enrolled as the revealer's workstation and registered by an admin, one value of a case
filed through a registrar's intake page revealed for a stated purpose and shown once; the
refusals (a purpose quoting an ID number, a case the token is not of, no CSRF token, another
role) reveal nothing and are on record as the API's are; no other page carries a raw value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certify.models import Applicant, Application
from certsvc.settings import Settings
from console_support import new_page, sign_in, unlabelled
from server_support import Server
from service_helpers import demo_member
from test_certsvc.test_console_desk import _batch, _person  # the desk's batch and applicants

BROWSER_WS = "browser-revealer"
PURPOSE = "核实申请人身份，复核本案的申诉 identity check for this case's appeal"


@pytest.fixture
def one_value_an_hour(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The revealer's limit, for the server started after it (and after `settings` clears
    the environment): one value per hour."""
    monkeypatch.setenv("CERTSVC_VAULT_REVEAL_LIMIT", "1")
    monkeypatch.setenv("CERTSVC_VAULT_REVEAL_WINDOW_MINUTES", "60")
    yield


def _reveals(sessions: sessionmaker[Session]) -> list[dict[str, object]]:
    with sessions() as db:
        rows = db.scalars(select(AuditEventRow).where(AuditEventRow.action == "vault.reveal"))
        return [decode_leaf(row.leaf) for row in rows]


def _ask(page: Page, case: str, token: str, purpose: str) -> None:
    page.fill("#reveal-case", case)
    page.fill("#reveal-token", token)
    page.fill("#reveal-purpose", purpose)
    page.click("#reveal-form button")


def _refused(page: Page, reason: str) -> None:
    """Wait for the refusal naming `reason` beside the form."""
    page.locator("#action-status.error", has_text=reason).wait_for()


def test_revealer_reveals_one_value_once_and_nothing_else_leaks(
    one_value_an_hour: None,
    server: Server,
    browser: Browser,
    page: Page,
    settings: Settings,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    secrets = json.loads(settings.credentials_file.read_text())
    revealer = demo_member(secrets, "vault_revealer")
    registrar, admin = demo_member(secrets, "registrar"), demo_member(secrets, "admin")
    person = _person(70)
    sources: list[str] = []  # every page but the answer

    # A registrar, in another browser, files the case; their case page shows it masked.
    desk = new_page(browser)
    batch_id = _batch(sessions)
    sign_in(desk, server.base, registrar, lands="intake")
    desk.select_option("#batch_id", str(batch_id))
    desk.select_option("#qualification", "SS")
    desk.select_option("#subject", "02")
    for field, value in person.items():
        desk.fill(f"#{field}", value)
    desk.click("main button[type=submit]")
    desk.wait_for_url("**/console/cases/*")
    case = f"application:{desk.url.rsplit('/', 1)[1]}"
    sources.append(desk.content())
    with sessions() as db:
        applicant = db.scalars(
            select(Applicant).join(Application, Application.applicant_id == Applicant.id)
        ).one()
        id_token, name_token = applicant.id_number_token, applicant.name_token

    # Another role: the page is not theirs, and a reveal they post is refused and on record.
    assert (desk.goto(f"{server.base}/console/reveal") or desk).status == 403
    sources.append(desk.content())
    csrf = desk.input_value("header input[name=csrf]")
    posted = desk.request.post(
        f"{server.base}/console/reveal",
        form={"csrf": csrf, "case": case, "token": id_token, "purpose": PURPOSE},
    )
    assert posted.status == 403 and person["id_number"] not in posted.text()
    [by_registrar] = _reveals(sessions)
    assert by_registrar["outcome"] == "refused" and by_registrar["actor"] == registrar.username

    # The revealer's browser makes its workstation key; an admin registers it.
    sign_in(page, server.base, revealer, lands="reveal")
    assert unlabelled(page) == []
    page.fill("#ws-new-name", BROWSER_WS)
    page.click("#enrol button")
    page.wait_for_function(
        "document.getElementById('ws-public-key').textContent.includes('BEGIN PUBLIC KEY')"
    )
    # Not registered yet: refused whatever the purpose, nothing revealed.
    _ask(page, case, id_token, PURPOSE)
    _refused(page, f"workstation '{BROWSER_WS}' is not registered")
    admin_page = new_page(browser)
    sign_in(admin_page, server.base, admin, lands="admin")
    admin_page.fill("#ws-register-name", BROWSER_WS)
    admin_page.select_option("#ws-register-holder", revealer.username)
    admin_page.fill("#ws-register-key", page.text_content("#ws-public-key") or "")
    admin_page.click("#workstations form button")
    admin_page.wait_for_url("**done=registered")
    sources.append(admin_page.content())

    # Refusals: a purpose quoting an ID number (named, not echoed), a case not the token's.
    page.goto(f"{server.base}/console/reveal")
    _ask(page, case, id_token, f"{PURPOSE} {person['id_number']}")
    _refused(page, "purpose: must not quote an ID number")
    _ask(page, "application:999999", id_token, PURPOSE)
    _refused(page, "case: no application 999999")
    assert page.is_hidden("#revealed")
    sources.append(page.content())
    # Without the form's CSRF token: refused before anything else.
    bare = page.request.post(
        f"{server.base}/console/reveal",
        form={"case": case, "token": id_token, "purpose": PURPOSE},
    )
    assert bare.status == 403 and "csrf" in bare.text()
    refusals = _reveals(sessions)[1:]
    assert [(e["outcome"], e["reason"]) for e in refusals] == [
        ("refused", "case: no application 999999")
    ]

    # The reveal: the value shown once, on this answer only.
    page.goto(f"{server.base}/console/reveal")
    _ask(page, case, id_token, PURPOSE)
    page.wait_for_selector("#revealed:not([hidden])")
    assert page.inner_text("#revealed .revealed-value") == person["id_number"]
    assert page.input_value("#reveal-token") == "" and page.url.endswith("/console/reveal")
    answer = page.content()
    assert person["id_number"] in answer
    assert person["name"] not in answer and person["phone"] not in answer
    shot = tmp_path / "console-revealer.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the revealer's page: {shot}")
    page.reload()
    assert page.is_hidden("#revealed")
    sources.append(page.content())
    # Over the person's limit: a clear message with the wait, nothing revealed.
    _ask(page, case, name_token, PURPOSE)
    _refused(page, "reveal limit reached: at most 1 values per 60 minutes; try again in")
    assert page.is_hidden("#revealed")
    sources.append(page.content())
    for html in sources:
        assert all(value not in html for value in person.values())

    # On record: one event for the value, naming the case, purpose and workstation; no value.
    revealed = [e for e in _reveals(sessions) if e["outcome"] == "ok"]
    assert [(e["object"], e["actor"]) for e in revealed] == [(id_token, revealer.username)]
    assert revealed[0]["reason"] == f"{case}: {PURPOSE}"
    assert revealed[0]["ws"] == BROWSER_WS
    limited = [e for e in _reveals(sessions) if e["object"] == name_token]
    assert [(e["outcome"], e["reason"]) for e in limited] == [
        ("refused", "rate limit: 1 values per 60 minutes")
    ]
    assert all(
        v not in json.dumps(_reveals(sessions), ensure_ascii=False, default=str)
        for v in person.values()
    )
    assert all(v not in server.output for v in person.values())
