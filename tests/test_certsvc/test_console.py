"""The staff console in a real browser (Playwright driving Debian's Chromium) against a real
`certsvc serve`: sign-in with password and TOTP, the security officer's dashboard against the
audit log's own counts, CSRF, a cookie without the second factor, idle and absolute expiry,
labels on every form field. Screenshots are kept in the test output."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Page
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent, decode_leaf
from audit.log import append
from audit.models import AuditEventRow
from certsvc.accounts import Role, StaffAccount
from certsvc.console import totp
from certsvc.console.models import ConsoleSecurityKey, ConsoleSession, ConsoleTotp
from certsvc.settings import Settings
from common.dbtypes import utcnow
from common.errors import Conflict
from console_support import (
    COOKIE,
    LOGIN_COOKIE,
    axe,
    cookie_of,
    csrf_of,
    password_only,
    sign_in,
    unlabelled,
)
from init_cache import initialised
from server_support import Server, serving
from service_helpers import MakeStaff
from signer.models import SigningKey


def _signer_events(sessions: sessionmaker[Session]) -> str:
    """Signatures and refusals with a real key of `certsvc init`, as the gate records them
    (the document as object, the key in the details): the key's name."""
    with sessions.begin() as db:
        key = db.scalars(select(SigningKey).order_by(SigningKey.id)).first()
        assert key is not None
        details = {"key_id": key.id, "key": key.label, "token": key.token_serial}
        for n in range(3):
            append(
                db, AuditEvent("c", "custodian", "signer.sign", f"doc:{n}", "ok", details=details)
            )
        for rule in ("key-usage-limit", "criminal-record-check", "key-usage-limit"):
            append(
                db,
                AuditEvent(
                    "c",
                    "custodian",
                    "signer.sign",
                    "doc:x",
                    "refused",
                    reason=rule,
                    details=details,
                ),
            )
        return f"{key.token_serial}/{key.label}"


def _log_counts(sessions: sessionmaker[Session]) -> dict[str, Counter[str]]:
    """From the audit log itself: per key named in a signature's details, and per UTC day,
    the signatures made ('made') and refused ('refused')."""
    counts: dict[str, Counter[str]] = {}
    with sessions() as db:
        for row in db.scalars(select(AuditEventRow).where(AuditEventRow.action == "signer.sign")):
            details = decode_leaf(row.leaf).get("details") or {}
            assert isinstance(details, dict)
            if "token" not in details:
                continue
            name = f"{details['token']}/{details['key']}"
            day = row.occurred_at.date().isoformat()
            if row.outcome in ("ok", "refused"):
                kind = "made" if row.outcome == "ok" else "refused"
                counts.setdefault(name, Counter())[f"{day} {kind}"] += 1
    return counts


def test_officer_signs_in_with_totp_and_reads_the_log_counts(
    server: Server,
    page: Page,
    make_staff: MakeStaff,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    officer = make_staff(Role.SECURITY_OFFICER)
    key = _signer_events(sessions)
    secret = sign_in(page, server.base, officer)
    assert unlabelled(page) == [] and axe(page) == []

    expected = _log_counts(sessions)
    assert expected[key]  # the events above, at least
    for name, counts in expected.items():
        if "/audit-checkpoint" in name:  # signs every second meanwhile (the fixture's setting)
            continue
        panel = page.locator("section.key", has=page.locator(f"code.key-name:text-is('{name}')"))
        shown: Counter[str] = Counter()
        for row in panel.locator("tr[data-day]").all():
            day = row.get_attribute("data-day")
            shown[f"{day} made"] = int(row.locator("td.made").inner_text())
            shown[f"{day} refused"] = int(row.locator("td.refused").inner_text())
        assert +shown == counts, name
    own = page.locator("section.key", has=page.locator(f"code.key-name:text-is('{key}')"))
    assert "key-usage-limit ×2" in own.inner_text()
    assert "criminal-record-check ×1" in own.inner_text()
    assert own.locator("svg.chart rect.refused").count() == 14  # a bar a day, drawn on the server
    assert page.locator("script").count() == 0

    shot = tmp_path / "console-dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the security officer's dashboard: {shot}")

    cookies = {c["name"]: c for c in page.context.cookies()}
    session_cookie = cookies[COOKIE]
    assert session_cookie["httpOnly"] and session_cookie["secure"]
    assert session_cookie["sameSite"] == "Strict" and session_cookie["path"] == "/"
    with sessions() as db:
        sealed = db.scalars(select(ConsoleTotp)).one()
        assert secret.encode() not in sealed.ciphertext
        signed_in = db.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "console.sign_in")
        ).all()
    assert [decode_leaf(r.leaf)["actor"] for r in signed_in] == [officer.username]

    page.click("header button[value=this]")  # sign out
    page.wait_for_url("**/console/login")
    again = httpx.get(f"{server.base}/console/dashboard", cookies={COOKIE: session_cookie["value"]})
    assert again.status_code == 303 and again.headers["location"] == "/console/login"
    assert secret not in server.output and officer.password not in server.output


def test_forms_without_their_csrf_token_are_refused(
    server: Server, page: Page, make_staff: MakeStaff
) -> None:
    officer = make_staff(Role.SECURITY_OFFICER)
    form = httpx.get(f"{server.base}/console/login")
    login_cookie = cookie_of(form, LOGIN_COOKIE)
    assert login_cookie is not None and csrf_of(form.text) == login_cookie
    credentials = {"username": officer.username, "password": officer.password}
    for csrf in ({}, {"csrf": "forged"}, {"csrf": "伪造"}):
        refused = httpx.post(
            f"{server.base}/console/login",
            data={**credentials, **csrf},
            cookies={LOGIN_COOKIE: login_cookie},
        )
        assert refused.status_code == 403 and cookie_of(refused, COOKIE) is None
    crowded = "&".join(f"f{n}=1" for n in range(20))
    refused = httpx.post(
        f"{server.base}/console/login",
        content=f"csrf={login_cookie}&{crowded}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        cookies={LOGIN_COOKIE: login_cookie},
    )
    assert refused.status_code == 403
    # Signed in, the session's own token is needed: sign-out without it does nothing.
    sign_in(page, server.base, officer)
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)
    out = httpx.post(f"{server.base}/console/logout", data={}, cookies={COOKIE: cookie})
    assert out.status_code == 403
    enrol = httpx.post(
        f"{server.base}/console/security-keys",
        data={"name": "k", "code": "123456", "credential": "{}"},
        cookies={COOKIE: cookie},
    )
    assert enrol.status_code == 403
    still = httpx.get(f"{server.base}/console/dashboard", cookies={COOKIE: cookie})
    assert still.status_code == 200 and "Key usage" in still.text


def test_a_cookie_without_the_second_factor_reaches_nothing(
    server: Server, make_staff: MakeStaff, sessions: sessionmaker[Session]
) -> None:
    officer = make_staff(Role.SECURITY_OFFICER)
    cookie = password_only(server.base, officer)
    for path in ("/console/", "/console/dashboard"):
        answer = httpx.get(f"{server.base}{path}", cookies={COOKIE: cookie})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    factor = httpx.get(f"{server.base}/console/second-factor", cookies={COOKIE: cookie})
    wrong = httpx.post(
        f"{server.base}/console/second-factor",
        data={"csrf": csrf_of(factor.text), "code": "000000"},
        cookies={COOKIE: cookie},
    )
    assert wrong.status_code == 401 and cookie_of(wrong, COOKIE) is None
    with sessions() as db:
        refusals = [
            decode_leaf(row.leaf)
            for row in db.scalars(
                select(AuditEventRow).where(
                    AuditEventRow.action == "service.login", AuditEventRow.outcome == "refused"
                )
            )
        ]
    assert {
        "actor": officer.username,
        "object": "console",
        "reason": "wrong second factor",
    }.items() <= refusals[-1].items()
    # The password stage's session never becomes the signed-in one, even with a right code.
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', factor.text)
    assert secret is not None
    right = httpx.post(
        f"{server.base}/console/second-factor",
        data={"csrf": csrf_of(factor.text), "code": pyotp.TOTP(secret.group(1)).now()},
        cookies={COOKIE: cookie},
    )
    assert right.status_code == 303
    new_cookie = cookie_of(right, COOKIE)
    assert new_cookie is not None and new_cookie != cookie
    old = httpx.get(f"{server.base}/console/dashboard", cookies={COOKIE: cookie})
    assert old.status_code == 303
    new = httpx.get(f"{server.base}/console/dashboard", cookies={COOKIE: new_cookie})
    assert new.status_code == 200


def test_wrong_passwords_are_audited_as_the_api_login_audits_them(
    server: Server, sessions: sessionmaker[Session], make_staff: MakeStaff
) -> None:
    officer = make_staff(Role.SECURITY_OFFICER)
    form = httpx.get(f"{server.base}/console/login")
    answer = httpx.post(
        f"{server.base}/console/login",
        data={"csrf": csrf_of(form.text), "username": officer.username, "password": "wrong-one-12"},
        cookies={LOGIN_COOKIE: cookie_of(form, LOGIN_COOKIE) or ""},
    )
    assert answer.status_code == 401 and cookie_of(answer, COOKIE) is None
    assert "wrong-one-12" not in answer.text
    with sessions() as db:
        last = db.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.action == "service.login")
            .order_by(AuditEventRow.idx.desc())
        ).first()
    assert last is not None
    leaf = decode_leaf(last.leaf)
    assert (leaf["actor"], leaf["object"], leaf["outcome"]) == (
        officer.username,
        "console",
        "refused",
    )


@pytest.mark.parametrize("clock", ["last_seen_at", "created_at"])
def test_sessions_end_when_idle_or_too_old(
    server: Server, page: Page, make_staff: MakeStaff, sessions: sessionmaker[Session], clock: str
) -> None:
    """The server runs with a 5-minute idle timeout (and the default 8-hour life): the session's
    own clock is set back past each, rather than waiting."""
    officer = make_staff(Role.SECURITY_OFFICER)
    sign_in(page, server.base, officer)
    page.reload()
    assert page.url.endswith("/console/dashboard")
    back = timedelta(minutes=6) if clock == "last_seen_at" else timedelta(hours=8, minutes=1)
    with sessions.begin() as db:
        db.execute(
            update(ConsoleSession)
            .where(ConsoleSession.verified.is_(True), ConsoleSession.ended_at.is_(None))
            .values({clock: utcnow() - back})
        )
    page.reload()
    assert page.url.endswith("/console/login")
    with sessions() as db:
        ended = db.scalars(select(ConsoleSession).where(ConsoleSession.verified.is_(True))).one()
    assert ended.ended_at is not None


def test_other_roles_see_no_dashboard(server: Server, page: Page, make_staff: MakeStaff) -> None:
    registrar = make_staff(Role.REGISTRAR)
    page.goto(f"{server.base}/console/login")
    page.fill("#username", registrar.username)
    page.fill("#password", registrar.password)
    page.click("button[type=submit]")
    secret = page.text_content("#totp-secret")
    assert secret is not None
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_url("**/console/intake")  # the registrar's own first page
    for path in ("/console/dashboard", "/console/audit", "/console/audit/export"):
        answer = page.goto(f"{server.base}{path}")
        assert answer is not None and answer.status == 403
        assert "Key usage" not in page.content() and "Audit search" not in page.content()


def test_totp_secrets_are_sealed_to_their_account_and_codes_good_once(
    settings: Settings, sessions: sessionmaker[Session], make_staff: MakeStaff
) -> None:
    """A database administrator copying one account's sealed secret onto another gets a row
    that opens nothing; a code is accepted once; no secret is readable from the database."""
    first, second = make_staff(Role.SECURITY_OFFICER), make_staff(Role.REGISTRAR)
    key_file = settings.console_key_file
    with sessions.begin() as db:
        one, two = (
            db.scalars(select(StaffAccount).where(StaffAccount.username == m.username)).one()
            for m in (first, second)
        )
        secret, uri = totp.begin_enrolment(db, one, key_file)
        assert uri.startswith("otpauth://totp/") and secret in uri
        now = 1_800_000_000.0
        code = pyotp.TOTP(secret).at(now)
        assert totp.check_code(db, one, code, key_file, now) is True
        assert totp.check_code(db, one, code, key_file, now) is False  # replayed
        sealed = db.get(ConsoleTotp, one.id)
        assert sealed is not None and secret.encode() not in sealed.ciphertext
        db.add(
            ConsoleTotp(
                account_id=two.id,
                nonce=sealed.nonce,
                ciphertext=sealed.ciphertext,
                confirmed_at=utcnow(),
                last_step=0,
            )
        )
        db.flush()
        later = pyotp.TOTP(secret).at(now + 60)
        assert totp.check_code(db, two, later, key_file, now + 60) is False
        assert totp.check_code(db, one, later, key_file, now + 60) is True
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    with sessions.begin() as db:
        one = db.scalars(select(StaffAccount).where(StaffAccount.username == first.username)).one()
        db.delete(db.get(ConsoleTotp, one.id))
        db.flush()
        # Enrolled once (the log says so): a password alone never enrols a new secret.
        with pytest.raises(Conflict):
            totp.begin_enrolment(db, one, key_file)


def test_sign_out_everywhere_ends_every_session_of_the_account(
    server: Server, page: Page, make_staff: MakeStaff
) -> None:
    officer = make_staff(Role.SECURITY_OFFICER)
    secret = sign_in(page, server.base, officer)
    cookie = password_only(server.base, officer)
    factor = httpx.get(f"{server.base}/console/second-factor", cookies={COOKIE: cookie})
    assert "totp-secret" not in factor.text  # enrolled: the secret is never shown again
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the browser's code is spent
    right = httpx.post(
        f"{server.base}/console/second-factor",
        data={"csrf": csrf_of(factor.text), "code": code},
        cookies={COOKIE: cookie},
    )
    other = cookie_of(right, COOKIE)
    assert other is not None
    assert httpx.get(f"{server.base}/console/dashboard", cookies={COOKIE: other}).status_code == 200
    page.click("header button[value=all]")
    page.wait_for_url("**/console/login")
    gone = httpx.get(f"{server.base}/console/dashboard", cookies={COOKIE: other})
    assert gone.status_code == 303


def test_sign_in_attempts_share_the_api_logins_limit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, make_staff: MakeStaff
) -> None:
    initialised(settings)
    officer = make_staff(Role.SECURITY_OFFICER)
    monkeypatch.setenv("CERTSVC_LOGIN_ATTEMPTS_PER_MINUTE", "2")
    with serving(env=dict(os.environ)) as running:
        form = httpx.get(f"{running.base}/console/login")
        wrong = {"csrf": csrf_of(form.text), "username": officer.username, "password": "x" * 12}
        cookies = {LOGIN_COOKIE: cookie_of(form, LOGIN_COOKIE) or ""}
        answers = [
            httpx.post(f"{running.base}/console/login", data=wrong, cookies=cookies)
            for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [401, 401, 429]
        assert "Too many attempts" in answers[2].text and answers[2].headers["retry-after"]
        api = httpx.post(
            f"{running.base}/api/v1/auth/token",
            json={"username": officer.username, "password": officer.password},
        )
        assert api.status_code == 429


def _virtual_authenticator(page: Page) -> None:
    """Chromium's virtual CTAP2 security key, touched automatically when asked."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "usb",
        "hasResidentKey": False,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})


def _refusal_reasons(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as db:
        query = select(AuditEventRow.leaf).where(
            AuditEventRow.action == "service.login", AuditEventRow.outcome == "refused"
        )
        return [str(decode_leaf(leaf).get("reason")) for leaf in db.scalars(query)]


def test_a_security_key_replaces_totp_and_its_answers_are_good_once(
    server: Server,
    page: Page,
    make_staff: MakeStaff,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    """Enrol a key (with a fresh TOTP code), sign in with it by keyboard only; its answer
    replayed in another session, a TOTP code, and a counter that did not grow are refused."""
    # WebAuthn needs a host name: browsers refuse an IP address as relying party.
    base = server.base.replace("127.0.0.1", "localhost")
    officer = make_staff(Role.SECURITY_OFFICER)
    _virtual_authenticator(page)
    secret = sign_in(page, base, officer)
    page.click("header a[href='/console/security-keys']")
    page.wait_for_url("**/console/security-keys")
    assert unlabelled(page) == [] and axe(page) == []
    page.fill("#key-name", "钥匙 YubiKey")
    page.fill("#key-code", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("main button[type=submit]")
    page.wait_for_selector("#added-key")
    assert page.text_content("#added-key") == "钥匙 YubiKey"
    with sessions() as db:
        key = db.scalars(select(ConsoleSecurityKey)).one()
        enrolled = db.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "console.security_key.enrol")
        ).one()
    assert (key.rp_id, enrolled.object) == ("localhost", officer.username)
    page.click("header button[value=this]")
    page.wait_for_url("**/console/login")

    # Keyboard only: username, Tab, password, Enter; the key's button has the focus: Enter.
    page.keyboard.type(officer.username)
    page.keyboard.press("Tab")
    page.keyboard.type(officer.password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/second-factor")
    assert page.locator("#code").count() == 0  # no code field once a key is enrolled
    assert unlabelled(page) == [] and axe(page) == []
    with page.expect_request("**/console/second-factor/key") as sent:
        page.keyboard.press("Enter")
    page.wait_for_url("**/console/dashboard")
    answer = sent.value.post_data
    assert answer is not None and "credential=" in answer
    shot = tmp_path / "console-security-key.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot after signing in with a security key: {shot}")
    with sessions() as db:
        used = db.scalars(select(ConsoleSecurityKey)).one()
        signed_in = db.scalars(
            select(AuditEventRow.leaf).where(AuditEventRow.action == "console.sign_in")
        ).all()
    assert used.sign_count > key.sign_count and used.last_used_at is not None
    assert decode_leaf(signed_in[-1])["details"] == {"factor": "security-key"}

    # The same answer, sent from another password-stage session: its challenge is not this one.
    cookie = password_only(base, officer)
    prompt = httpx.get(f"{base}/console/second-factor", cookies={COOKIE: cookie})
    assert "data-webauthn" in prompt.text
    assert "script-src 'self'" in prompt.headers["content-security-policy"]
    credential = dict(pair.split("=", 1) for pair in answer.split("&"))["credential"]
    replayed = httpx.post(
        f"{base}/console/second-factor/key",
        content=f"csrf={csrf_of(prompt.text)}&credential={credential}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        cookies={COOKIE: cookie},
    )
    assert replayed.status_code == 401 and cookie_of(replayed, COOKIE) is None
    # A TOTP code is no way round the key.
    code = httpx.post(
        f"{base}/console/second-factor",
        data={"csrf": csrf_of(replayed.text), "code": pyotp.TOTP(secret).at(time.time() + 60)},
        cookies={COOKIE: cookie},
    )
    assert code.status_code == 401 and cookie_of(code, COOKIE) is None
    assert httpx.get(f"{base}/console/dashboard", cookies={COOKIE: cookie}).status_code == 303
    reasons = _refusal_reasons(sessions)
    assert "wrong second factor: bad assertion" in reasons
    assert "TOTP code where a security key is enrolled" in reasons

    # A stored counter ahead of the authenticator's: a cloned key, refused.
    with sessions.begin() as db:
        db.execute(update(ConsoleSecurityKey).values(sign_count=1_000_000))
    page.click("header button[value=this]")
    page.wait_for_url("**/console/login")
    page.fill("#username", officer.username)
    page.fill("#password", officer.password)
    page.click("main button[type=submit]")
    page.wait_for_url("**/console/second-factor")
    page.click("#use-key")
    page.wait_for_selector("p.error[role=alert]:not([hidden])")
    assert "did not verify" in page.content()
    assert "wrong second factor: security key counter did not grow" in _refusal_reasons(sessions)
    assert officer.password not in server.output


def _officer_events(sessions: sessionmaker[Session]) -> int:
    """Reveals, lookups, failed sign-ins and a refused workstation proof, as their gates
    record them; the index of one event to tamper with later."""
    lookup = {"values": 4, "found": 1, "misses": 3}
    with sessions.begin() as db:
        for n in range(3):
            append(
                db,
                AuditEvent(
                    "alice",
                    "officer",
                    "vault.reveal",
                    f"tok:{n}",
                    "ok",
                    reason="checking the case file",
                ),
            )
        for _ in range(2):
            append(
                db, AuditEvent("bob", "registrar", "vault.lookup", "vault", "ok", details=lookup)
            )
        append(
            db,
            AuditEvent(
                "mallory",
                "staff",
                "service.login",
                "api",
                "refused",
                reason="wrong username or password",
            ),
        )
        return append(
            db,
            AuditEvent(
                "c1",
                "custodian",
                "service.workstation_proof",
                "POST /api/v1/signing-sessions",
                "refused",
                reason="signature does not verify",
            ),
        )


def test_officer_sees_people_refusals_and_proves_events_in_the_log(
    server: Server,
    page: Page,
    make_staff: MakeStaff,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    """The dashboard's per-person and refusal tables equal the log's counts; the audit
    search proves each event against the published checkpoint, and a leaf changed in the
    database fails its proof; the export bundle downloads."""
    officer = make_staff(Role.SECURITY_OFFICER)
    tampered = _officer_events(sessions)
    sign_in(page, server.base, officer)
    with sessions() as db:
        rows = db.scalars(select(AuditEventRow)).all()
    people: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    for row in rows:
        day = row.occurred_at.date().isoformat()
        details = decode_leaf(row.leaf).get("details") or {}
        assert isinstance(details, dict)
        if row.action == "vault.reveal" and row.outcome == "ok":
            people[f"{day} {row.actor} reveals"] += 1
        if row.action == "vault.lookup" and row.outcome == "ok":
            people[f"{day} {row.actor} lookups"] += int(details["values"])
            people[f"{day} {row.actor} misses"] += int(details["misses"])
        if row.action == "service.login" and row.outcome == "refused":
            refusals[f"{day} sign-in"] += 1
        if row.action == "service.workstation_proof" and row.outcome == "refused":
            refusals[f"{day} workstation"] += 1
    page.reload()
    shown: Counter[str] = Counter()
    for tr in page.locator("table.people tr[data-day]").all():
        key = f"{tr.get_attribute('data-day')} {tr.get_attribute('data-actor')}"
        for kind in ("reveals", "lookups", "misses"):
            shown[f"{key} {kind}"] = int(tr.locator(f"td.{kind}").inner_text())
    assert +shown == people and people
    shown = Counter()
    for tr in page.locator("table.refusals tr[data-day]").all():
        for kind in ("sign-in", "workstation"):
            shown[f"{tr.get_attribute('data-day')} {kind}"] = int(
                tr.locator(f"td.{kind}").inner_text()
            )
    assert +shown == refusals and refusals
    assert page.locator("section.people svg.chart rect.lookups").count() == 14
    assert axe(page) == []

    page.click("nav a[href='/console/audit']")
    page.wait_for_url("**/console/audit")
    deadline = time.monotonic() + 60
    while (
        page.locator("#checkpoint-size").count() == 0
        or int(page.text_content("#checkpoint-size") or 0) <= tampered
    ):
        assert time.monotonic() < deadline, "no checkpoint covering the events was published"
        time.sleep(1)
        page.reload()
    assert unlabelled(page) == [] and axe(page) == []
    page.fill("#actor", "c1")
    page.select_option("#outcome", "refused")
    page.click("main button[type=submit] >> nth=0")
    page.wait_for_url("**/console/audit?*")
    row = page.locator(f"table.events tr[data-index='{tampered}']")
    assert "✓ proven" in row.inner_text()
    assert page.locator("table.events tr[data-index]").count() == 1
    with sessions.begin() as db:
        leaf = db.scalars(select(AuditEventRow.leaf).where(AuditEventRow.idx == tampered)).one()
        changed = leaf.replace(b"does not verify", b"does verify ok!")
        assert changed != leaf
        db.execute(update(AuditEventRow).where(AuditEventRow.idx == tampered).values(leaf=changed))
    page.reload()
    assert "✗ failed" in page.locator(f"table.events tr[data-index='{tampered}']").inner_text()
    shot = tmp_path / "console-audit-search.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the audit search: {shot}")

    with page.expect_download() as download:
        page.click("main button[formaction='/console/audit/export']")
    bundle = json.loads(Path(download.value.path()).read_text())
    assert bundle and isinstance(bundle, dict)
    bad = httpx.get(
        f"{server.base}/console/audit?since=yesterday",
        cookies={COOKIE: next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)},
    )
    assert bad.status_code == 422 and "since: a date as YYYY-MM-DD" in bad.text
