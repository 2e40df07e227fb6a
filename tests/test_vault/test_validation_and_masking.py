"""Validation per kind and masked display: normalisation, errors that never echo the value,
masks that never show it whole."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import gb11643, synthetic, validation
from vault.errors import InvalidValue
from vault.kinds import Kind
from vault.masking import mask
from vault.validation import normalise

HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
MOBILES = st.builds(
    lambda second, rest: f"1{second}{rest:09d}",
    st.sampled_from("3456789"),
    st.integers(0, 10**9 - 1),
)


@settings(max_examples=100, deadline=None)
@given(MOBILES, st.sampled_from(["", "+86", "+86 ", "0086", "86"]), st.sampled_from(["", " ", "-"]))
def test_phone_forms_normalise_to_eleven_digits(number: str, prefix: str, sep: str) -> None:
    written = prefix + sep.join((number[:3], number[3:7], number[7:]))
    assert normalise(Kind.PHONE, written) == number
    assert mask(Kind.PHONE, number) == number[:3] + "****" + number[-4:]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("12345678901", "starts with 13–19"),
        ("1381234567", "11 digits"),
        ("138-1234-567a", "only digits"),
        ("", "is empty"),
    ],
)
def test_bad_phones_name_the_field_not_the_value(value: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason) as caught:
        normalise(Kind.PHONE, value, "applicant.phone")
    assert str(caught.value).startswith("applicant.phone: ")
    if value:
        assert value not in str(caught.value)


RULE_WORDING = "".join(Path(module.__file__ or "").read_text() for module in (validation, gb11643))


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_errors_never_contain_the_value(value: str) -> None:
    for kind in Kind:
        try:
            normalise(kind, value, "field", date(2026, 11, 27))
        except InvalidValue as exc:
            message = str(exc)
            assert message.startswith("field: ")
            echoed = value.strip()
            # A value that is itself part of a rule's wording (say "+86") is not an echo.
            if len(echoed) >= 3 and echoed not in RULE_WORDING:
                assert echoed not in message.removeprefix("field: ")


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("张三", "张三"),
        (" 张 三明 ", "张三明"),
        ("阿卜杜热合曼・买买提", "阿卜杜热合曼·买买提"),
        ("阿卜杜热合曼 • 买买提", "阿卜杜热合曼·买买提"),
        ("John  Smith", "John Smith"),
        ("𠇔明", "𠇔明"),
    ],
)
def test_names_normalise(value: str, normal: str) -> None:
    assert normalise(Kind.NAME, value) == normal


@pytest.mark.parametrize(
    "value", ["张", "张三3", "·张三", "张三·", "张··三", "张" * 31, "<script>"]
)
def test_bad_names_are_refused(value: str) -> None:
    with pytest.raises(InvalidValue, match=r"^name: "):
        normalise(Kind.NAME, value)


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("Zhang.San@Example.COM", "zhang.san@example.com"),
        (" a+b@mail.example.cn ", "a+b@mail.example.cn"),
    ],
)
def test_emails_normalise(value: str, normal: str) -> None:
    assert normalise(Kind.EMAIL, value) == normal


@pytest.mark.parametrize(
    "value", ["plain", "@example.com", "a@b", "a@-b.com", "a..b@example.com", "a@例子.中国"]
)
def test_bad_emails_are_refused(value: str) -> None:
    with pytest.raises(InvalidValue, match=r"^email: "):
        normalise(Kind.EMAIL, value)


def test_addresses_are_trimmed_and_bounded() -> None:
    assert (
        normalise(Kind.ADDRESS, " 河南省郑州市  金水区花园路1号 ") == "河南省郑州市 金水区花园路1号"
    )
    for bad in ("郑州", "x" * 201, "河南省郑州市\x00金水区"):
        with pytest.raises(InvalidValue, match=r"^address: "):
            normalise(Kind.ADDRESS, bad)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32))
def test_normalising_twice_changes_nothing(seed: int) -> None:
    rng = random.Random(seed)
    for kind, make in (
        (Kind.ID_NUMBER, synthetic.id_number),
        (Kind.PHONE, synthetic.phone),
        (Kind.NAME, synthetic.name),
        (Kind.EMAIL, synthetic.email),
        (Kind.ADDRESS, synthetic.address),
    ):
        once = normalise(kind, make(rng))
        assert normalise(kind, once) == once


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [
        (Kind.NAME, "张三明", "张*明"),
        (Kind.NAME, "欧阳小明", "欧阳**"),
        (Kind.NAME, "张三", "张*"),
        (Kind.NAME, "阿卜杜热合曼·买买提", "阿*****·***"),
        (Kind.NAME, "John Smith", "J*** S****"),
        (Kind.PHONE, "13812345678", "138****5678"),
        (Kind.ID_NUMBER, "41010519900307123X", "410***********123X"),
        (Kind.EMAIL, "zhang@example.com", "z***@example.com"),
        (Kind.ADDRESS, "河南省郑州市金水区花园路1号", "河南省郑州市金水区****"),
        (Kind.ADDRESS, "北京市海淀区中关村大街1号", "北京市海淀区****"),
        (
            Kind.ADDRESS,
            "新疆维吾尔自治区乌鲁木齐市天山区解放路5号",
            "新疆维吾尔自治区乌鲁木齐市天山区****",
        ),
        (Kind.ADDRESS, "河南省济源市沁园路8号", "河南省济源市****"),
        (Kind.ADDRESS, "somewhere far away", "****"),
    ],
)
def test_masks(kind: Kind, value: str, masked: str) -> None:
    assert mask(kind, value) == masked


@settings(max_examples=150, deadline=None)
@given(st.lists(HAN, min_size=2, max_size=12).map("".join))
def test_masked_names_hide_at_least_one_character_and_keep_the_length(name: str) -> None:
    masked = mask(Kind.NAME, name)
    assert len(masked) == len(name)
    assert masked[0] == name[0]
    assert "*" in masked and masked != name


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32))
def test_masks_never_show_a_whole_value(seed: int) -> None:
    rng = random.Random(seed)
    for kind, make in (
        (Kind.ID_NUMBER, synthetic.id_number),
        (Kind.PHONE, synthetic.phone),
        (Kind.EMAIL, synthetic.email),
        (Kind.ADDRESS, synthetic.address),
    ):
        value = normalise(kind, make(rng))
        masked = mask(kind, value)
        assert value not in masked
        assert "*" in masked


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=5, max_size=60).filter(lambda s: s.strip() == s and "  " not in s))
def test_any_address_is_cut(address: str) -> None:
    try:
        value = normalise(Kind.ADDRESS, address)
    except InvalidValue:
        return
    masked = mask(Kind.ADDRESS, value)
    assert masked.endswith("****")
    assert value.replace(" ", "") not in masked
