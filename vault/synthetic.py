"""Synthetic identifiers that pass every check, for demos, tests and benchmarks: no real
person's data is ever needed to exercise the vault."""

from __future__ import annotations

import random
from datetime import date, timedelta

from vault.gb11643 import check_character

REGIONS = ("410105", "411302", "419001", "110105", "310115", "440305", "650102")
SURNAMES = ("张", "王", "李", "赵", "刘", "陈", "欧阳", "司马")
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"


def id_number(rng: random.Random, birth: date | None = None, sex: str | None = None) -> str:
    """A GB 11643 number with a valid check character, a real region and birth date (by
    default born 1970–1999: of an age to apply for a teacher qualification in 2020–2026)."""
    birth = birth or date(1970, 1, 1) + timedelta(days=rng.randrange(30 * 365))
    sequence = rng.randrange(1000)
    if sex is not None and (sequence % 2 == 1) != (sex == "M"):
        sequence = (sequence + 1) % 1000
    first17 = f"{rng.choice(REGIONS)}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


def name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def email(rng: random.Random) -> str:
    return f"user{rng.randrange(10**8)}@example.com"


def address(rng: random.Random) -> str:
    return f"河南省郑州市金水区花园路{rng.randrange(1, 999)}号{rng.randrange(1, 30)}楼"
