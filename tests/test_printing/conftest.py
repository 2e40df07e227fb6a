from datetime import date

import pytest

from printing.render import CertificateSheet
from signing_env import env
from verify.qrimage import qr_modules

__all__ = ["env", "sheet"]

QR_TEXT = (
    "HTTP://127.0.0.1:8000/V/7K3QZD5W2M9XR4TB6NHY8JCV1PLG0FSA"
    "#TC1:NCFOXN%TS3DH0RGPJB/IB-OM7533SD:Q4$SX+NU$59O-AP4T5HBY9C72NZ79XJ9P4S6D+HAU3BRYI$%7LG"
)


@pytest.fixture
def sheet() -> CertificateSheet:
    return CertificateSheet(
        holder_name="欧阳明华",
        qualification_zh="高级中学教师资格",
        qualification_en="Senior secondary school teacher",
        subject_zh="数学",
        subject_en="Mathematics",
        number="20264100000001",
        body_name="河南省教育厅（演示）",
        issue_date=date(2026, 3, 2),
        qr_modules=qr_modules(QR_TEXT),
    )
