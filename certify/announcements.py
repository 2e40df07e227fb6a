"""R5, R8: every text published to applicants — announcements, notices, delivery messages —
passes this checker first. The notice cuts both ways (三(三)1, 三(三)2, 四(二)):

- refused: applicants' ID numbers, phone numbers, e-mail addresses, street addresses, birth
  dates and QQ/WeChat handles; links to the staff system or any login page; the configured
  system hosts and any other bare domain name or IP address; account, password, PIN and
  USBKey phrases (anything touching the information system's security);
- allowed: the body's own registered contacts (its consultation phones, the addresses of its
  confirmation sites, its public web sites), given as `contacts`: they are taken out of the
  text before it is read.

Findings name the kind of item, never the matched text. Text is normalised before matching, so
that a number cannot slip through in disguise: full-width forms (NFKC), zero-width characters,
Chinese numerals written digit by digit (一三八…), separators between digits (`138/0013/8000`,
`1 3 8 …`) and e-mail written with `[at]`/`(dot)`. Dates, domains and IP addresses are read
before separators are dropped (their dots and dashes matter).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

from common.errors import InvalidInput

_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff"))
_CHINESE_DIGITS = str.maketrans(
    "〇零一二三四五六七八九壹贰叁肆伍陆柒捌玖幺两", "0012345678912345678912"
)
_SEPARATORS = "-_.·/\\|—–~()[]（）"
_BETWEEN_DIGITS = re.compile(r"(?<=[0-9])[\s\-_.·/\\|—–~()\[\]]+(?=[0-9Xx])")
_OPEN, _CLOSE = r"\s*[\[(【{<]\s*", r"\s*[\])】}>]\s*"
_AT = re.compile(_OPEN + "(?:at|艾特)" + _CLOSE, re.IGNORECASE)
_DOT = re.compile(_OPEN + "(?:dot|点)" + _CLOSE, re.IGNORECASE)
_SEP = r"[\s\-_.·]*"
PATTERNS: dict[str, re.Pattern[str]] = {
    "id_number": re.compile(rf"(?<![0-9])(?:[0-9]{_SEP}){{17}}[0-9Xx](?![0-9Xx])"),
    "old_id_number": re.compile(rf"(?<![0-9])(?:[0-9]{_SEP}){{14}}[0-9](?![0-9])"),
    "phone": re.compile(
        rf"(?<![0-9])(?:(?:\+|00)?86{_SEP})?1[3-9](?:{_SEP}[0-9]){{9}}(?![0-9])"
        rf"|(?<![0-9])0[0-9]{{2,3}}[\s\-—–]*[0-9]{{7,8}}(?![0-9])"
    ),
    "email": re.compile(r"[A-Za-z0-9._%+-]+\s*@\s*[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
    "address": re.compile(
        r"[\u4e00-\u9fff]{1,20}(?:路|街|大道|巷|胡同|弄|村)\s*[0-9]+\s*(?:号|弄|栋|幢)"
        r"|[0-9]+\s*(?:号楼|单元|室)"
    ),
}
# Read on the text before separators are dropped.
_DATE = r"(?:19|20)[0-9]{2}\s*(?:年|[-/.])\s*[0-9]{1,2}\s*(?:月|[-/.])\s*(?:[0-9]{1,2}\s*[日号]?)?"
SHAPED: dict[str, re.Pattern[str]] = {
    "birth_date": re.compile(
        rf"{_DATE}\s*(?:出生|生人|生)"
        rf"|(?:出生(?:日期|年月)?|生日|生于)\s*[:：为是于]?\s*(?:19|20)[0-9]{{2}}"
    ),
    "im_handle": re.compile(
        r"(?:QQ|Q\s*Q|扣扣|微信|wechat|weixin|vx|wx)\s*(?:号|群|号码)?\s*[:：为是]?\s*"
        r"[A-Za-z0-9][A-Za-z0-9_\-]{4,}",
        re.IGNORECASE,
    ),
    "ip_address": re.compile(r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])"),
    "credential": re.compile(
        r"(?:账号|帐号|账户|帐户|用户名|登录名|密码|口令|PIN\s*码?|USB\s*Key|U\s*Key|U盾)"
        r"[^，。；;,\n]{0,12}?[:：为是]\s*[A-Za-z0-9][A-Za-z0-9@#$%^&*!._\-]{3,}",
        re.IGNORECASE,
    ),
    "system_security": re.compile(
        r"管理员\s*(?:账号|帐号|密码|口令)|USB\s*Key|U盾|数字证书\s*(?:密码|口令)",
        re.IGNORECASE,
    ),
}
# Shaped items whose digits may also be spaced out (`QQ 1 2 3 4 5 6 7 8`).
READ_JOINED_TOO = frozenset({"im_handle", "credential"})
_TLDS = r"cn|com|net|org|gov|edu|info|io|top|xyz|biz|cc|me|中国"
DOMAIN_RE = re.compile(
    rf"(?<![@\w.-])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS})(?![\w.-]*@)\b",
    re.IGNORECASE,
)
URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"'，。）)]+", re.IGNORECASE)
LOGIN_WORDS = re.compile(
    r"login|log-in|signin|sign-in|logon|auth|sso|passport|admin|/api/|manage|登录|登陆",
    re.IGNORECASE,
)
LOGIN_NEAR = re.compile(r"(登录|登陆|log\s*in|sign\s*in)", re.IGNORECASE)
NEAR = 20


def findings(
    text: str, staff_hosts: tuple[str, ...] = (), contacts: Collection[str] = ()
) -> list[str]:
    """The kinds of forbidden item in `text` (empty when it may be published); `contacts`
    are the body's own registered contacts, allowed wherever they appear."""
    light = _without(_light(text), [_light(c) for c in contacts])
    plain = _digits_joined(light)
    found = [
        kind
        for kind, pattern in SHAPED.items()
        if pattern.search(light) or (kind in READ_JOINED_TOO and pattern.search(plain))
    ]
    hosts = tuple(host.lower() for host in staff_hosts if host)
    outside_urls = URL_RE.sub(" ", light)
    for match in URL_RE.finditer(light):
        url = match.group(0).lower()
        around = light[max(0, match.start() - NEAR) : match.end() + NEAR]
        staff = any(host in url for host in hosts)
        if staff or LOGIN_WORDS.search(url) or LOGIN_NEAR.search(around):
            found.append("login_link")
            break
    domains = [m.group(0).lower() for m in DOMAIN_RE.finditer(outside_urls)]
    if any(any(host.split(":")[0] == d for host in hosts) for d in domains):
        found.append("login_link")
    elif domains:
        found.append("domain")
    found += [kind for kind, pattern in PATTERNS.items() if pattern.search(plain)]
    return ["id_number" if kind == "old_id_number" else kind for kind in dict.fromkeys(found)]


def _light(text: str) -> str:
    """Full-width forms, invisible characters, Chinese digits and `[at]`/`(dot)` undone."""
    plain = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return _DOT.sub(".", _AT.sub("@", plain.translate(_CHINESE_DIGITS)))


def _digits_joined(text: str) -> str:
    return _BETWEEN_DIGITS.sub("", text)


def _without(text: str, contacts: list[str]) -> str:
    """`text` with each registered contact taken out, however its digits are separated."""
    for contact in sorted(filter(None, (c.strip() for c in contacts)), key=len, reverse=True):
        text = re.sub(_loose(contact), " ", text, flags=re.IGNORECASE)
    return text


def _loose(contact: str) -> str:
    """A pattern for `contact` that allows any separators between its digits (0371-69691697
    matches 0371—69691697 and 0371 6969 1697) and any spacing elsewhere."""
    parts = [re.escape(char) for char in contact if not char.isspace() and char not in _SEPARATORS]
    return f"[\\s{re.escape(_SEPARATORS)}]*".join(parts)


def ensure_publishable(
    text: str, staff_hosts: tuple[str, ...] = (), contacts: Collection[str] = ()
) -> None:
    """Raise `InvalidInput` naming the kinds of private or security item found."""
    found = findings(text, staff_hosts, contacts)
    if found:
        raise InvalidInput(f"text: may not be published, it contains: {', '.join(found)}")
