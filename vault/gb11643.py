"""GB 11643-1999 resident ID numbers: the ISO 7064 MOD 11-2 check character and the facts the
number itself states (region, birth date, sex).

Region plausibility is checked on the province prefix only: county tables in libraries lag the
real ones (411302 and 419001 are missing from popular tables), and a real person must never be
refused because a table is old.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"
EARLIEST_BIRTH = date(1900, 1, 1)
_DIGIT_OFFSET = ord("0") * sum(WEIGHTS)

# First two digits: provinces, autonomous regions, municipalities (GB/T 2260), plus 71 (Taiwan)
# and 81/82/83 (residence permits of Hong Kong, Macao and Taiwan residents).
PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82", "83",
    }
)  # fmt: skip

_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


class IdNumberError(ValueError):
    """Why a string is not a resident ID number; the message never contains the number."""


@dataclass(frozen=True)
class IdFacts:
    """What an ID number states about its holder: enough for age checks without a reveal, and
    no identifier (many people share each combination)."""

    region_code: str
    birth_date: date
    sex: str  # "M" or "F": the 17th digit, odd for men

    def age_on(self, day: date) -> int:
        return age_on(self.birth_date, day)


@dataclass(frozen=True)
class ResidentId(IdFacts):
    """A checked ID number with its facts."""

    number: str

    def facts(self) -> IdFacts:
        """The facts alone, without the number."""
        return IdFacts(self.region_code, self.birth_date, self.sex)


def check_character(first17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise IdNumberError("check character needs exactly 17 digits")
    return _check(first17)


def _check(first17: str) -> str:
    # ASCII digits only (callers check): the code points less 48 times the weights' sum.
    weighted = sum(map(operator.mul, first17.encode("ascii"), WEIGHTS)) - _DIGIT_OFFSET
    return CHECK_CHARACTERS[weighted % 11]


def age_on(birth: date, day: date) -> int:
    """Completed years at `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def parse(number: str, today: date) -> ResidentId:
    """Check an already normalised (upper-case, no spaces) number and read its facts."""
    birth = _checked_birth_date(number, today)
    return ResidentId(
        number=number,
        region_code=number[:6],
        birth_date=birth,
        sex="M" if int(number[16]) % 2 else "F",
    )


def check(number: str, today: date) -> str:
    """`number` itself when `parse` would accept it: the same checks, none of the facts (the
    vault's bulk path needs only the verdict)."""
    _checked_birth_date(number, today)
    return number


def _checked_birth_date(number: str, today: date) -> date:
    if len(number) != 18:
        raise IdNumberError("must be 18 characters")
    if not _SHAPE.fullmatch(number):
        raise IdNumberError("17 digits then a digit or X")
    if number[:2] not in PROVINCES:
        raise IdNumberError("region code: first two digits are not a province code")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberError("birth date: not a real date") from None
    if birth > today:
        raise IdNumberError("birth date: in the future")
    if birth < EARLIEST_BIRTH:
        raise IdNumberError("birth date: before 1900")
    if _check(number[:17]) != number[17]:
        raise IdNumberError("check character does not match")
    return birth
