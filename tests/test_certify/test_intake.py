"""Intake from vault tokens on both databases: tokens are checked against the vault's entries
without decrypting them, the ID number's facts come from the vault without the number, no
reveal is recorded, and every refusal names the field, never a value."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, inspect, select, update
from sqlalchemy.orm import Session

from audit.models import AuditEventRow
from certify.intake import ApplicantTokens, register_applicant
from certify.models import Applicant
from common.errors import InvalidInput, NotFound
from test_certify.conftest import REGISTRAR, Body
from vault import synthetic
from vault.kinds import Kind
from vault.models import VaultEntry, VaultReveal
from vault.validation import resident_id

UNKNOWN_PHONE = "tk_ph_" + "A" * 22


def _person(body: Body, seed: int) -> tuple[dict[Kind, str], ApplicantTokens]:
    rng = random.Random(seed)
    values = {
        Kind.ID_NUMBER: synthetic.id_number(rng),
        Kind.NAME: synthetic.name(rng),
        Kind.PHONE: synthetic.phone(rng),
        Kind.EMAIL: synthetic.email(rng),
        Kind.ADDRESS: synthetic.address(rng),
    }
    with body.sessions.begin() as db:
        token = {k: body.issuer.vault.tokenise(db, k, [v])[0].token for k, v in values.items()}
    tokens = ApplicantTokens(
        id_number_token=token[Kind.ID_NUMBER],
        name_token=token[Kind.NAME],
        phone_token=token[Kind.PHONE],
        email_token=token[Kind.EMAIL],
        address_token=token[Kind.ADDRESS],
    )
    return values, tokens


def _flip_last_byte(db: Session, token: str) -> None:
    sealed = bytearray(db.scalar(select(VaultEntry.ciphertext).where(VaultEntry.token == token)))
    sealed[-1] ^= 0x01
    db.execute(update(VaultEntry).where(VaultEntry.token == token).values(ciphertext=sealed))


def test_intake_decrypts_no_identifier_and_reveals_nothing(body: Body) -> None:
    values, tokens = _person(body, 7)
    # Name, phone, e-mail and address made unreadable: intake never decrypts them, so it
    # still files the applicant (decrypting any of them would fail its integrity check).
    with body.sessions.begin() as db:
        for token in (tokens.name_token, tokens.phone_token, tokens.email_token):
            assert token is not None
            _flip_last_byte(db, token)
        assert tokens.address_token is not None
        _flip_last_byte(db, tokens.address_token)
    with body.sessions.begin() as db:
        applicant_id = register_applicant(db, REGISTRAR, body.issuer.vault, tokens)
    with body.sessions.begin() as db:  # the same ID number's token finds the same applicant
        assert register_applicant(db, REGISTRAR, body.issuer.vault, tokens) == applicant_id
    facts = resident_id(values[Kind.ID_NUMBER]).facts()
    with body.sessions() as db:
        applicant = db.get_one(Applicant, applicant_id)
        # The case keeps the birth date the age rules read, not the sex and region that
        # would narrow the ID number further.
        assert applicant.birth_date == facts.birth_date
        kept = {column["name"] for column in inspect(db.connection()).get_columns("applicants")}
        assert "birth_date" in kept and not {"sex", "region_code"} & kept
        reveals = db.scalar(
            select(func.count())
            .select_from(AuditEventRow)
            .where(AuditEventRow.action == "vault.reveal")
        )
        assert reveals == 0
        assert db.scalar(select(func.count()).select_from(VaultReveal)) == 0


def test_id_facts_carry_no_number(body: Body) -> None:
    values, tokens = _person(body, 8)
    with body.sessions() as db:
        facts = body.issuer.vault.id_facts(db, tokens.id_number_token)
    assert not hasattr(facts, "number")
    assert values[Kind.ID_NUMBER] not in repr(facts)


def test_intake_names_the_field_of_a_wrong_or_unknown_token(body: Body) -> None:
    _, tokens = _person(body, 9)
    vault = body.issuer.vault
    wrong_prefix = ApplicantTokens(tokens.id_number_token, name_token=str(tokens.phone_token))
    unknown = ApplicantTokens(tokens.id_number_token, tokens.name_token, UNKNOWN_PHONE)
    with body.sessions() as db:  # each message is the field and the rule, exactly: no value
        with pytest.raises(InvalidInput, match=r"^name_token: not a vault token of kind name$"):
            register_applicant(db, REGISTRAR, vault, wrong_prefix)
        with pytest.raises(NotFound, match=r"^phone_token: the vault holds no such token$"):
            register_applicant(db, REGISTRAR, vault, unknown)
        with pytest.raises(InvalidInput, match=r"^id: not a vault token of kind id_number$"):
            vault.id_facts(db, tokens.name_token, "id")
        with pytest.raises(NotFound, match=r"^id: the vault holds no such token$"):
            vault.id_facts(db, "tk_id_" + "A" * 22, "id")
    # An entry whose stored kind disagrees with its token's prefix (a row edited in the
    # database) is refused by the stored kind, read without decrypting.
    with body.sessions.begin() as db:
        db.execute(
            update(VaultEntry)
            .where(VaultEntry.token == tokens.name_token)
            .values(kind=Kind.ADDRESS.value)
        )
    with (
        body.sessions() as db,
        pytest.raises(InvalidInput, match=r"^name_token: not a vault token of kind name$"),
    ):
        register_applicant(db, REGISTRAR, vault, tokens)
    with body.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Applicant)) == 0
