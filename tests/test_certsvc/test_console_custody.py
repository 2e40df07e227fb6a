"""The custodian's and the admin's console pages in a real browser against a real `certsvc
serve` on a demo database: the browser enrolled as a workstation with a non-extractable
WebCrypto P-256 key, registered by an admin, then signing decisions, issuing and printing with
every action signed by that key; the admin's accounts with their second person's approval.
And what a thief with a copied cookie, a wrong role or a missing CSRF token gets: nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from playwright.sync_api import Browser, Page
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certsvc.accounts import StaffAccount
from certsvc.cli_demo import decided_round, open_issuer
from certsvc.console.proof import BINDING
from certsvc.settings import Settings
from certsvc.workstations import sign_request
from console_support import (
    COOKIE,
    axe,
    csrf_of,
    new_page,
    sign_in,
    signed_in_cookie,
    unlabelled,
)
from server_support import Server
from service_helpers import demo_member
from test_printing.pdf_tools import nss_database, pdfsig

BROWSER_WS = "browser-custodian"
OPEN = "/console/custodian/session"


def _credentials(settings: Settings) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(settings.credentials_file.read_text())
    return data


def _leaves(sessions: sessionmaker[Session]) -> list[dict[str, object]]:
    with sessions() as db:
        rows = db.scalars(select(AuditEventRow).order_by(AuditEventRow.idx))
        return [decode_leaf(row.leaf) for row in rows]


def _open_session(page: Page, serial: str, key: str, pin: str) -> None:
    token = page.locator(f"article.token[data-serial='{serial}']")
    token.locator("select[name=key]").select_option(key)
    token.locator("input[name=pin]").fill(pin)
    token.locator("form.open-session button").click()


def test_custodian_enrols_the_browser_then_signs_issues_and_prints(
    server: Server,
    page: Page,
    settings: Settings,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    secrets = _credentials(settings)
    custodian, admin = demo_member(secrets, "custodian"), demo_member(secrets, "admin")
    usbkey = secrets["tokens"]["USBKEY-01"]
    serial, pin = usbkey["serial"], usbkey["user_pin"]
    batch_id, applications = decided_round(settings, open_issuer(settings, sessions), 2)

    # The custodian's browser makes its key; only the public half is shown.
    sign_in(page, server.base, custodian, lands="custodian")
    assert unlabelled(page) == []
    page.fill("#ws-new-name", BROWSER_WS)
    page.click("#enrol button")
    page.wait_for_function(
        "document.getElementById('ws-public-key').textContent.includes('BEGIN PUBLIC KEY')"
    )
    pem = page.text_content("#ws-public-key") or ""
    fingerprint = page.text_content("#ws-fingerprint") or ""
    extractable = page.evaluate(
        """() => new Promise(done => { const r = indexedDB.open('certsvc-workstation');
             r.onsuccess = () => { const g = r.result.transaction('keys').objectStore('keys')
               .get('workstation'); g.onsuccess = () => done([g.result.privateKey.extractable,
               g.result.privateKey.algorithm.namedCurve]); }; })"""
    )
    assert extractable == [False, "P-256"]
    # Not registered yet: the server refuses the browser's proof, whatever the PIN.
    _open_session(page, serial, "decision-1", pin)
    page.wait_for_selector("#action-status.error")
    assert f"workstation '{BROWSER_WS}' is not registered" in page.inner_text("#action-status")

    # An admin, in another browser, registers the key and allows the USBKey on it.
    other = page.context.browser
    assert other is not None
    admin_page = new_page(other)
    sign_in(admin_page, server.base, admin, lands="admin")
    assert unlabelled(admin_page) == []
    admin_page.fill("#ws-register-name", BROWSER_WS)
    admin_page.select_option("#ws-register-holder", custodian.username)
    admin_page.fill("#ws-register-key", pem)
    admin_page.click("#workstations form button")
    admin_page.wait_for_url("**done=registered")
    assert fingerprint in admin_page.inner_text(f"tr[data-workstation='{BROWSER_WS}']")
    admin_page.select_option("#place-token", serial)
    admin_page.select_option("#place-workstation", BROWSER_WS)
    admin_page.click("#custody form button")
    admin_page.wait_for_url("**done=allowed")
    assert BROWSER_WS in admin_page.inner_text(f"tr[data-token='{serial}'] td.places")

    # Token status, then sign the batch's decisions and issue its certificates.
    page.goto(f"{server.base}/console/custodian")
    token = page.locator(f"article.token[data-serial='{serial}']")
    assert token.locator(".tries-left").inner_text().isdigit()
    assert token.locator("tr[data-key='decision-1'] td.usage").inner_text().startswith("0 /")
    batch = page.locator(f"article.batch[data-batch='{batch_id}']")
    assert batch.locator(".ready").inner_text() == str(len(applications))
    _open_session(page, serial, "decision-1", pin)
    page.wait_for_url("**done=opened")
    assert token.locator(".session-key").inner_text() == "decision-1"
    batch.locator("form.sign-decisions button").click()
    page.wait_for_url(f"**done=signed-{len(applications)}-refused-0")
    token.locator("form[action$='session/close'] button").click()
    page.wait_for_url("**done=closed")
    _open_session(page, serial, "certificate-1", pin)
    page.wait_for_url("**done=opened")
    batch.locator("form.issue button").click()
    page.wait_for_url(f"**done=issued-{len(applications)}")
    rows = batch.locator("table.certificates tbody tr")
    assert rows.count() == len(applications)
    shot = tmp_path / "console-custodian.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the custodian's page: {shot}")

    # Print: the signed PDF downloads and an ordinary reader finds its signature valid.
    with page.expect_download() as download:
        rows.first.locator("form.pdf button").click()
    pdf = tmp_path / "certificate.pdf"
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    checked = pdfsig(pdf, nss_database(tmp_path / "nss", None))
    assert "Signature Validation: Signature is Valid." in checked.output, checked.output

    # Every custodian action is on record from the browser's workstation; the PIN nowhere.
    leaves = _leaves(sessions)
    opened = [e for e in leaves if e["action"] == "signer.session.open" and e["outcome"] == "ok"]
    assert [e["ws"] for e in opened] == [BROWSER_WS, BROWSER_WS]
    since = leaves.index(opened[0])  # init signed the first revocation list from the demo's
    signed = [
        e
        for e in leaves[since:]
        if e["action"] == "signer.sign" and e["outcome"] == "ok" and e["actor"] == "custodian"
    ]
    # the decisions, the certificates (document and QR payload), the PDF
    assert len(signed) >= 2 * len(applications) + 1
    assert {e["ws"] for e in signed} == {BROWSER_WS}
    assert pin not in page.content() and pin not in page.url
    assert all(pin not in json.dumps(e, default=str) for e in leaves)
    assert pin not in server.output


def test_admin_proposes_an_account_and_sees_the_second_persons_approval(
    server: Server, page: Page, settings: Settings, tmp_path: Path
) -> None:
    secrets = _credentials(settings)
    admin = demo_member(secrets, "admin")
    security = demo_member(secrets, "security_officer")
    sign_in(page, server.base, admin, lands="admin")
    page.fill("#new-username", "custodian.new")
    page.fill("#new-display-name", "新保管员")
    page.select_option("#new-role", "custodian")
    page.click("#accounts form button")
    assert page.text_content("#initial-password")
    row = page.locator("tr[data-username='custodian.new'] td.grant")
    assert "awaiting second person" in row.inner_text()
    assert "awaiting" in (row.get_attribute("class") or "")
    # The admin cannot approve it; a security officer (another person) does, over the API.
    approve = "/api/v1/security/accounts/custodian.new/approve"
    assert httpx.post(f"{server.base}{approve}", headers=admin.auth).status_code == 403
    assert httpx.post(f"{server.base}{approve}", headers=security.auth).status_code == 200
    page.goto(f"{server.base}/console/admin")
    row = page.locator("tr[data-username='custodian.new'] td.grant")
    assert "approved, in force" in row.inner_text()
    # A refused proposal names the field and stores nothing.
    page.fill("#new-username", "custodian.new")
    page.fill("#new-display-name", "重复")
    page.click("#accounts form button")
    assert "username" in page.inner_text("#admin-error")
    assert page.locator("tr[data-username='custodian.new']").count() == 1
    shot = tmp_path / "console-admin.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the admin's page: {shot}")


def test_the_security_officer_approves_an_account_and_a_second_factor_reset(
    server: Server, browser: Browser, page: Page, settings: Settings
) -> None:
    secrets = _credentials(settings)
    admin, registrar = demo_member(secrets, "admin"), demo_member(secrets, "registrar")
    security = demo_member(secrets, "security_officer")
    sign_in(new_page(browser), server.base, registrar, lands="intake")  # enrols TOTP

    sign_in(page, server.base, admin, lands="admin")
    page.fill("#new-username", "officer.new")
    page.fill("#new-display-name", "新审核员")
    page.select_option("#new-role", "officer")
    page.click("#accounts form button")
    page.goto(f"{server.base}/console/admin")
    page.select_option("#reset-username", registrar.username)
    page.click("#factor-resets form button")
    assert page.locator("#reset-proposed").count() == 1

    officer_page = new_page(browser)
    sign_in(officer_page, server.base, security)
    officer_page.click("nav a[href='/console/approvals']")
    officer_page.wait_for_url("**/console/approvals")
    assert unlabelled(officer_page) == [] and axe(officer_page) == []
    officer_page.click("#pending-accounts tr[data-username='officer.new'] button")
    officer_page.wait_for_url("**/console/approvals?done=account")
    assert officer_page.locator("#pending-accounts tr[data-username='officer.new']").count() == 0
    officer_page.click(f"#pending-resets tr[data-username='{registrar.username}'] button")
    officer_page.wait_for_url("**/console/approvals?done=reset")
    assert officer_page.locator("#pending-resets tr[data-username]").count() == 0

    page.goto(f"{server.base}/console/admin")
    assert "approved, in force" in page.inner_text("tr[data-username='officer.new'] td.grant")
    # The registrar's next sign-in enrols a new second factor: a new secret is shown.
    sign_in(new_page(browser), server.base, registrar, lands="intake")


def test_a_stolen_cookie_a_wrong_role_or_no_csrf_token_does_nothing(
    server: Server, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    secrets = _credentials(settings)
    custodian = demo_member(secrets, "custodian", "ws-custodian-01")
    usbkey = secrets["tokens"]["USBKEY-01"]
    cookie = signed_in_cookie(server.base, custodian)
    jar = {COOKIE: cookie}
    csrf = csrf_of(httpx.get(f"{server.base}/console/custodian", cookies=jar).text)
    form = {"csrf": csrf, "token": usbkey["serial"], "key": "decision-1", "pin": usbkey["user_pin"]}

    # The cookie and the page's CSRF token, but no workstation signature: refused, audited.
    stolen = httpx.post(f"{server.base}{OPEN}", data=form, cookies=jar)
    assert stolen.status_code == 401
    assert usbkey["user_pin"] not in stolen.text
    refusals = [
        e
        for e in _leaves(sessions)
        if e["action"] == "service.workstation_proof" and e["outcome"] == "refused"
    ]
    assert refusals and refusals[-1]["actor"] == custodian.username
    assert refusals[-1]["object"] == f"POST {OPEN}"
    assert str(refusals[-1]["reason"]).startswith("missing header Certsvc-")

    # The workstation's real key, but a signature bound to another console session: refused.
    raw = urlencode(form).encode()
    assert custodian.workstation and custodian.workstation_key
    elsewhere = sign_request(
        custodian.workstation_key, custodian.workstation, "POST", OPEN, raw, BINDING + "x" * 43
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    replayed = httpx.post(
        f"{server.base}{OPEN}", content=raw, cookies=jar, headers={**headers, **elsewhere}
    )
    assert replayed.status_code == 401
    assert "does not verify" in replayed.json()["detail"]
    # Bound to this session it opens (the CLI's Ed25519 key serves the console as well).
    proof = sign_request(
        custodian.workstation_key, custodian.workstation, "POST", OPEN, raw, BINDING + csrf
    )
    opened = httpx.post(
        f"{server.base}{OPEN}", content=raw, cookies=jar, headers={**headers, **proof}
    )
    assert opened.status_code == 200, opened.text

    # No CSRF token: 403 before anything else.
    no_csrf = {k: v for k, v in form.items() if k != "csrf"}
    assert httpx.post(f"{server.base}{OPEN}", data=no_csrf, cookies=jar).status_code == 403
    admin_jar = {COOKIE: signed_in_cookie(server.base, demo_member(secrets, "admin"))}
    proposal = {"username": "sneaky", "display_name": "x", "role": "admin"}
    answer = httpx.post(f"{server.base}/console/admin/accounts", data=proposal, cookies=admin_jar)
    assert answer.status_code == 403
    with sessions() as db:
        assert db.scalar(select(StaffAccount).where(StaffAccount.username == "sneaky")) is None

    # Wrong roles: an officer reaches neither page; a custodian not the admin's; an admin
    # not the custodian's nor the security officer's approvals.
    officer_jar = {COOKIE: signed_in_cookie(server.base, demo_member(secrets, "officer"))}
    for jar_, path in (
        (officer_jar, "/console/custodian"),
        (officer_jar, "/console/admin"),
        (jar, "/console/admin"),
        (admin_jar, "/console/custodian"),
        (admin_jar, "/console/approvals"),  # an admin proposes; never approves
        (officer_jar, "/console/approvals"),
    ):
        assert httpx.get(f"{server.base}{path}", cookies=jar_).status_code == 403, path
    officer_csrf = csrf_of(
        httpx.get(f"{server.base}/console/", cookies=officer_jar, follow_redirects=True).text
    )
    refused = httpx.post(
        f"{server.base}{OPEN}", data={**form, "csrf": officer_csrf}, cookies=officer_jar
    )
    assert refused.status_code == 403
    assert usbkey["user_pin"] not in server.output
