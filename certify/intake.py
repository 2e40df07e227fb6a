"""Applicants from vault tokens (the HTTP intake path): the registrar tokenises the
identifiers through the vault API, then files the case with the tokens. Nothing is decrypted
for intake: the tokens are checked against the vault's entries (held, and of the right kind),
and the vault answers the facts the ID number states (birth date, sex, region), never the
number; the case keeps the birth date alone, which the age rules read."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.trail import record
from certify.models import Applicant
from common.errors import InvalidInput, NotFound
from signer.actor import Actor
from vault.kinds import Kind, kind_of_token
from vault.store import Vault


@dataclass(frozen=True)
class ApplicantTokens:
    id_number_token: str
    name_token: str
    phone_token: str | None = None
    email_token: str | None = None
    address_token: str | None = None

    def by_field(self) -> dict[str, tuple[Kind, str]]:
        fields = {
            "id_number_token": (Kind.ID_NUMBER, self.id_number_token),
            "name_token": (Kind.NAME, self.name_token),
            "phone_token": (Kind.PHONE, self.phone_token),
            "email_token": (Kind.EMAIL, self.email_token),
            "address_token": (Kind.ADDRESS, self.address_token),
        }
        return {name: (kind, token) for name, (kind, token) in fields.items() if token}


def register_applicant(db: Session, actor: Actor, vault: Vault, tokens: ApplicantTokens) -> int:
    """The applicant for these tokens: the one on file for the ID number's (convergent) token,
    else a new one with the facts the vault computes. Errors name the field, never a value."""
    fields = tokens.by_field()
    for field, (kind, token) in fields.items():
        if kind_of_token(token) is not kind:
            raise _wrong_kind(field, kind)
    held = vault.known(db, [token for _, token in fields.values()])
    for field, (kind, token) in fields.items():
        if token not in held:
            raise NotFound(f"{field}: the vault holds no such token")
        if held[token] is not kind:  # an entry whose stored kind disagrees with its prefix
            raise _wrong_kind(field, kind)
    existing = db.scalar(
        select(Applicant).where(Applicant.id_number_token == tokens.id_number_token)
    )
    if existing is not None:
        return existing.id
    person = vault.id_facts(db, tokens.id_number_token, "id_number_token")
    applicant = Applicant(
        id_number_token=tokens.id_number_token,
        name_token=tokens.name_token,
        phone_token=tokens.phone_token,
        email_token=tokens.email_token,
        address_token=tokens.address_token,
        birth_date=person.birth_date,
    )
    db.add(applicant)
    db.flush()
    record(db, actor, "certify.applicant.register", f"applicant:{applicant.id}")
    return applicant.id


def _wrong_kind(field: str, kind: Kind) -> InvalidInput:
    return InvalidInput(f"{field}: not a vault token of kind {kind.value}")
