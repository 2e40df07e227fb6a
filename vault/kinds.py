"""The kinds of personal identifier the vault holds, and the prefix that types each token."""

from __future__ import annotations

import enum


class Kind(enum.StrEnum):
    ID_NUMBER = "id_number"
    PHONE = "phone"
    EMAIL = "email"
    NAME = "name"
    ADDRESS = "address"


TOKEN_PREFIX: dict[Kind, str] = {
    Kind.ID_NUMBER: "tk_id_",
    Kind.PHONE: "tk_ph_",
    Kind.EMAIL: "tk_em_",
    Kind.NAME: "tk_nm_",
    Kind.ADDRESS: "tk_ad_",
}


def kind_of_token(token: str) -> Kind | None:
    """The kind a token's prefix announces, or None for text that is not a vault token."""
    for kind, prefix in TOKEN_PREFIX.items():
        if token.startswith(prefix):
            return kind
    return None
