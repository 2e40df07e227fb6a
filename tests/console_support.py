"""What the console's browser tests share: a real `certsvc serve` on a provisioned body, Debian's
Chromium driven by Playwright with axe-core loaded in every page, keyboard-only sign-in with
TOTP (its pages checked for labels and accessibility), signing in over plain HTTP (for
the tests that play a thief with a cookie), and reading forms' tokens and cookies."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from certsvc.settings import Settings
from init_cache import initialised
from server_support import CERTSVC, Server, serving
from service_helpers import StaffMember

CHROMIUM = "/usr/bin/chromium"
COOKIE = "__Host-certsvc-console"
LOGIN_COOKIE = "__Host-certsvc-console-login"
# Installed by `make test` (`npm ci --prefix tests/js`), pinned by tests/js/package-lock.json.
AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
  .filter(v => v.impact === 'serious' || v.impact === 'critical')
  .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"""
# Every visible form control must have a label (or an accessible name of its own).
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
  .map(e => e.name || e.id || e.outerHTML)"""


def _serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("CERTSVC_CONSOLE_IDLE_MINUTES", "5")
    monkeypatch.setenv("CERTSVC_AUDIT_CHECKPOINT_SECONDS", "1")  # the audit page's proofs
    with serving(env=dict(os.environ)) as running:
        yield running


@pytest.fixture
def server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    initialised(settings)
    yield from _serve(monkeypatch)


@pytest.fixture
def demo_server(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Server]:
    """The service over a body `certsvc demo` filled before it started (the
    demo's command-line transactions are not written to run beside a live SQLite service)."""
    initialised(settings)
    demo = subprocess.run(
        [CERTSVC, "demo", "--out", str(tmp_path / "demo")],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    yield from _serve(monkeypatch)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Page:
    return new_page(browser)


def new_page(browser: Browser) -> Page:
    """A page in a browser context of its own (its own cookies: another person's browser)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(60_000)  # a loaded machine; no timing is asserted
    # axe-core, for `axe`: an init script runs outside the page's CSP, no tag is added.
    context.add_init_script(path=str(AXE))
    return context.new_page()


def axe(page: Page) -> list[str]:
    """axe-core's violations of serious or critical impact on the page as it is."""
    found: list[str] = page.evaluate(SERIOUS)
    return found


def unlabelled(page: Page) -> list[str]:
    found: list[str] = page.evaluate(UNLABELLED)
    return found


def sign_in(page: Page, base: str, member: StaffMember, lands: str = "dashboard") -> str:
    """Keyboard only: the username field has the focus, Tab to the password, Enter; then the
    code from the secret the enrolment page shows, landing on `/console/<lands>`. The TOTP
    secret read from the page."""
    page.goto(f"{base}/console/")
    assert page.url.endswith("/console/login")
    assert unlabelled(page) == [] and axe(page) == []
    page.keyboard.type(member.username)
    page.keyboard.press("Tab")
    page.keyboard.type(member.password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/second-factor")
    assert unlabelled(page) == [] and axe(page) == []
    secret = page.text_content("#totp-secret")
    assert secret is not None
    page.keyboard.type(pyotp.TOTP(secret).now())
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/{lands}")
    return secret


def cookie_of(response: httpx.Response, name: str) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie(header)
        if name in jar:
            return jar[name].value
    return None


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def password_only(base: str, member: StaffMember) -> str:
    """The session cookie a right password earns, before the second factor."""
    form = httpx.get(f"{base}/console/login")
    login = cookie_of(form, LOGIN_COOKIE)
    answer = httpx.post(
        f"{base}/console/login",
        data={"csrf": csrf_of(form.text), "username": member.username, "password": member.password},
        cookies={LOGIN_COOKIE: login or ""},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/second-factor"
    cookie = cookie_of(answer, COOKIE)
    assert cookie is not None
    return cookie


def signed_in_cookie(base: str, member: StaffMember) -> str:
    """A fully signed-in session cookie over plain HTTP (password, then the TOTP code from the
    first enrolment): what a thief who copied the cookie holds."""
    cookie = password_only(base, member)
    factor = httpx.get(f"{base}/console/second-factor", cookies={COOKIE: cookie})
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', factor.text)
    assert secret is not None
    answer = httpx.post(
        f"{base}/console/second-factor",
        data={"csrf": csrf_of(factor.text), "code": pyotp.TOTP(secret.group(1)).now()},
        cookies={COOKIE: cookie},
    )
    assert answer.status_code == 303
    verified = cookie_of(answer, COOKIE)
    assert verified is not None
    return verified
