"""Normalise and check each kind of identifier before anything is stored.

Normalising first makes tokens convergent: `410…123x` and `410…123X`, `+86 138-0013-8000` and
`13800138000` are the same value and get the same token. Every error names the field and the
rule broken, never the value.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from vault import gb11643
from vault.errors import InvalidValue
from vault.kinds import Kind

NAME_HAN_MAX = 30
NAME_LATIN_MAX = 64
ADDRESS_MIN = 5
ADDRESS_MAX = 200
EMAIL_MAX = 254
EMAIL_LOCAL_MAX = 64

# Middle dots people type between the parts of a minority name, all stored as U+00B7.
_DOTS = "·•‧・･．"
_HAN = (
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    r"\U00020000-\U0002a6df\U0002a700-\U0002ebef\U00030000-\U0003134f"
)
_HAN_NAME = re.compile(rf"[{_HAN}]+(·[{_HAN}]+)*")
_LATIN_NAME = re.compile(r"[A-Za-zÀ-ɏ]+([ '.\-][A-Za-zÀ-ɏ]+)*\.?")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_PHONE_NOISE = re.compile(r"[\s\-()（）]")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_DOT_TABLE = str.maketrans(dict.fromkeys(_DOTS, "·"))
_SPACES = re.compile(r"\s+")
_SPACED_DOT = re.compile(r"\s*·\s*")


def normalise(kind: Kind, value: str, field: str | None = None, today: date | None = None) -> str:
    """The canonical form of `value`, or `InvalidValue` naming `field` (default: the kind)."""
    field = field or kind.value
    if not isinstance(value, str):
        raise InvalidValue(field, "must be text")
    if kind is Kind.ID_NUMBER:
        try:
            return gb11643.check(_id_text(value, field), today or date.today())
        except gb11643.IdNumberError as exc:
            raise InvalidValue(field, str(exc)) from None
    if kind is Kind.PHONE:
        return _phone(value, field)
    if kind is Kind.EMAIL:
        return _email(value, field)
    if kind is Kind.NAME:
        return _name(value, field)
    return _address(value, field)


def resident_id(
    value: str, field: str = "id_number", today: date | None = None
) -> gb11643.ResidentId:
    """The checked ID number with the facts it states (birth date, sex, region)."""
    try:
        return gb11643.parse(_id_text(value, field), today or date.today())
    except gb11643.IdNumberError as exc:
        raise InvalidValue(field, str(exc)) from None


def _id_text(value: str, field: str) -> str:
    """Upper case, full-width forms and spaces folded; not yet checked."""
    if len(value) == 18 and value.isascii():
        number = value.upper()
    else:
        number = unicodedata.normalize("NFKC", value).strip().replace(" ", "").upper()
    if not number:
        raise InvalidValue(field, "is empty")
    return number


def _phone(value: str, field: str) -> str:
    digits = _PHONE_NOISE.sub("", unicodedata.normalize("NFKC", value))
    if not digits:
        raise InvalidValue(field, "is empty")
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
            break
    else:
        if len(digits) == 13 and digits.startswith("86"):
            digits = digits[2:]
    if not digits.isascii() or not digits.isdigit():
        raise InvalidValue(field, "only digits, with an optional +86, spaces and dashes")
    if len(digits) != 11:
        raise InvalidValue(field, "a mainland mobile number has 11 digits")
    if not _MOBILE.fullmatch(digits):
        raise InvalidValue(field, "a mainland mobile number starts with 13–19")
    return digits


def _email(value: str, field: str) -> str:
    address = value.strip()
    if not address:
        raise InvalidValue(field, "is empty")
    if len(address) > EMAIL_MAX:
        raise InvalidValue(field, f"longer than {EMAIL_MAX} characters")
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise InvalidValue(field, "must look like name@domain")
    if len(local) > EMAIL_LOCAL_MAX or not _EMAIL_LOCAL.fullmatch(local):
        raise InvalidValue(field, "the part before @ has characters an address cannot have")
    domain = domain.lower().rstrip(".")
    if not domain.isascii():
        raise InvalidValue(field, "the domain must be ASCII (punycode for international names)")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise InvalidValue(field, "the domain is not a valid host name")
    if not labels[-1].isalpha() and not labels[-1].startswith("xn--"):
        raise InvalidValue(field, "the domain has no valid top-level part")
    return f"{local.lower()}@{domain}"


def _name(value: str, field: str) -> str:
    name = unicodedata.normalize("NFC", value).strip().translate(_DOT_TABLE)
    if not name:
        raise InvalidValue(field, "is empty")
    compact = _SPACED_DOT.sub("·", _SPACES.sub(" ", name))
    han = compact.replace(" ", "")
    if _HAN_NAME.fullmatch(han):
        if len(han) < 2 or len(han) > NAME_HAN_MAX:
            raise InvalidValue(field, f"a Chinese name has 2–{NAME_HAN_MAX} characters")
        return han
    if _LATIN_NAME.fullmatch(compact):
        if len(compact) < 2 or len(compact) > NAME_LATIN_MAX:
            raise InvalidValue(field, f"a name in Latin letters has 2–{NAME_LATIN_MAX} characters")
        return compact
    raise InvalidValue(
        field, "Chinese characters (parts of a minority name joined by ·) or Latin letters only"
    )


def _address(value: str, field: str) -> str:
    address = _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip()
    if not address:
        raise InvalidValue(field, "is empty")
    # isprintable() is False for every category C (and Z but the space) character: a quick
    # pass for the usual address, the exact test for the rest.
    if not address.isprintable() and any(unicodedata.category(c)[0] == "C" for c in address):
        raise InvalidValue(field, "contains control characters")
    if len(address) < ADDRESS_MIN or len(address) > ADDRESS_MAX:
        raise InvalidValue(field, f"an address has {ADDRESS_MIN}–{ADDRESS_MAX} characters")
    return address
