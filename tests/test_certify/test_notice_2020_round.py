"""The issue's "done when": a batch run with the notice's 2020 dates (教办师〔2020〕81号) and a
province rule file behaves as the notice says at every step, in one run, on both databases:

- 二(二)1, R0: the province's table (语文 at 二级甲等, the round's dates) judges the approval;
- 二(二)2: registration 06-08 to 06-30 (a batch outside the round, an application after it,
  refused); on-site confirmation 07-06 to 07-10, at least five working days, by trained staff;
- 二(二)1, R2: no conclusion before the criminal-record check;
- 二(二)3, R3: conclusions within 30 working days, but the round closes on 08-20 — the
  effective deadline; signing past it needs two officers' override;
- 二(一): announcements only once the implementation plan is filed; 三(三)1-2, 四(二): the
  body's own phone numbers pass the checker, the system's login address does not;
- 二(二)3, 四(二): the 公示 takes objections in its period; an unanswered one holds the
  certificate; then the certificate is issued and its delivery notice published with no
  personal field.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from certify.cases import CHINA, create_application, create_batch, file_plan, get_batch
from certify.checks import CRIMINAL_RECORD, record_check
from certify.decisions import decide, sign_decisions
from certify.delivery import DeliveryPlan, arrange_delivery
from certify.eligibility import NATIONAL_FILE, Ineligible, load_table
from certify.issuance import issue
from certify.publication import publish_conclusions, publish_text
from certify.reports import overdue
from certify.requests import answer_request, record_request
from common.errors import Conflict, InvalidInput
from test_certify.conftest import OFFICER, PLAN, REGISTRAR, Body, late_ok, passed, recorder
from verify.models import PublicNotice

NATIONAL = (Path(__file__).parents[2] / "certify" / "data" / NATIONAL_FILE).read_text()
HENAN = (
    NATIONAL.replace('name = "national minimums"', 'name = "河南 2020 上半年"').replace(
        'by_subject = {}\nby_subject_source = ""',
        'by_subject = { "01" = "二级甲等" }\n'
        'by_subject_source = "河南省2020年上半年中小学教师资格认定公告 第二条"',
    )
    + "\n[round]\nregistration_opens = 2020-06-08\nregistration_closes = 2020-06-30\n"
    'closes_on = 2020-08-20\nsource = "教办师〔2020〕81号 二(二)2、3"\n'
)
CONTACTS = ("0371—69691697", "0371—65909841")  # the notice's own consultation numbers
SYSTEM = ("rdjg.jszg.edu.cn",)


def test_the_notice_2020_round(body: Body) -> None:
    with body.sessions.begin() as db:
        load_table(db, OFFICER, HENAN.encode())
        with pytest.raises(InvalidInput, match="registration: outside the province's round"):
            create_batch(db, OFFICER, replace(PLAN, registration_closes=date(2020, 7, 3)))
    batch_id = body.batch(PLAN, plan_filed=False)  # trained staff, a slot on 07-06
    latecomer = body.applicant(1)
    with body.sessions.begin() as db:
        batch = get_batch(db, batch_id)
        # 30 working days after 07-10 is 08-21: the round's close comes first.
        assert (batch.decision_deadline, batch.rule_version) == (date(2020, 8, 20), 1)
        help_line = f"咨询电话：{CONTACTS[0]}，{CONTACTS[1]}。"
        with pytest.raises(Conflict, match="implementation plan"):
            publish_text(db, OFFICER, batch_id, help_line, SYSTEM, CONTACTS)
        file_plan(db, OFFICER, batch_id, date(2020, 5, 25), "豫教资〔2020〕12号")
        with pytest.raises(InvalidInput, match="login_link"):
            publish_text(db, OFFICER, batch_id, "登录 http://rdjg.jszg.edu.cn/ 审核", SYSTEM)
        publish_text(db, OFFICER, batch_id, help_line, SYSTEM, CONTACTS)
        with pytest.raises(Conflict, match="outside the batch's registration window"):
            create_application(
                db, REGISTRAR, batch_id, latecomer, "SS", "01", filed_on=date(2020, 7, 1)
            )

    # 语文 at the national minimum 二级乙等: the province's table refuses the approval.
    plain = body.case(batch_id, 2, subject="01", found={"degree": "本科", "mandarin": "二级乙等"})
    # Every check but the police's: no conclusion yet (R2).
    chinese = body.case(batch_id, 3, subject="01", skip=(CRIMINAL_RECORD,))
    with body.sessions.begin() as db:
        with pytest.raises(Ineligible, match=r"mandarin\.by_subject\.01 \(河南省"):
            decide(db, OFFICER, plain, "approve", "all checks passed")
        with pytest.raises(InvalidInput, match="R2: the criminal-record check is not finished"):
            decide(db, OFFICER, chinese, "approve", "all checks passed")
        record_check(db, recorder(CRIMINAL_RECORD), chinese, passed(CRIMINAL_RECORD))
        decide(db, OFFICER, chinese, "approve", "all checks passed")
        decide(db, OFFICER, plain, "refuse", "普通话等级低于本省语文学科要求")
    with body.sessions() as db:
        late = {(c.application_id, c.deadline) for c in overdue(db, date(2020, 8, 21), batch_id)}
        assert late == {
            (chinese, "decision"),
            (chinese, "close"),
            (plain, "decision"),
            (plain, "close"),
        }

    body.open("decision-1")
    refused = sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
    assert refused.signed == [] and {r.rule for r in refused.refused} == {"deadline"}
    with body.sessions.begin() as db:
        for application_id in (chinese, plain):
            late_ok(db, application_id, "2020 round signed in a test run years later")
    assert (
        len(sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id).signed) == 2
    )

    today = datetime.now(CHINA).date()
    with body.sessions.begin() as db:
        publicity = publish_conclusions(
            db, OFFICER, body.issuer.vault, batch_id, "", SYSTEM, CONTACTS
        )
        assert "认定通过" in publicity.text and "不予认定" in publicity.text
        objection = record_request(
            db, REGISTRAR, batch_id, chinese, "objection", "对公示结论有异议", today
        ).id
    body.open("certificate-1")
    held = issue(body.issuer, body.custodian, [chinese], date(2020, 8, 19))
    assert held.issued == [] and held.signing is not None
    assert [r.rule for r in held.signing.refused] == ["objection"]
    with body.sessions.begin() as db:
        answer_request(db, OFFICER, objection, "经复核，普通话等级符合要求，维持结论", today)
    number = issue(body.issuer, body.custodian, [chinese], date(2020, 8, 19)).issued[0]
    with body.sessions.begin() as db:
        pickup = DeliveryPlan(
            "pickup", datetime(2020, 8, 24, 9, tzinfo=CHINA), "市政务服务中心三楼"
        )
        arrange_delivery(db, OFFICER, number, pickup, SYSTEM, CONTACTS)
        notice = db.scalar(select(PublicNotice).where(PublicNotice.number == number))
        assert notice is not None and (notice.place, notice.available_from) == (
            "市政务服务中心三楼",
            date(2020, 8, 24),
        )
