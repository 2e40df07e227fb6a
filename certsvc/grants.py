"""Privilege grants as audit events, and the second person some of them need.

Each row the service honours as a privilege — an account's role, an API token, a workstation's
key (and a USBKey's custodian, `signer.custody.custody_backed`) — stores the index of the audit
event that granted it; the event's details carry the digest of the row's privilege-bearing
fields (`audit.grants`). The privilege is honoured only while that event is intact in the log
and matches the row, so a row written straight into the database grants nothing
(`current_staff` answers 401/403 and records the refusal) and `unbacked_grants` names it.

Accounts whose role reveals, decides, approves or signs (officer, custodian, vault revealer,
security officer) are proposed by an admin and take effect only when a security officer who
is a different natural person (`StaffAccount.person`) approves them. An account's first
password, chosen by whoever proposed it, only lets its holder set their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.events import leaf_time
from audit.grants import GRANT_ADOPT, LEGACY_GRANT, grant_backed, grant_digest
from audit.trail import Attributed, record
from certsvc.accounts import (
    PASSWORD_SET,
    ApiToken,
    Role,
    StaffAccount,
    authenticate,
    bind_password,
    create_account,
    get_account,
    issue_api_token,
    password_backed,
    password_digest,
    password_hasher,
    validate_password,
)
from certsvc.audit_trail import SYSTEM_ROLE, actor_of
from certsvc.storage_media import StorageMedium, medium_backed
from certsvc.workstations import Workstation, WorkstationPublicKey, register_workstation
from common.dbtypes import utcnow
from common.errors import Conflict, InvalidInput
from signer.custody import custody_backed, custody_digest
from signer.models import HsmToken

SECOND_PERSON_ROLES = frozenset(
    {Role.OFFICER, Role.CUSTODIAN, Role.VAULT_REVEALER, Role.SECURITY_OFFICER}
)
ACCOUNT_PROPOSE = "service.account.propose"
ACCOUNT_CREATE = "service.account.create"
ACCOUNT_APPROVE = "service.account.approve"
ACCOUNT_BOOTSTRAP = "service.account.bootstrap"
TOKEN_LOGIN = "service.login"  # noqa: S105 (audit action names)
TOKEN_ISSUE = "service.api_token.issue"  # noqa: S105
WORKSTATION_REGISTER = "service.workstation.register"

_ANYONE = frozenset({role.value for role in Role} | {SYSTEM_ROLE})
_PROVISIONERS = frozenset({Role.ADMIN.value, SYSTEM_ROLE})
_ADOPTERS = frozenset({SYSTEM_ROLE})
_TOKEN_EVENTS = {TOKEN_LOGIN: _ANYONE, TOKEN_ISSUE: _ANYONE, GRANT_ADOPT: _ADOPTERS}
_WORKSTATION_EVENTS = {WORKSTATION_REGISTER: _PROVISIONERS, GRANT_ADOPT: _ADOPTERS}


def account_digest(account: StaffAccount) -> str:
    return grant_digest(
        "account",
        {"username": account.username, "role": account.role.value, "person": account.person},
    )


def token_digest(token: ApiToken) -> str:
    return grant_digest(
        "api_token",
        {
            "token_hash": token.token_hash,
            "account": token.account.username,
            "expires_at": leaf_time(token.expires_at),
        },
    )


def workstation_digest(workstation: Workstation) -> str:
    return grant_digest(
        "workstation",
        {
            "name": workstation.name,
            "holder": workstation.custodian.username,
            "public_key": workstation.public_key.hex(),
        },
    )


def _account_events(role: Role) -> Mapping[str, frozenset[str]]:
    """The events that grant an account of `role`: a second person's approval (or `certsvc
    init`'s bootstrap); an admin's creation only for roles that need no second person."""
    events = {
        ACCOUNT_APPROVE: frozenset({Role.SECURITY_OFFICER.value}),
        ACCOUNT_BOOTSTRAP: _ADOPTERS,
        GRANT_ADOPT: _ADOPTERS,
    }
    if role not in SECOND_PERSON_ROLES:
        events[ACCOUNT_CREATE] = _PROVISIONERS
    return events


def account_backed(db: Session, account: StaffAccount) -> bool:
    """Whether the account's role is granted by an intact event naming exactly it."""
    events = _account_events(account.role)
    return grant_backed(db, account.grant_idx, events, account_digest(account))


def account_pending(db: Session, account: StaffAccount) -> bool:
    """Proposed and recorded so, awaiting a security officer's approval."""
    events = {ACCOUNT_PROPOSE: _PROVISIONERS}
    return grant_backed(db, account.grant_idx, events, account_digest(account))


def token_backed(db: Session, token: ApiToken) -> bool:
    return grant_backed(db, token.grant_idx, _TOKEN_EVENTS, token_digest(token))


def workstation_backed(db: Session, workstation: Workstation) -> bool:
    return grant_backed(
        db, workstation.grant_idx, _WORKSTATION_EVENTS, workstation_digest(workstation)
    )


def _one_account_per_role(db: Session, account: StaffAccount) -> None:
    """A person holds at most one active account of a role: a second would let them count as
    two officers, or double their limits."""
    other = db.scalar(
        select(StaffAccount.username).where(
            StaffAccount.person == account.person,
            StaffAccount.role == account.role,
            StaffAccount.active.is_(True),
            StaffAccount.id != account.id,
        )
    )
    if other is not None:
        raise Conflict(
            f"person: {account.person!r} already holds the {account.role.value} account {other!r}"
        )


def propose_account(
    db: Session,
    by: Attributed,
    username: str,
    role: Role | str,
    password: str,
    display_name: str | None = None,
    *,
    person: str | None = None,
    hasher: PasswordHasher | None = None,
) -> StaffAccount:
    """An account whose password only lets its holder set their own. A role needing a second
    person waits for `approve_account`; any other takes effect now."""
    account = create_account(
        db,
        username,
        role,
        password,
        display_name,
        hasher=hasher,
        person=person,
        must_set_password=True,
        by=by,
    )
    _one_account_per_role(db, account)
    account.proposed_by = by.username
    pending = account.role in SECOND_PERSON_ROLES
    account.grant_idx = record(
        db,
        by,
        ACCOUNT_PROPOSE if pending else ACCOUNT_CREATE,
        account.username,
        details={
            "role": account.role.value,
            "person": account.person,
            "grant": account_digest(account),
        },
    )
    return account


def approve_account(db: Session, officer: StaffAccount, username: str) -> StaffAccount:
    """The security officer's approval of a proposed account: from then on its role counts.
    Refused when the officer is the account's holder or its proposer (one natural person
    each), or when the account is not awaiting approval."""
    if officer.role is not Role.SECURITY_OFFICER:
        raise Conflict("approver: only a security officer approves an account")
    account = get_account(db, username)
    if not account.active:
        raise Conflict(f"username: account {username!r} is disabled")
    if not account_pending(db, account):
        raise Conflict(f"username: account {username!r} is not awaiting approval")
    if officer.person == account.person:
        raise Conflict("username: nobody approves an account of their own")
    proposer = db.scalar(select(StaffAccount).where(StaffAccount.username == account.proposed_by))
    if proposer is not None and proposer.person == officer.person:
        raise Conflict("username: the proposer and the approver must be two different persons")
    _one_account_per_role(db, account)
    account.grant_idx = record(
        db,
        actor_of(officer),
        ACCOUNT_APPROVE,
        account.username,
        details={
            "role": account.role.value,
            "person": account.person,
            "proposed_by": account.proposed_by or "",
            "grant": account_digest(account),
        },
    )
    return account


def bootstrap_account(
    db: Session,
    by: Attributed,
    username: str,
    role: Role,
    password: str,
    display_name: str,
    *,
    hasher: PasswordHasher | None = None,
    person: str | None = None,
    must_set_password: bool = False,
) -> StaffAccount:
    """An account `certsvc init` provisions at the server (the first admin and security
    officer, and the simulation's demo staff): granted by that event alone. In production
    its password, having passed through init, only lets the holder set their own."""
    account = create_account(
        db,
        username,
        role,
        password,
        display_name,
        hasher=hasher,
        person=person,
        must_set_password=must_set_password,
        by=by,
    )
    account.grant_idx = record(
        db,
        by,
        ACCOUNT_BOOTSTRAP,
        account.username,
        details={"role": role.value, "person": account.person, "grant": account_digest(account)},
    )
    return account


def set_own_password(
    db: Session, username: str, current: str, new: str, *, hasher: PasswordHasher | None = None
) -> StaffAccount | None:
    """Replace the password of the holder who knows the current one (the proposer's initial
    secret works here once, and nowhere else); None when username or password is wrong."""
    hasher = hasher or password_hasher()
    account = authenticate(db, username, current, hasher=hasher)
    if account is None:
        return None
    validate_password(new)
    if new == current:
        raise InvalidInput("new_password: must differ from the current one")
    account.password_hash = hasher.hash(new)
    account.must_set_password = False
    bind_password(db, account, actor_of(account), PASSWORD_SET)
    return account


def grant_token(
    db: Session, by: Attributed, account: StaffAccount, days: int, action: str = TOKEN_ISSUE
) -> tuple[str, ApiToken]:
    """A new API token for `account`, granted by its event (`action`, by `by`)."""
    text, token = issue_api_token(db, account, days)
    token.grant_idx = record(
        db,
        by,
        action,
        token.token_id,
        details={"account": account.username, "grant": token_digest(token)},
    )
    return text, token


def grant_workstation(
    db: Session,
    by: Attributed,
    name: str,
    holder: str,
    public_key: WorkstationPublicKey | str | bytes,
) -> Workstation:
    """Register a workstation, granted by its event."""
    workstation = register_workstation(db, name, holder, public_key)
    db.flush()
    workstation.grant_idx = record(
        db,
        by,
        WORKSTATION_REGISTER,
        workstation.name,
        details={"custodian": holder, "grant": workstation_digest(workstation)},
    )
    return workstation


def adopt_legacy_grants(db: Session, by: Attributed) -> list[str]:
    """Give each row granted before grants were events (marked by the migration) its event,
    as it stands now: `certsvc init` does it once, on the service host, and each adoption is
    in the log for the security officer. What it adopted, as "kind name" lines."""
    adopted = []
    rows: list[tuple[str, str, StaffAccount | ApiToken | Workstation | HsmToken, str]] = []
    for account in db.scalars(select(StaffAccount).where(StaffAccount.grant_idx == LEGACY_GRANT)):
        rows.append(("account", account.username, account, account_digest(account)))
    for token in db.scalars(select(ApiToken).where(ApiToken.grant_idx == LEGACY_GRANT)):
        rows.append(("api_token", token.token_id, token, token_digest(token)))
    for station in db.scalars(select(Workstation).where(Workstation.grant_idx == LEGACY_GRANT)):
        rows.append(("workstation", station.name, station, workstation_digest(station)))
    for usbkey in db.scalars(select(HsmToken).where(HsmToken.custody_idx == LEGACY_GRANT)):
        rows.append(("custody", usbkey.serial, usbkey, custody_digest(usbkey)))
    for kind, name, row, digest in rows:
        index = record(db, by, GRANT_ADOPT, f"{kind}:{name}", details={"grant": digest})
        if isinstance(row, HsmToken):
            row.custody_idx = index
        else:
            row.grant_idx = index
        adopted.append(f"{kind} {name}")
    for account in db.scalars(
        select(StaffAccount).where(StaffAccount.password_idx == LEGACY_GRANT)
    ):
        account.password_idx = record(
            db,
            by,
            GRANT_ADOPT,
            f"password:{account.username}",
            details={"grant": password_digest(account)},
        )
        adopted.append(f"password {account.username}")
    return adopted


@dataclass(frozen=True)
class UnbackedGrant:
    """A privilege row with no intact grant event naming it: written around the service."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: no grant event on record matches it"


def unbacked_grants(db: Session) -> list[UnbackedGrant]:
    """Every active account, usable API token, active workstation, token and storage medium
    custody whose
    grant event is missing, altered or names other fields (proposed accounts count as backed
    by their proposal: they grant nothing yet)."""
    found = []
    for account in db.scalars(
        select(StaffAccount).where(StaffAccount.active.is_(True)).order_by(StaffAccount.id)
    ):
        if not (account_backed(db, account) or account_pending(db, account)):
            found.append(UnbackedGrant("account", account.username))
        if not password_backed(db, account):
            found.append(UnbackedGrant("password of account", account.username))
    now = utcnow()
    for token in db.scalars(
        select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)
    ):
        if token.usable(now) and not token_backed(db, token):
            found.append(UnbackedGrant("api_token", token.token_id))
    for workstation in db.scalars(
        select(Workstation).where(Workstation.active.is_(True)).order_by(Workstation.id)
    ):
        if not workstation_backed(db, workstation):
            found.append(UnbackedGrant("workstation", workstation.name))
    for usbkey in db.scalars(
        select(HsmToken).where(HsmToken.custodian_id.is_not(None)).order_by(HsmToken.serial)
    ):
        if not custody_backed(db, usbkey):
            found.append(UnbackedGrant("custody of token", usbkey.serial))
    for medium in db.scalars(select(StorageMedium).order_by(StorageMedium.label)):
        if not medium_backed(db, medium):
            found.append(UnbackedGrant("custody of storage medium", medium.label))
    return found
