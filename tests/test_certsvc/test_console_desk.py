"""The registrar's and the officer's console pages in a real browser against a real
`certsvc serve` on a provisioned body (`certsvc init`, plus `certsvc demo` for certificates to
revoke): each role's main flow end to end with a screenshot, the refusals by role and without
the form's CSRF token, and page sources that never carry a raw personal value."""

from __future__ import annotations

import csv
import json
import random
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import httpx
import pyotp
from playwright.sync_api import Browser, Page
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import decode_leaf
from audit.models import AuditEventRow
from certify.cases import (
    CHINA,
    BatchPlan,
    SlotPlan,
    add_slot,
    book_slot,
    create_batch,
    extend_registration,
    record_attendance,
    record_training,
)
from certify.checks import CRIMINAL_RECORD, RESULTS, SOURCE_SYSTEMS, CheckOutcome, record_check
from certify.models import (
    Announcement,
    Applicant,
    ApplicantImport,
    Application,
    Certificate,
    Decision,
    Revocation,
)
from certsvc.accounts import Role
from certsvc.settings import Settings
from console_support import COOKIE, LOGIN_COOKIE, cookie_of, csrf_of, new_page, sign_in, unlabelled
from server_support import Server
from service_helpers import MakeStaff, StaffMember, demo_member
from signer.actor import Actor
from vault import synthetic

REGISTRAR = Actor("registrar", 0, "registrar")
OFFICER = Actor("officer", 0, "officer")
# Registration 2026-10-12 … 10-30 (extended past today), on-site confirmation the first week
# of November, the round closing on 2026-11-30: the decision deadline has passed by now, so
# every undecided case of the batch is overdue.
PLAN = BatchPlan(
    name="2026 desk",
    body_code="410000",
    registration_opens=date(2026, 10, 12),
    registration_closes=date(2026, 10, 30),
    confirmation_starts=date(2026, 11, 2),
    confirmation_ends=date(2026, 11, 6),
    closes_on=date(2026, 11, 30),
)
PLACE = "郑州市金水区政务服务中心三楼"
FOUND = {"degree": "本科", "mandarin": "二级甲等"}
TIMEOUT = 60  # seconds an answer may take on a loaded machine (no timing is asserted)


def _batch(sessions: sessionmaker[Session], name: str = PLAN.name) -> int:
    """The batch, taking applications until next month, with a slot and the registrar trained."""
    with sessions.begin() as db:
        batch = create_batch(db, OFFICER, BatchPlan(**{**PLAN.__dict__, "name": name}))
        until = date.today() + timedelta(days=30)
        extend_registration(db, OFFICER, batch.id, until, "test run after registration closed")
        record_training(db, OFFICER, batch.id, REGISTRAR.username, date(2026, 10, 30))
        starts = datetime.combine(PLAN.confirmation_starts, time(9), CHINA)
        add_slot(db, OFFICER, batch.id, SlotPlan(starts, PLACE, 100))
        return batch.id


def _person(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {
        "name": synthetic.name(rng),
        "id_number": synthetic.id_number(rng),
        "phone": synthetic.phone(rng),
    }


def _member(settings: Settings, username: str) -> StaffMember:
    return demo_member(json.loads(settings.credentials_file.read_text()), username)


def _no_raw_values(html: str, people: list[dict[str, str]]) -> None:
    for person in people:
        for field, value in person.items():
            assert value not in html, f"a raw {field} in the page"


def _events(sessions: sessionmaker[Session], action: str) -> list[dict[str, object]]:
    with sessions() as db:
        rows = db.scalars(select(AuditEventRow).where(AuditEventRow.action == action)).all()
        return [decode_leaf(r.leaf) for r in rows]


def test_registrar_intake_import_booking_and_checks(
    server: Server,
    page: Page,
    settings: Settings,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    batch_id = _batch(sessions)
    registrar = _member(settings, "registrar")
    sign_in(page, server.base, registrar, lands="intake")
    person, stranger = _person(1), _person(2)
    sources: list[str] = []

    # A bad ID number: the vault's reason beside the field, no value of the form sent back.
    page.select_option("#batch_id", str(batch_id))
    page.select_option("#qualification", "SS")
    page.select_option("#subject", "02")
    page.fill("#name", stranger["name"])
    wrong = "1" if stranger["id_number"][-1] == "0" else "0"
    page.fill("#id_number", stranger["id_number"][:-1] + wrong)  # its check character wrong
    page.fill("#phone", stranger["phone"])
    page.click("main button[type=submit]")
    error = page.locator(".field-error[data-field=id_number]")
    assert "id_number" in error.inner_text()
    assert page.locator(".field-error").count() == 1
    assert page.input_value("#qualification") == "SS" and page.input_value("#name") == ""
    sources.append(page.content())
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Applicant)) == 0

    page.fill("#name", person["name"])
    page.fill("#id_number", person["id_number"])
    page.fill("#phone", person["phone"])
    page.click("main button[type=submit]")
    page.wait_for_url("**/console/cases/*")
    case_id = int(page.url.rsplit("/", 1)[1])
    masked = page.text_content("#masked-name") or ""
    assert masked and masked != person["name"] and masked[0] == person["name"][0]
    assert unlabelled(page) == []
    sources.append(page.content())

    # The CSV import: the same function as `certsvc import applicants`, its row errors shown.
    imported = [_person(10 + n) for n in range(5)]
    upload = tmp_path / "applicants.csv"
    with upload.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "id_number", "phone", "email", "address"])
        for row in imported:
            writer.writerow([row["name"], row["id_number"], row["phone"], "", ""])
        writer.writerow([stranger["name"], "not-an-id", "", "", ""])
    page.click("nav a[href='/console/import']")
    assert unlabelled(page) == []
    page.set_input_files("#file", str(upload))
    page.click("main button[type=submit]")
    page.wait_for_url("**/console/import/*")
    page.wait_for_selector("#summary", timeout=60_000)  # the page refreshes itself until done
    assert page.locator(".imported").inner_text() == "5"
    assert page.locator(".invalid").inner_text() == "1"
    progress = page.locator("progress#progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "6"
    errors = page.locator("#row-errors tbody tr")
    assert errors.count() == 1 and "id_number" in errors.inner_text()
    sources.append(page.content())
    assert list((settings.resolved_home / "console-imports").iterdir()) == []  # upload gone
    with sessions() as db:
        job = db.scalars(select(ApplicantImport)).one()
        assert job.started_by == registrar.username and job.imported == 5

    # Booking, attendance and a check on the case filed above.
    page.goto(f"{server.base}/console/cases/{case_id}")
    page.click("form[action$='/booking'] button")
    page.wait_for_selector("#booking")
    page.fill("#confirmed_at", "2026-11-02T09:30")
    page.fill("#national_reference", "QR-2026-0001")
    page.click("form[action$='/attendance'] button")
    page.wait_for_selector("text=是 yes")
    page.select_option("#kind", "identity")
    page.select_option("#result", "match")
    page.select_option("#source_system", "jszg.edu.cn")
    page.fill("#reference", "cmp-0001")
    page.fill("#checked_at", "2026-11-02T09:40")
    page.click("form[action$='/checks'] button")
    page.wait_for_selector("#checks tr[data-kind=identity]")
    assert "criminal_record" not in page.locator("#kind").inner_text()
    assert unlabelled(page) == []
    shot = tmp_path / "console-registrar.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the registrar's case page: {shot}")
    sources.append(page.content())
    page.goto(f"{server.base}/console/batches/{batch_id}")
    sources.append(page.content())

    for html in sources:
        _no_raw_values(html, [person, stranger, *imported])
    with sessions() as db:
        application = db.get_one(Application, case_id)
        assert application.created_by == registrar.username and application.slot_id is not None
    assert [e["actor"] for e in _events(sessions, "vault.tokenise")] == [registrar.username]
    booked = _events(sessions, "certify.application.book")
    assert [e["object"] for e in booked] == [f"application:{case_id}"]
    assert all(value not in server.output for p in (person, stranger) for value in p.values())


def _undecided_case(
    server: Server, sessions: sessionmaker[Session], make_staff: MakeStaff, batch_id: int
) -> int:
    """A case in `batch_id` filed through the registrar's intake page, confirmed on site and
    with every check passed but the criminal-record one."""
    registrar = _console(server.base, make_staff(Role.REGISTRAR))
    intake = {"batch_id": str(batch_id), "qualification": "SS", "subject": "02", **_person(40)}
    token = csrf_of(registrar.get("/console/intake").text)
    filed = registrar.post("/console/intake", data={**intake, "csrf": token})
    assert filed.status_code == 303, filed.text
    registrar.close()
    application_id = int(filed.headers["location"].rsplit("/", 1)[1])
    with sessions.begin() as db:
        starts = datetime.combine(PLAN.confirmation_ends, time(9), CHINA)
        slot = add_slot(db, OFFICER, batch_id, SlotPlan(starts, PLACE, 5))
        book_slot(db, REGISTRAR, application_id, slot)
        at = starts + timedelta(minutes=30)
        record_attendance(db, REGISTRAR, application_id, at, "QR-undecided")
        for kind, (_, good) in RESULTS.items():
            if kind != CRIMINAL_RECORD:
                outcome = CheckOutcome(
                    kind,
                    good,
                    SOURCE_SYSTEMS[kind][0],
                    f"ref-{kind}",
                    datetime.now(UTC),
                    FOUND.get(kind),
                )
                record_check(db, REGISTRAR, application_id, outcome)
    return application_id


def test_officer_batch_case_decision_revocation_and_announcement(
    demo_server: Server,
    browser: Browser,
    page: Page,
    settings: Settings,
    sessions: sessionmaker[Session],
    make_staff: MakeStaff,
    tmp_path: Path,
) -> None:
    server = demo_server
    batch_id = _batch(sessions, "2026 desk cases")
    case_id = _undecided_case(server, sessions, make_staff, batch_id)
    officer = _member(settings, "officer")
    second = make_staff(Role.OFFICER)

    sign_in(page, server.base, officer, lands="batches")
    assert unlabelled(page) == []
    page.fill("#name", "2026 desk new")
    for field in ("registration_opens", "registration_closes", "confirmation_starts"):
        page.fill(f"#{field}", getattr(PLAN, field).isoformat())
    page.fill("#confirmation_ends", "2026-11-03")  # two working days: R3 wants five
    page.fill("#closes_on", PLAN.closes_on.isoformat())
    page.click("main button[type=submit]")
    assert "R3 needs at least 5" in page.locator(".error").inner_text()
    page.fill("#name", "2026 desk new")
    for field in ("registration_opens", "registration_closes", "confirmation_starts"):
        page.fill(f"#{field}", getattr(PLAN, field).isoformat())
    page.fill("#confirmation_ends", PLAN.confirmation_ends.isoformat())
    page.fill("#closes_on", PLAN.closes_on.isoformat())
    page.click("main button[type=submit]")
    page.wait_for_url("**/console/batches")
    created = page.locator("tr", has=page.locator("a:text-is('2026 desk new')"))
    assert "overdue" in created.inner_text()  # the decision deadline, 2026-11-30, has passed

    page.goto(f"{server.base}/console/batches/{batch_id}")
    row = page.locator(f"#cases tr[data-case='{case_id}']")
    assert row.get_attribute("class") == "overdue" and "decision 2026-11-30" in row.inner_text()
    row.locator("a").click()
    page.wait_for_url(f"**/console/cases/{case_id}")
    assert page.locator("#kind option").all_inner_texts() == [CRIMINAL_RECORD]
    page.select_option("#outcome", "approve")
    page.fill("#reasons", "各项核查均通过")
    page.click("form[action$='/decision'] button")  # R2: not before the criminal-record check
    assert "criminal-record check is not finished" in page.locator(".error").inner_text()
    page.select_option("#result", "clear")
    page.select_option("#source_system", "gongan")
    page.fill("#reference", "豫公刑查〔2026〕88号")
    page.fill("#checked_at", "2026-11-20T10:00")
    page.fill("#police_unit", "郑州市公安局金水分局")
    page.fill("#police_issued_on", "2026-11-19")
    page.click("form[action$='/checks'] button")
    page.wait_for_selector(f"#checks tr[data-kind={CRIMINAL_RECORD}]")
    page.select_option("#outcome", "approve")
    page.fill("#reasons", "各项核查均通过")
    page.click("form[action$='/decision'] button")
    page.wait_for_selector("#decision")
    with sessions() as db:
        decision = db.scalars(select(Decision).where(Decision.application_id == case_id)).one()
        assert decision.outcome == "approve" and decision.decided_by == officer.username
        number = db.scalars(
            select(Certificate.number).where(Certificate.status == "issued")
        ).first()
    assert number is not None

    # A revocation filed by one officer, approved by them and by a second officer.
    page.click("nav a[href='/console/revocations']")
    assert unlabelled(page) == []
    page.fill("#number", number)
    page.select_option("#category", "error")
    page.fill("#reason", "认定结论错误，予以更正")
    page.click("form[action='/console/revocations'] button")
    page.wait_for_url("**/console/revocations")
    with sessions() as db:
        revocation = db.scalars(select(Revocation).order_by(Revocation.id.desc())).first()
        assert revocation is not None and revocation.requested_by == officer.username
    filed = page.locator(f"tr[data-revocation='{revocation.id}']")
    assert filed.locator(".proposed-by").inner_text() == officer.username
    filed.locator("input[name=reason]").fill("核对无误")
    filed.locator("button").click()
    page.wait_for_url("**/console/revocations")
    assert "(1/2)" in filed.locator(".approved-by").inner_text()
    assert filed.locator("form").count() == 0  # no second approval by the same officer

    other = new_page(browser)
    sign_in(other, server.base, second, lands="batches")
    other.goto(f"{server.base}/console/revocations")
    theirs = other.locator(f"tr[data-revocation='{revocation.id}']")
    theirs.locator("input[name=reason]").fill("复核无误")
    theirs.locator("button").click()
    other.wait_for_url("**/console/revocations")
    approvers = sorted([officer.username, second.username])
    assert theirs.locator(".approved-by").inner_text() == f"{', '.join(approvers)} (2/2)"
    assert "awaiting the custodian" in theirs.inner_text()

    # The announcement composer: the checker refuses, publishing it is refused too.
    with sessions() as db:
        before = db.scalar(select(func.count()).select_from(Announcement))
    page.click("nav a[href='/console/announcements']")
    assert unlabelled(page) == []
    leaky = f"请登录 https://{server.base.split('//')[1]}/console/ 查询，咨询电话 13800138000。"
    page.fill("#text", leaky)
    page.click("button[value=check]")
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-publishable") == "no"
    assert "login_link" in verdict.inner_text() and "phone" in verdict.inner_text()
    page.click("button[value=publish]")
    assert "may not be published" in page.locator(".error").inner_text()
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Announcement)) == before
    fine = "2026年下半年教师资格认定结果已公布，请按通知领取证书。"
    page.fill("#text", fine)
    page.click("button[value=check]")
    assert page.locator("#verdict").get_attribute("data-publishable") == "yes"
    page.click("button[value=publish]")
    page.wait_for_url("**/console/announcements")
    assert fine in page.locator("#published").inner_text()
    shot = tmp_path / "console-officer.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the officer's announcement composer: {shot}")
    with sessions() as db:
        published = db.scalars(select(Announcement).order_by(Announcement.id.desc())).first()
        assert published is not None and published.text == fine
        assert published.published_by == officer.username
    filed_events = _events(sessions, "certify.revocation.request")
    assert filed_events[-1]["actor"] == officer.username
    assert filed_events[-1]["object"] == f"certificate:{number}"


def _console(base: str, member: StaffMember) -> httpx.Client:
    """An HTTP client signed in to the console as `member` (password, then TOTP). httpx keeps
    `__Host-` (Secure) cookies from plain http without sending them back: carried by hand."""
    form = httpx.get(f"{base}/console/login", timeout=TIMEOUT)
    answer = httpx.post(
        f"{base}/console/login",
        data={"csrf": csrf_of(form.text), "username": member.username, "password": member.password},
        cookies={LOGIN_COOKIE: cookie_of(form, LOGIN_COOKIE) or ""},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 303
    first = {COOKIE: cookie_of(answer, COOKIE) or ""}
    factor = httpx.get(f"{base}/console/second-factor", cookies=first, timeout=TIMEOUT)
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7]+)<', factor.text)
    assert secret is not None
    code = pyotp.TOTP(secret.group(1)).now()
    done = httpx.post(
        f"{base}/console/second-factor",
        data={"csrf": csrf_of(factor.text), "code": code},
        cookies=first,
        timeout=TIMEOUT,
    )
    assert done.status_code == 303
    cookies = {COOKIE: cookie_of(done, COOKIE) or ""}
    return httpx.Client(base_url=base, cookies=cookies, timeout=TIMEOUT)


def test_pages_refuse_other_roles_and_forms_without_their_token(
    server: Server, settings: Settings, sessions: sessionmaker[Session], make_staff: MakeStaff
) -> None:
    batch_id = _batch(sessions)
    registrar = _console(server.base, make_staff(Role.REGISTRAR))
    officer = _console(server.base, make_staff(Role.OFFICER))
    security = _console(server.base, make_staff(Role.SECURITY_OFFICER))
    for client, path in (
        (registrar, "/console/revocations"),
        (registrar, "/console/announcements"),
        (officer, "/console/intake"),
        (officer, "/console/import"),
        (security, "/console/batches"),
        (security, f"/console/batches/{batch_id}"),
        (security, "/console/intake"),
    ):
        assert client.get(path).status_code == 403, path
    assert registrar.get(f"/console/batches/{batch_id}").status_code == 200
    token = csrf_of(registrar.get("/console/intake").text)
    person = _person(7)
    intake = {"batch_id": str(batch_id), "qualification": "SS", "subject": "02", **person}
    # Without the form's token (or with another's): refused, nothing stored.
    for csrf in ({}, {"csrf": csrf_of(officer.get("/console/batches").text)}):
        refused = registrar.post("/console/intake", data={**intake, **csrf})
        assert refused.status_code == 403
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Applicant)) == 0
    # A registrar may not decide nor file a revocation; an officer may not book.
    filed = registrar.post("/console/intake", data={**intake, "csrf": token})
    assert filed.status_code == 303
    case = filed.headers["location"]
    decision = {"outcome": "approve", "reasons": "x" * 12, "csrf": token}
    assert registrar.post(f"{case}/decision", data=decision).status_code == 403
    revocation = {"number": "1" * 17, "category": "error", "reason": "r", "csrf": token}
    assert registrar.post("/console/revocations", data=revocation).status_code == 403
    officer_token = csrf_of(officer.get("/console/batches").text)
    assert (
        officer.post(f"{case}/booking", data={"slot_id": "1", "csrf": officer_token}).status_code
        == 403
    )
    identity = {
        "kind": "identity",
        "result": "match",
        "source_system": "jszg.edu.cn",
        "reference": "r1",
        "checked_at": "2026-11-02T09:00",
        "csrf": officer_token,
    }
    assert officer.post(f"{case}/checks", data=identity).status_code == 403
    no_token = {"text": "正常的公告内容。", "action": "publish"}
    assert officer.post("/console/announcements", data=no_token).status_code == 403
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Decision)) == 0
        assert db.scalar(select(func.count()).select_from(Announcement)) == 0
    page = registrar.get(case).text
    _no_raw_values(page, [person])
    for client in (registrar, officer, security):
        client.close()
