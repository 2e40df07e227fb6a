"""The vault over HTTP, staff only: tokenise, look up by value, mask, and the audited reveal.

Values travel only in request and response bodies (never in a URL), and every error names the
item and the rule broken, never the value. Who may do what:

- tokenise: registrar (intake);
- look up by value: registrar, officer;
- mask: registrar, officer, security officer, vault revealer;
- reveal: vault revealer only, with a purpose, rate-limited; every attempt is audited,
  including one refused for the caller's role.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from audit.trail import record
from certify.cases import CASE_REFERENCE, case_tokens
from certsvc import state
from certsvc.accounts import Role, StaffAccount
from certsvc.audit_trail import actor_of
from certsvc.auth import SessionDep, StaffDep, require_roles, require_workstation
from certsvc.routes.schemas import ROLE_GATED, answers
from certsvc.vault_setup import lookup_limit, reveal_limit
from certsvc.workstations import Workstation
from common.errors import InvalidInput, NotFound
from signer.actor import Actor
from vault.errors import InvalidValue
from vault.kinds import Kind
from vault.lookups import admit_lookup, record_lookup
from vault.reveal import Opened, RevealLimit, record_refusal, reveal
from vault.store import Tokenised, Vault
from vault.validation import normalise, resident_id

router = APIRouter(prefix="/api/v1/vault", tags=["vault"], responses=ROLE_GATED)
MAX_ITEMS = 1000
MAX_REVEAL = 100
PURPOSE_LIMIT = 480  # room left for the case reference in the recorded reason
VAULT_TOKEN_SHAPE = r"^tk_[a-z]{2}_[A-Za-z0-9_-]{16,40}$"  # noqa: S105 (a pattern)

TokeniserDep = Annotated[StaffAccount, Depends(require_roles(Role.REGISTRAR))]
LookupDep = Annotated[StaffAccount, Depends(require_roles(Role.REGISTRAR, Role.OFFICER))]
MaskDep = Annotated[
    StaffAccount,
    Depends(
        require_roles(Role.REGISTRAR, Role.OFFICER, Role.SECURITY_OFFICER, Role.VAULT_REVEALER)
    ),
]


class Item(BaseModel):
    kind: Kind
    value: str = Field(min_length=1, max_length=400, description="never echoed back")


class Items(BaseModel):
    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS)


class Facts(BaseModel):
    """What an ID number states, for case fields that must never need a reveal."""

    birth_date: date
    sex: str = Field(description="M or F")
    region_code: str


class TokenOut(BaseModel):
    kind: Kind
    token: str
    created: bool
    facts: Facts | None = None


class TokensOut(BaseModel):
    tokens: list[TokenOut]


class LookupOut(BaseModel):
    tokens: list[str | None] = Field(description="the token per item, null when not held")


class Tokens(BaseModel):
    tokens: list[Annotated[str, Field(pattern=VAULT_TOKEN_SHAPE)]] = Field(
        min_length=1, max_length=MAX_REVEAL
    )


class RevealIn(Tokens):
    case: str = Field(
        pattern=CASE_REFERENCE,
        description="the case the values are needed for: application:<id> or "
        "certificate:<number>; every token must be of its applicant",
        examples=["application:42"],
    )
    purpose: str = Field(
        min_length=10,
        max_length=PURPOSE_LIMIT,
        description="why, recorded in the audit log with the case",
    )


class MaskedOut(BaseModel):
    token: str
    kind: Kind
    masked: str


class RevealedOut(BaseModel):
    token: str
    kind: Kind
    value: str


VaultDep = Annotated[Vault, Depends(state.vault)]


def _checked(items: list[Item]) -> dict[Kind, list[int]]:
    """Item positions by kind; 422 listing every bad item (field and rule, no value)."""
    errors = []
    by_kind: dict[Kind, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        try:
            normalise(item.kind, item.value, f"items[{index}].value")
        except InvalidValue as exc:
            errors.append(
                {
                    "loc": ["body", "items", index, "value"],
                    "msg": f"{item.kind.value}: {exc.reason}",
                    "type": "value_error",
                }
            )
        by_kind[item.kind].append(index)
    if errors:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errors)
    return by_kind


@router.post("/tokenise")
def tokenise(body: Items, account: TokeniserDep, db: SessionDep, vault: VaultDep) -> TokensOut:
    """A token per value: the existing one if the vault already holds the value. ID numbers
    also return the facts they state."""
    _checked(body.items)
    items = [(item.kind, item.value, f"items[{i}].value") for i, item in enumerate(body.items)]
    out = []
    for item, tokenised in zip(
        body.items, tokenise_values(db, vault, actor_of(account), items), strict=True
    ):
        facts = None
        if item.kind is Kind.ID_NUMBER:
            person = resident_id(item.value)
            facts = Facts(
                birth_date=person.birth_date, sex=person.sex, region_code=person.region_code
            )
        out.append(
            TokenOut(kind=item.kind, token=tokenised.token, created=tokenised.created, facts=facts)
        )
    return TokensOut(tokens=out)


def tokenise_values(
    db: Session, vault: Vault, actor: Actor, items: Sequence[tuple[Kind, str, str]]
) -> list[Tokenised]:
    """Tokens for checked (kind, value, field) items, in their order, one audit event for the
    lot: the intake path of the API and of the console."""
    positions: dict[Kind, list[int]] = defaultdict(list)
    for index, (kind, _, _) in enumerate(items):
        positions[kind].append(index)
    out: list[Tokenised | None] = [None] * len(items)
    for kind, indexes in positions.items():
        values = [items[i][1] for i in indexes]
        fields = [items[i][2] for i in indexes]
        for i, tokenised in zip(indexes, vault.tokenise(db, kind, values, fields), strict=True):
            out[i] = tokenised
    tokens = [t for t in out if t is not None]
    details = {"values": len(items), "created": sum(t.created for t in tokens)}
    record(db, actor, "vault.tokenise", "vault", details=details)
    return tokens


@router.post("/lookup", responses=answers(429))
def lookup(
    body: Items, account: LookupDep, db: SessionDep, vault: VaultDep, request: Request
) -> LookupOut:
    """The token of each value the vault holds, found through the blind index without
    decrypting anything; null for a value it does not hold. At most
    `CERTSVC_VAULT_LOOKUP_LIMIT` values per person per `CERTSVC_VAULT_LOOKUP_WINDOW_MINUTES`;
    each batch is audited with its hits and misses, and `CERTSVC_VAULT_LOOKUP_ALERT_MISSES`
    misses in the window raise a security alert."""
    by_kind = _checked(body.items)
    who = actor_of(account)
    limit = lookup_limit(state.settings(request))
    admit_lookup(db, who, len(body.items), limit)
    found: list[str | None] = [None] * len(body.items)
    for kind, positions in by_kind.items():
        values = [body.items[i].value for i in positions]
        for i, token in zip(positions, vault.lookup(db, kind, values), strict=True):
            found[i] = token
    misses = sum(token is None for token in found)
    record_lookup(db, who, len(found), misses, limit)
    return LookupOut(tokens=found)


@router.post("/mask")
def mask(body: Tokens, _: MaskDep, db: SessionDep, vault: VaultDep) -> list[MaskedOut]:
    """Masked display (`张*明`, `138****5678`, …) of known tokens; unknown ones are left out."""
    masked = vault.masked(db, body.tokens)
    return [
        MaskedOut(token=token, kind=masked[token][0], masked=masked[token][1])
        for token in body.tokens
        if token in masked
    ]


def revealer(account: StaffDep, db: SessionDep) -> StaffAccount:
    """The caller if they hold the reveal role; otherwise 403, the refusal kept on record
    (the API's dependency and the console's check)."""
    if account.role is not Role.VAULT_REVEALER:
        record_refusal(db, actor_of(account), [], f"role {account.role.value} may not reveal")
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="this action needs the role: vault_revealer"
        )
    return account


@router.post("/reveal", responses=answers(404, 429))
def reveal_values(
    body: RevealIn,
    response: Response,
    account: Annotated[StaffAccount, Depends(revealer)],
    workstation: Annotated[Workstation, Depends(require_workstation)],
    db: SessionDep,
    request: Request,
    vault: VaultDep,
) -> list[RevealedOut]:
    """The values behind tokens, for a stated purpose, from the revealer's registered
    workstation (a stolen API token alone reveals nothing): one audit event per value, naming
    the workstation, committed before anything is returned; at most
    `CERTSVC_VAULT_REVEAL_LIMIT` values per person per `CERTSVC_VAULT_REVEAL_WINDOW_MINUTES`."""
    limit = reveal_limit(state.settings(request))
    who = actor_of(account, workstation)
    values = reveal_for_case(db, vault, who, body.tokens, body.case, body.purpose, limit)
    response.headers["Cache-Control"] = "no-store"
    return [RevealedOut(token=t, kind=values[t].kind, value=values[t].value) for t in body.tokens]


def reveal_for_case(
    db: Session,
    vault: Vault,
    who: Actor,
    tokens: Sequence[str],
    case: str,
    purpose: str,
    limit: RevealLimit,
) -> dict[str, Opened]:
    """The reveal of the API and of the console: refused (kept on record) unless every token
    belongs to the applicant of the stated case — a purpose is checked against the records,
    not only read — then `vault.reveal.reveal` under the person's limit."""
    try:
        allowed = case_tokens(db, case)
    except NotFound as exc:
        record_refusal(db, who, tokens, str(exc))
        raise
    outside = [i for i, token in enumerate(tokens) if token not in allowed]
    if outside:
        record_refusal(db, who, tokens, f"token outside {case}")
        raise InvalidInput(f"tokens[{outside[0]}]: not a value of the applicant of {case}")
    return reveal(db, vault, who, tokens, f"{case}: {purpose}", limit)
