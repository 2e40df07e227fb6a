"""GB 11643 check characters: known answers, every character, and what a number states."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import gb11643, synthetic
from vault.errors import InvalidValue
from vault.validation import resident_id

TODAY = date(2026, 11, 27)


@pytest.mark.parametrize(
    ("first17", "check"),
    [
        ("11010519491231002", "X"),  # the standard's own example
        ("44052418800101001", "4"),  # the standard's second example
        ("41130219900307123", "2"),  # Nanyang, Wancheng: missing from some region tables
        ("41900119851111001", "5"),  # Jiyuan
        ("00000000000000000", "1"),
        ("11111111111111111", "0"),
    ],
)
def test_known_check_characters(first17: str, check: str) -> None:
    assert gb11643.check_character(first17) == check


def test_weights_and_table_follow_iso_7064_mod_11_2() -> None:
    # weight i is 2^(17-i) mod 11; check c makes sum + value(c) ≡ 1 (mod 11), X standing for 10
    assert tuple(pow(2, 17 - i, 11) for i in range(17)) == gb11643.WEIGHTS
    for total in range(11):
        character = gb11643.CHECK_CHARACTERS[total]
        value = 10 if character == "X" else int(character)
        assert (total + value) % 11 == 1


@settings(max_examples=150, deadline=None)
@given(st.text("0123456789", min_size=17, max_size=17))
def test_only_the_computed_check_character_is_accepted(first17: str) -> None:
    good = gb11643.check_character(first17)
    total = sum(int(d) * w for d, w in zip(first17, gb11643.WEIGHTS, strict=True))
    for candidate in "0123456789X":
        value = 10 if candidate == "X" else int(candidate)
        assert ((total + value) % 11 == 1) == (candidate == good)


def test_every_check_character_occurs_and_is_validated() -> None:
    rng = random.Random(7)
    seen: set[str] = set()
    while len(seen) < 11:
        number = synthetic.id_number(rng)
        seen.add(number[-1])
        assert resident_id(number, today=TODAY).number == number
        for wrong in set("0123456789X") - {number[-1]}:
            with pytest.raises(InvalidValue, match="check character"):
                resident_id(number[:17] + wrong, today=TODAY)


def test_lower_case_x_and_spaces_are_normalised() -> None:
    assert resident_id(" 11010519491231002x ", today=TODAY).number == "11010519491231002X"
    assert (
        resident_id("１１０１０５１９４９１２３１００２Ｘ", today=TODAY).number
        == "11010519491231002X"
    )


def test_facts_stated_by_the_number() -> None:
    person = resident_id("11010519491231002X", today=TODAY)
    assert (person.birth_date, person.sex, person.region_code) == (
        date(1949, 12, 31),
        "F",
        "110105",
    )
    assert person.age_on(date(2026, 12, 30)) == 76
    assert person.age_on(date(2026, 12, 31)) == 77
    male = synthetic.id_number(random.Random(1), date(2000, 2, 29), "M")
    assert resident_id(male, today=TODAY).sex == "M"


def test_region_codes_missing_from_old_tables_are_accepted() -> None:
    for region in ("411302", "419001"):
        first17 = f"{region}19900101001"
        number = first17 + gb11643.check_character(first17)
        assert resident_id(number, today=TODAY).region_code == region


@pytest.mark.parametrize(
    ("first17", "reason"),
    [
        ("99010519900101001", "region code"),
        ("00010519900101001", "region code"),
        ("41010519900230001", "birth date: not a real date"),
        ("41010520270101001", "birth date: in the future"),
        ("41010518991231001", "birth date: before 1900"),
    ],
)
def test_implausible_numbers_are_refused(first17: str, reason: str) -> None:
    number = first17 + gb11643.check_character(first17)
    with pytest.raises(InvalidValue, match=reason) as caught:
        resident_id(number, today=TODAY)
    assert number not in str(caught.value)
