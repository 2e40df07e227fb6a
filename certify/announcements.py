"""R5, R8: every text published to applicants — announcements, notices, delivery messages —
passes this checker first. It refuses ID numbers (also spaced out or in full-width digits),
phone numbers, e-mail addresses, street addresses, and links to the staff system or any login
page. Findings name the kind of item, never the matched text.

Text is normalised before matching, so that a number cannot slip through in disguise:
full-width forms (NFKC), zero-width characters, Chinese numerals written digit by digit
(一三八…), separators between digits (`138/0013/8000`, `1 3 8 …`) and e-mail written with
`[at]`/`(dot)`."""

from __future__ import annotations

import re
import unicodedata

from common.errors import InvalidInput

_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff"))
_CHINESE_DIGITS = str.maketrans(
    "〇零一二三四五六七八九壹贰叁肆伍陆柒捌玖幺两", "0012345678912345678912"
)
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
URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"'，。）)]+", re.IGNORECASE)
LOGIN_WORDS = re.compile(
    r"login|log-in|signin|sign-in|logon|auth|sso|passport|admin|/api/|manage|登录|登陆",
    re.IGNORECASE,
)
LOGIN_NEAR = re.compile(r"(登录|登陆|log\s*in|sign\s*in)", re.IGNORECASE)
NEAR = 20


def findings(text: str, staff_hosts: tuple[str, ...] = ()) -> list[str]:
    """The kinds of forbidden item in `text` (empty when it may be published)."""
    plain = normalised(text)
    found = [kind for kind, pattern in PATTERNS.items() if pattern.search(plain)]
    for match in URL_RE.finditer(plain):
        url = match.group(0).lower()
        around = plain[max(0, match.start() - NEAR) : match.end() + NEAR]
        staff = any(host.lower() in url for host in staff_hosts if host)
        if staff or LOGIN_WORDS.search(url) or LOGIN_NEAR.search(around):
            found.append("login_link")
            break
    return ["id_number" if kind == "old_id_number" else kind for kind in dict.fromkeys(found)]


def normalised(text: str) -> str:
    """`text` as the patterns read it: each disguise of a number or address undone."""
    plain = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    plain = _DOT.sub(".", _AT.sub("@", plain.translate(_CHINESE_DIGITS)))
    return _BETWEEN_DIGITS.sub("", plain)


def ensure_publishable(text: str, staff_hosts: tuple[str, ...] = ()) -> None:
    """Raise `InvalidInput` naming the kinds of private or security item found."""
    found = findings(text, staff_hosts)
    if found:
        raise InvalidInput(f"text: may not be published, it contains: {', '.join(found)}")
