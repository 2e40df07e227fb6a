"""The verification page: mobile first, Chinese then English, green or red, no script and no
third-party resource, built only from the public view."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

STYLE = (
    "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC',sans-serif;margin:0;"
    "background:#f4f4f4;color:#222}main{max-width:32rem;margin:0 auto;padding:1rem}"
    ".state{border-radius:.6rem;padding:1rem;color:#fff;font-size:1.3rem;margin-bottom:1rem}"
    ".valid{background:#17803d}.revoked,.unknown{background:#b3261e}"
    ".state small{display:block;font-size:.95rem;opacity:.9}"
    "dl{background:#fff;border-radius:.6rem;padding:1rem;margin:0}dt{color:#666;font-size:.85rem;"
    "margin-top:.6rem}dd{margin:0;font-size:1.05rem}footer{font-size:.8rem;color:#666;"
    "margin-top:1rem}"
)
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}<footer>教师资格证书查验 · Teacher qualification certificate "
        "verification</footer></main></body></html>"
    )


def certificate_page(view: dict[str, Any]) -> str:
    valid = view["status"] == "valid"
    state = (
        "<div class='state valid'>✓ 证书有效<small>Certificate valid</small></div>"
        if valid
        else "<div class='state revoked'>✗ 证书已撤销<small>Certificate revoked</small></div>"
    )
    rows = [
        ("证书编号", "Certificate number", view["number"]),
        ("持证人", "Holder", view["holder"]),
        ("资格种类", "Qualification", _both(view["qualification"])),
        ("任教学科", "Subject", _both(view["subject"])),
        ("认定机构", "Issuing body", view["issuing_body"]["name"]),
        ("认定日期", "Issue date", view["issue_date"]),
    ]
    if not valid:
        rows.append(("撤销日期", "Revoked on", view["revoked_on"]))
        rows.append(("撤销原因", "Reason", _both(view["revocation_category"])))
    items = "".join(
        f"<dt>{escape(zh)} · {escape(en)}</dt><dd>{escape(str(value))}</dd>"
        for zh, en, value in rows
    )
    return _page("证书查验 Certificate verification", f"{state}<dl>{items}</dl>")


def not_found_page() -> str:
    return _page(
        "证书查验 Certificate verification",
        "<div class='state unknown'>未找到该证书<small>No such certificate</small></div>"
        "<p>请核对二维码是否完整清晰。Check that the whole QR code was scanned.</p>",
    )


def _both(entry: dict[str, str] | None) -> str:
    return "" if entry is None else f"{entry['zh']} · {entry['en']}"
