"""Parsers of outside input, fed anything: they answer or refuse with their own error, never
crash with another exception (a 500 on the public side, a traceback in a CLI)."""

from __future__ import annotations

import base64
import contextlib
import random
import re
import unicodedata
from datetime import date
from pathlib import Path

import base45
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from audit.checkpoints import parse_checkpoint
from audit.note import InvalidNote, note_key, open_note, parse_vkey
from vault import gb11643, synthetic, validation
from vault.errors import InvalidValue
from vault.kinds import Kind
from vault.validation import normalise
from verify.offline import verify_offline
from verify.payload import PREFIX, MalformedQr, parse_qr_text
from verify.trust import TrustListInvalid, open_revocation_list, open_trust_list

NAME = "certsvc.test/audit"
KEYS = [
    note_key(NAME, ec.generate_private_key(ec.SECP256R1()).public_key(), legacy_id=True),
    note_key(NAME, Ed25519PrivateKey.generate().public_key()),
]
# Notes shaped like ours — checkpoint text, then lines naming our keys by name and key ID
# (the old ECDSA ID too) with random signature bytes — reach the signature checks.
NOTE_LIKE = st.one_of(
    st.text(max_size=400),
    st.builds(
        lambda text, lines: text + "\n" + "".join(lines),
        st.sampled_from([f"{NAME}\n5\n{'A' * 43}=\n", "x\n", ""]),
        st.lists(
            st.builds(
                lambda key_id, sig: f"\u2014 {NAME} {base64.b64encode(key_id + sig).decode()}\n",
                st.sampled_from([k.key_id for k in KEYS] + [*KEYS[0].legacy_ids, b"\0" * 4]),
                st.binary(max_size=80),
            ),
            max_size=3,
        ),
    ),
)
QR_LIKE = st.one_of(
    st.text(max_size=300),
    st.builds(lambda b: PREFIX + base45.b45encode(b).decode(), st.binary(max_size=200)),
    st.builds(
        lambda vid, b: f"HTTP://X/V/{vid}#{PREFIX}{base45.b45encode(b).decode()}",
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=26, max_size=26),
        st.binary(max_size=200),
    ),
)


@settings(max_examples=300, deadline=None)
@given(QR_LIKE)
def test_qr_text_parser_refuses_cleanly(text: str) -> None:
    with contextlib.suppress(MalformedQr):
        parse_qr_text(text)


@settings(max_examples=300, deadline=None)
@given(QR_LIKE)
def test_offline_verifier_answers_anything(text: str) -> None:
    trust = {"keys": [{"kid": "00" * 8, "certificate": "x", "body": "410000"}], "bodies": []}
    verdict = verify_offline(text, trust)
    assert verdict.valid is False and verdict.reason


@settings(max_examples=300, deadline=None)
@given(NOTE_LIKE)
def test_checkpoint_notes_refuse_cleanly(note: str) -> None:
    with contextlib.suppress(InvalidNote):
        parse_checkpoint(open_note(note, KEYS).text)
    with contextlib.suppress(InvalidNote):
        parse_checkpoint(note)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda name, key_id, blob: f"{name}+{key_id}+{base64.b64encode(blob).decode()}",
            st.text(max_size=20),
            st.sampled_from([k.key_id.hex() for k in KEYS] + ["zz", "00000000"]),
            st.one_of(st.binary(max_size=120), st.sampled_from([b"\1" + b"\0" * 32])),
        ),
    )
)
def test_vkeys_refuse_cleanly(vkey: str) -> None:
    with contextlib.suppress(InvalidNote):
        parse_vkey(vkey)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["trust_list", "signature", "other"]),
        st.one_of(
            st.text(max_size=40), st.dictionaries(st.text(max_size=10), st.text(max_size=10))
        ),
    ),
    st.binary(max_size=80),
)
def test_trust_lists_refuse_cleanly(served: dict[str, object], signature: bytes) -> None:
    if "signature" in served:
        served["signature"] = base64.b64encode(signature).decode()
    with contextlib.suppress(TrustListInvalid):
        open_trust_list(served, frozenset({"0" * 64}))
    with contextlib.suppress(TrustListInvalid):
        open_revocation_list({"revocation_list": served.get("trust_list"), **served}, {})


# --- Personal identifiers (vault.validation): every kind, fed anything ---------------------------

TODAY = date.today()
RULE_WORDING = "".join(Path(m.__file__ or "").read_text() for m in (validation, gb11643))
FULL_WIDTH = str.maketrans("0123456789Xx+-", "０１２３４５６７８９Ｘｘ＋－")
RNG = st.integers(0, 2**64).map(random.Random)  # hypothesis's randoms keep to a few values

ID_NUMBERS = st.builds(
    lambda rng, birth: synthetic.id_number(rng, birth=birth),
    RNG,
    st.dates(gb11643.EARLIEST_BIRTH, TODAY),
)
MOBILES = st.builds(
    lambda second, rest: f"1{second}{rest:09d}",
    st.sampled_from("3456789"),
    st.integers(0, 10**9 - 1),
)
VALID: dict[Kind, st.SearchStrategy[str]] = {
    Kind.ID_NUMBER: ID_NUMBERS,
    Kind.PHONE: MOBILES,
    Kind.EMAIL: st.one_of(st.emails(), RNG.map(synthetic.email)),
    Kind.NAME: RNG.map(synthetic.name),
    Kind.ADDRESS: RNG.map(synthetic.address),
}


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A valid value of some kind with one character inserted, deleted, replaced or doubled."""
    value = draw(st.sampled_from(list(Kind)).flatmap(lambda kind: VALID[kind]))
    i = draw(st.integers(0, max(len(value) - 1, 0)))
    char = draw(st.one_of(st.characters(), st.sampled_from("0X9 \x00\u3000０·@.-")))
    edit = draw(st.sampled_from(["insert", "delete", "replace", "double"]))
    if edit == "insert":
        return value[:i] + char + value[i:]
    if edit == "delete":
        return value[:i] + value[i + 1 :]
    if edit == "replace":
        return value[:i] + char + value[i + 1 :]
    return value[: i + 1] + value[i:]


ANY_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(categories=["Cs", "Lo", "Nd"]), max_size=30),  # lone surrogates
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Nd", "No"]), max_size=30),
    st.text(
        "0123456789xX +-()（）　０１２３４５６７８９ｘＸ＋\x00\t\n\u200b\ufeff·@.", max_size=30
    ),
    st.sampled_from(list(Kind))
    .flatmap(lambda kind: VALID[kind])
    .map(lambda v: v.translate(FULL_WIDTH)),
    near_misses(),
    st.builds(
        lambda piece, times: piece * times,
        st.text(min_size=1, max_size=4),
        st.sampled_from([1_000, 65_537, 300_000]),
    ),
)


def _echoes(value: str) -> set[str]:
    """The forms of `value` an error message must not contain (but for rule wording itself)."""
    nfkc = unicodedata.normalize("NFKC", value)
    forms = {value, value.strip(), nfkc.strip(), nfkc.replace(" ", "").strip().upper()}
    forms |= set(re.findall(r"[0-9]{6,}", nfkc))
    return {form for form in forms if len(form) >= 3 and form not in RULE_WORDING}


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT, st.sampled_from([None, "applicant.field"]))
def test_identifier_validators_answer_anything(value: str, field: str | None) -> None:
    """Every kind: a canonical value, normalising it again changes nothing; or `InvalidValue`
    naming the field and a rule, never the value. No other exception, whatever the text."""
    for kind in Kind:
        named = field or kind.value
        try:
            once = normalise(kind, value, field, TODAY)
        except InvalidValue as exc:
            assert exc.field == named
            assert str(exc).startswith(f"{named}: ") and exc.reason
            assert not any(form in str(exc) for form in _echoes(value))
            continue
        assert normalise(kind, once, field, TODAY) == once
    with contextlib.suppress(gb11643.IdNumberError):
        gb11643.parse(value, TODAY)
    with contextlib.suppress(gb11643.IdNumberError):
        gb11643.check_character(value)


@st.composite
def id_number_forms(draw: st.DrawFn) -> tuple[str, str]:
    """(a valid number, the same number as people type it: lower-case x, full-width digits,
    spaces inside, blanks around)."""
    number = draw(ID_NUMBERS)
    written = number.lower() if draw(st.booleans()) else number
    if draw(st.booleans()):
        written = written.translate(FULL_WIDTH)
    seps = draw(st.lists(st.sampled_from(["", " ", "\u3000"]), min_size=17, max_size=17))
    written = "".join(c + s for c, s in zip(written, [*seps, ""], strict=True))
    around = st.sampled_from(["", " ", "\t", "\n", "\u3000"])
    return number, draw(around) + written + draw(around)


@settings(max_examples=200, deadline=None)
@given(id_number_forms())
def test_valid_id_numbers_validate_in_every_written_form(forms: tuple[str, str]) -> None:
    number, written = forms
    person = validation.resident_id(written, today=TODAY)
    assert person.number == number == normalise(Kind.ID_NUMBER, written, today=TODAY)
    assert normalise(Kind.ID_NUMBER, number, today=TODAY) == number
    assert person.birth_date <= TODAY and person.region_code == number[:6]


@st.composite
def mobile_forms(draw: st.DrawFn) -> tuple[str, str]:
    number = draw(MOBILES)
    prefix = draw(st.sampled_from(["", "+86", "+86 ", "0086", "0086-", "86", "86 ", "(+86) "]))
    cuts = sorted(draw(st.sets(st.integers(1, 10), max_size=4)))
    parts = [number[a:b] for a, b in zip([0, *cuts], [*cuts, 11], strict=True)]
    seps = draw(st.lists(st.sampled_from([" ", "-", "", "\u3000", "－"]), min_size=len(parts)))
    written = prefix + "".join(p + s for p, s in zip(parts, seps, strict=False)).rstrip(
        " -－\u3000"
    )
    if draw(st.booleans()):
        written = written.translate(FULL_WIDTH)
    return number, written


@settings(max_examples=200, deadline=None)
@given(mobile_forms())
def test_mobiles_with_prefix_spaces_and_dashes_normalise_to_one_value(
    forms: tuple[str, str],
) -> None:
    number, written = forms
    assert normalise(Kind.PHONE, written) == number
    assert normalise(Kind.PHONE, number) == number


@settings(max_examples=200, deadline=None)
@given(ID_NUMBERS, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_changing_any_single_character_of_an_id_number_is_refused(
    number: str, position: int, replacement: str
) -> None:
    """MOD 11-2 catches every single-character error; when the changed number still has a
    plausible region and birth date, it is the check character that refuses it."""
    assume(number[position] != replacement)
    changed = number[:position] + replacement + number[position + 1 :]
    with pytest.raises(InvalidValue) as refused:
        normalise(Kind.ID_NUMBER, changed, today=TODAY)
    assert number not in str(refused.value) and changed not in str(refused.value)
    first17 = changed[:17]
    if first17.isdigit():
        with contextlib.suppress(InvalidValue):
            validation.resident_id(first17 + gb11643.check_character(first17), today=TODAY)
            assert refused.value.reason == "check character does not match"


@settings(max_examples=200, deadline=None)
@given(ID_NUMBERS, st.integers(0, 16))
def test_swapping_two_adjacent_characters_of_an_id_number_is_refused(
    number: str, position: int
) -> None:
    """MOD 11-2's weights differ from one position to the next: adjacent transpositions of
    different characters are caught too."""
    a, b = number[position], number[position + 1]
    assume(a != b)
    swapped = number[:position] + b + a + number[position + 2 :]
    with pytest.raises(InvalidValue):
        normalise(Kind.ID_NUMBER, swapped, today=TODAY)
