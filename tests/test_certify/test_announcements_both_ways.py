"""The announcement checker both ways (三(三)1, 三(三)2, 四(二)): the body's registered contacts —
the notice's own consultation numbers, the addresses of its confirmation sites, its public
site — pass; system hosts, bare domains, IP addresses, credential phrases, applicants' birth
dates and IM handles are refused, in disguise too."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from certify.announcements import findings
from certsvc.accounts import Role
from certsvc.app import create_app
from certsvc.settings import Settings, get_settings, reset_settings
from service_helpers import MakeStaff

SYSTEM = ("rdjg.jszg.edu.cn",)
# The notice's own contacts (四(二)), a confirmation site and the body's public sites.
CONTACTS = (
    "0371-69691697",
    "0371-65909841",
    "郑州市金水区花园路88号",
    "www.haedu.gov.cn",
    "www.jszg.edu.cn",
)
REFUSED = [
    ("请登录 http://rdjg.jszg.edu.cn/ 办理", "login_link"),
    ("认定机构系统 rdjg.jszg.edu.cn", "login_link"),
    ("认定机构系统 ｒｄｊｇ．ｊｓｚｇ．ｅｄｕ．ｃｎ", "login_link"),
    ("内网 10.1.2.3:8000/cases", "ip_address"),
    ("内网 １０.１.２.３", "ip_address"),
    ("管理员账号…密码 Abc@123456，USBKey PIN 为 888888", "credential"),
    ("管理员账号 admin01，请勿外传", "system_security"),
    ("张三，1990年1月1日出生", "birth_date"),
    ("张三，一九九〇年一月一日出生", "birth_date"),
    ("出生日期：1990-01-01", "birth_date"),
    ("QQ：12345678", "im_handle"),
    ("微信号 zhangsan_1990", "im_handle"),
    ("扣扣 1 2 3 4 5 6 7 8", "im_handle"),
    ("见 example.com 的说明", "domain"),
    ("咨询 0371—65909842", "phone"),  # one digit off a registered number
    ("住址：郑州市二七区大学路12号", "address"),
]
ALLOWED = [
    "咨询电话：省教育厅教师教育处 刘海涛 0371—69691697；"
    "省教师资格认定注册服务中心 赵河 0371—65909841",
    "咨询电话 0371 6969 1697",
    "现场确认地点：郑州市金水区花园路88号",
    "详见 www.haedu.gov.cn 公告，登录中国教师资格网（www.jszg.edu.cn）报名",
    "请妥善保管您的报名密码，切勿告知他人。",
    "证书编号 20204100000000123 已制作完成，请于2020年8月20日前领取。",
]


@pytest.mark.parametrize(("text", "kind"), REFUSED)
def test_refused(text: str, kind: str) -> None:
    assert kind in findings(text, SYSTEM, CONTACTS)


@pytest.mark.parametrize("text", ALLOWED)
def test_the_bodys_own_contacts_pass(text: str) -> None:
    assert findings(text, SYSTEM, CONTACTS) == []


def test_a_contact_passes_only_once_registered() -> None:
    assert findings("咨询 0371—69691697", SYSTEM) == ["phone"]
    assert findings("现场确认地点：郑州市金水区花园路88号", SYSTEM) == ["address"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_service_takes_contacts_and_system_hosts_from_settings(
    settings: Settings, make_staff: MakeStaff, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTSVC_BODY_CONTACTS", "0371-69691697; 郑州市金水区花园路88号")
    monkeypatch.setenv("CERTSVC_SYSTEM_HOSTS", "rdjg.jszg.edu.cn")
    reset_settings()
    app = create_app(get_settings())
    try:
        with TestClient(app) as client:
            officer = make_staff(Role.OFFICER)
            path = "/api/v1/certify/announcements"
            ok = client.post(
                path,
                json={"text": "咨询电话 0371—69691697，地点：郑州市金水区花园路88号"},
                headers=officer.auth,
            )
            assert ok.status_code == 201, ok.text
            refused = client.post(
                path, json={"text": "认定系统 rdjg.jszg.edu.cn"}, headers=officer.auth
            )
            assert refused.status_code == 422 and "login_link" in refused.json()["detail"]
            check = client.post(
                f"{path}/check", json={"text": "咨询 0371-69691697"}, headers=officer.auth
            )
            assert check.json() == {"publishable": True, "findings": []}
    finally:
        app.state.engine.dispose()
