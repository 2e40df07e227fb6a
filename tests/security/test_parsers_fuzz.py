"""Parsers of outside input, fed anything: they answer or refuse with their own error, never
crash with another exception (a 500 on the public side, a traceback in a CLI)."""

from __future__ import annotations

import base64
import contextlib

import base45
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from certsvc.audit.checkpoints import InvalidNote, open_note, parse_checkpoint
from certsvc.verify.offline import verify_offline
from certsvc.verify.payload import PREFIX, MalformedQr, parse_qr_text
from certsvc.verify.trust import TrustListInvalid, open_trust_list

KEY = ec.generate_private_key(ec.SECP256R1()).public_key()
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
@given(st.text(max_size=400))
def test_checkpoint_notes_refuse_cleanly(note: str) -> None:
    with contextlib.suppress(InvalidNote):
        parse_checkpoint(open_note(note, "certsvc.test/audit", KEY))
    with contextlib.suppress(InvalidNote):
        parse_checkpoint(note)


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
        open_trust_list(served)
