"""The announcement checker: positives and negatives."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from certify.announcements import ensure_publishable, findings
from certsvc.accounts import Role
from common.errors import InvalidInput
from service_helpers import MakeStaff

POSITIVES = [
    ("身份证号41130219900307123X", "id_number"),
    ("证件号 4113 0219 9003 0712 3x", "id_number"),
    ("号码：４１１３０２１９９００３０７１２３Ｘ", "id_number"),
    ("旧证 411302900307123", "id_number"),
    ("联系电话13812345678", "phone"),
    ("电话 +86 138-1234-5678", "phone"),
    ("咨询 0371—69691697", "phone"),
    ("请发至 zhang.san@example.com", "email"),
    ("邮箱 ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "email"),
    ("住址：郑州市金水区花园路88号", "address"),
    ("3号楼2单元501室", "address"),
    ("请登录 http://10.1.2.3:8000/ 办理", "login_link"),
    ("见 https://jszg.example.cn/login?next=/", "login_link"),
    ("系统地址 https://staff.certsvc.example/cases", "login_link"),
    # Disguises: spaced and slashed digits, Chinese numerals, zero-width characters, [at].
    ("电话 1 3 8 0 0 1 3 8 0 0 0", "phone"),
    ("电话 138/0013/8000", "phone"),
    ("电话一三八零零一三八零零零", "phone"),
    ("电话：幺三八 零零幺三 八零零零", "phone"),
    ("证件号 4113021990\u200b0307123X", "id_number"),
    ("证件号 41130219\u200d9003\ufeff07123X", "id_number"),
    ("邮箱 zhang.san[at]example[dot]com", "email"),
    ("邮箱 zhang.san (at) example (dot) cn", "email"),
    ("邮箱 zhang.san【AT】example【dot】com", "email"),
]
NEGATIVES = [
    "2020年上半年教师资格认定结论公示：张*明，高级中学教师资格，数学，认定通过。",
    "证书编号20204100000000123，领取时间2020年8月10日9:00-11:30。",
    "请于6月8日至6月30日登录中国教师资格网报名。",
    "查验证书请扫描二维码或访问 https://verify.example.cn/V/ABC",
    "欧阳**，幼儿园教师资格，认定通过；共 120 人。",
    # Must still pass once disguises are undone: dates, numbers of certificates, counts.
    "确认时间：2020-08-10 至 2020-08-20，每日 9:00-11:30。",
    "二〇二〇年八月二十日前完成认定，第一批共三百二十人。",
    "证书编号 20204100000000123、20204100000000124 已制作完成。",
    "受理号 41000000000000001（17 位），请妥善保管。",
    "请于2020年8月20日（星期四）前领取。",
]


@pytest.mark.parametrize(("text", "kind"), POSITIVES)
def test_refused(text: str, kind: str) -> None:
    assert kind in findings(text, staff_hosts=("staff.certsvc.example",))
    with pytest.raises(InvalidInput, match=kind):
        ensure_publishable(text, ("staff.certsvc.example",))


@pytest.mark.parametrize("text", NEGATIVES)
def test_allowed(text: str) -> None:
    assert findings(text, staff_hosts=("staff.certsvc.example",)) == []


def test_check_api(client: TestClient, make_staff: MakeStaff) -> None:
    registrar = make_staff(Role.REGISTRAR)
    answer = client.post(
        "/api/v1/certify/announcements/check",
        json={"text": "电话 13812345678"},
        headers=registrar.auth,
    ).json()
    assert answer == {"publishable": False, "findings": ["phone"]}
    ok = client.post(
        "/api/v1/certify/announcements/check", json={"text": NEGATIVES[0]}, headers=registrar.auth
    )
    assert ok.json()["publishable"] is True
