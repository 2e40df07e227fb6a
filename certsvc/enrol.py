"""`certsvc hsm enrol`: bring a vendor's USBKeys, initialised with the vendor's own tool, into
the service — the production counterpart of what `certsvc init` provisions in simulation.

Each token gets one role: the body's root, a custodian's signing USBKey, the audit-checkpoint
token or the vault's key token. The keys are made on the token (or an existing key pair is
adopted by its label, if the token keeps it sensitive and never extractable), certified by the
body's root in a root session opened by its custodian's PIN, and registered with the custodian
and workstation; the trust list is published again. The service's own tokens (audit, vault)
have their PIN put in the service PIN file, as `certsvc init` does. PINs are taken by the
caller and never stored elsewhere, printed or recorded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pkcs11
from pkcs11 import Mechanism, TokenFlag
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.trail import record
from certsvc.accounts import Role, StaffAccount
from certsvc.bootstrap import (
    AUDIT_USBKEY,
    DEMO_TOKENS,
    ROOT_USBKEY,
    DemoKey,
    DemoToken,
    checkpoint,
    pin_root,
    provision_keys,
)
from certsvc.service_pins import store_service_pin
from certsvc.settings import Settings
from certsvc.trust_publish import publish_trust_list
from certsvc.vault_setup import VAULT_TOKEN, enrol_vault_token
from certsvc.workstations import Workstation
from common.errors import CertsvcError, Conflict, InvalidInput, NotFound
from signer.actor import Actor
from signer.custody import active_key, register_token_workstation
from signer.models import HsmToken, KeyPurpose
from signer.tokens import Pkcs11Tokens, TokenSession

# Protection a key must have had all its life to be adopted rather than made on the token.
ADOPTABLE = {"SENSITIVE": True, "ALWAYS_SENSITIVE": True, "EXTRACTABLE": False,
             "NEVER_EXTRACTABLE": True, "TOKEN": True}  # fmt: skip


class TokenRole(enum.StrEnum):
    """What an enrolled token is for; each role's keys are the ones `certsvc init` makes on
    the simulated token of the same role."""

    ROOT = "root"
    SIGNING = "signing"
    AUDIT = "audit"
    VAULT = "vault"


ROLE_KEYS: dict[TokenRole, tuple[DemoKey, ...]] = {
    TokenRole.ROOT: next(t.keys for t in DEMO_TOKENS if t.label == ROOT_USBKEY),
    TokenRole.SIGNING: next(t.keys for t in DEMO_TOKENS if t.label == "USBKEY-01"),
    TokenRole.AUDIT: next(t.keys for t in DEMO_TOKENS if t.label == AUDIT_USBKEY),
    TokenRole.VAULT: (),
}
# What each role's keys need of the token; a mechanism its module says it lacks stops enrolment
# before anything is made (a gap in what the module says is tried, `signer.profile`).
P256 = (Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA)
NEEDED: dict[TokenRole, tuple[Mechanism, ...]] = {
    TokenRole.ROOT: P256,
    TokenRole.SIGNING: P256,
    TokenRole.AUDIT: (*P256, Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA),
    TokenRole.VAULT: (Mechanism.AES_KEY_GEN, Mechanism.AES_GCM),
}
# Tokens a person unlocks; the others the service unlocks itself with a PIN from its file.
CUSTODIAN_ROLES = (TokenRole.ROOT, TokenRole.SIGNING)


class EnrolRefused(CertsvcError):
    """Enrolment cannot go ahead; the message names the option to change."""


@dataclass(frozen=True)
class SlotEntry:
    """One slot of the module: its token, or a free slot (no token, or one not initialised)."""

    slot: int
    description: str
    label: str | None
    serial: str | None
    manufacturer: str | None
    model: str | None


@dataclass(frozen=True)
class Enrolment:
    """What `enrol` is asked to do; PINs are passed beside it, never kept in it."""

    token: str
    role: TokenRole
    custodian: str | None = None
    workstation: str | None = None
    # purpose → label of a key pair already on the token, to certify instead of making one
    adopt: tuple[tuple[KeyPurpose, str], ...] = ()


def module_slots(module_path: str) -> list[SlotEntry]:
    """Every slot of the vendor's module, with the token in it when initialised."""
    lib = pkcs11.lib(module_path)
    lib.reinitialize()  # tokens inserted since the module was loaded
    entries = []
    for slot in lib.get_slots(token_present=False):
        token = None
        if pkcs11.SlotFlag(slot.flags) & pkcs11.SlotFlag.TOKEN_PRESENT:
            token = slot.get_token()
            if not TokenFlag(token.flags) & TokenFlag.TOKEN_INITIALIZED:
                token = None
        entries.append(
            SlotEntry(
                slot=int(slot.slot_id),
                description=str(slot.slot_description).strip(),
                label=None if token is None else str(token.label).strip(),
                serial=None if token is None else bytes(token.serial).decode("ascii").strip(),
                manufacturer=None if token is None else str(token.manufacturer_id).strip(),
                model=None if token is None else str(token.model).strip(),
            )
        )
    return entries


def resolve_token(entries: list[SlotEntry], name: str) -> SlotEntry:
    """The module's initialised token named by label or serial (`--token`)."""
    found = [e for e in entries if e.serial is not None and name in (e.serial, e.label)]
    if not found:
        raise NotFound(
            f"--token: the module has no initialised token with label or serial {name!r}"
        )
    if len(found) > 1:
        raise InvalidInput(f"--token: several tokens are labelled {name!r}; name one by serial")
    return found[0]


def enrol(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    request: Enrolment,
    pin: str,
    root_pin: str | None,
    actor: Actor,
) -> list[str]:
    """Enrol one token in `request.role` as `actor` (the operator at the shell, who asks the
    gate for the root's signatures); what was made, by name. The root must be enrolled first:
    every other key is certified by it."""
    entry = resolve_token(_slots(settings), request.token)
    assert entry.serial is not None and entry.label is not None  # resolve_token's promise
    serial, label = entry.serial, entry.label
    custodian_id = _check(sessions, settings, request, serial, label)
    keys = _keys(request)
    support = tokens.mechanism_support(serial, NEEDED[request.role])
    absent = [f"CKM_{m.name}" for m, offered in support.items() if offered is False]
    if absent:
        raise EnrolRefused(
            f"--token: {label} does not offer {', '.join(absent)}, which a {request.role.value} "
            "token needs (if its module lists mechanisms incompletely, set "
            "CERTSVC_HSM_PROFILE=generic)"
        )
    if request.role is TokenRole.VAULT:
        with tokens.login(serial, pin, rw=True):
            pass  # the PIN is checked before it goes to the service PIN file
        first = enrol_vault_token(settings, sessions, tokens, serial, pin)
        _recorded(sessions, request, serial, label, actor)
        return [f"vault token {label}", *(["vault keys v1"] if first else [])]
    with sessions() as db:
        root_key = active_key(db, settings.body_code, KeyPurpose.ROOT)
        root_serial = None if root_key is None else root_key.token_serial
    if request.role is TokenRole.ROOT and root_serial is not None:
        raise Conflict(
            "--role: the body already has a root key; a second one would be a second trust "
            "anchor for every verifier"
        )
    if request.role is not TokenRole.ROOT and root_serial is None:
        raise EnrolRefused("--role: enrol the root token first (--role root)")
    with tokens.login(serial, pin, rw=True) as session:
        _check_adopted(session, request, keys)
        if request.role is TokenRole.ROOT:
            _provision(
                settings, sessions, tokens, session, session, label, keys, custodian_id, actor
            )
            pin_root(settings, sessions)
            publish_trust_list(settings, sessions, session, actor)
        else:
            if root_pin is None:
                raise EnrolRefused("root PIN: the root's custodian must unlock the root token")
            assert root_serial is not None
            with tokens.login(root_serial, root_pin) as root:
                _provision(
                    settings, sessions, tokens, session, root, label, keys, custodian_id, actor
                )
                publish_trust_list(settings, sessions, root, actor)
    if request.role is TokenRole.AUDIT:
        store_service_pin(settings.service_pins_file, label, pin)
    if request.workstation is not None:
        _workstation(sessions, serial, request.workstation, actor)
    _recorded(sessions, request, serial, label, actor)
    if request.role is TokenRole.AUDIT:
        checkpoint(settings, sessions, tokens, lambda _: None, actor)
    return [f"USBKey {label}", *(f"key {key.label}" for key in keys)]


def _slots(settings: Settings) -> list[SlotEntry]:
    return module_slots(settings.pkcs11_module)


def _check(
    sessions: sessionmaker[Session],
    settings: Settings,
    request: Enrolment,
    serial: str,
    label: str,
) -> int | None:
    """Refuse before anything is made on the token: registered already, a wrong label for the
    vault, a custodian or workstation that is missing or does not fit the role."""
    if request.role is TokenRole.VAULT and label != VAULT_TOKEN:
        raise EnrolRefused(
            f"--token: the vault's key token must be labelled {VAULT_TOKEN}; "
            "set that label with the vendor's tool when initialising it"
        )
    with sessions() as db:
        if db.get(HsmToken, serial) is not None:
            raise Conflict(f"--token: USBKey {label} ({serial}) is already enrolled")
        if db.scalar(select(HsmToken).where(HsmToken.label == label)) is not None:
            raise Conflict(f"--token: another enrolled USBKey is labelled {label}")
        if request.role not in CUSTODIAN_ROLES:
            if request.custodian is not None or request.workstation is not None:
                raise InvalidInput(
                    f"--custodian: the {request.role.value} token is unlocked by the service, "
                    "not held by a person"
                )
            return None
        if request.custodian is None:
            raise InvalidInput(f"--custodian: a {request.role.value} token needs its custodian")
        account = db.scalar(select(StaffAccount).where(StaffAccount.username == request.custodian))
        if account is None or account.role is not Role.CUSTODIAN or not account.active:
            raise InvalidInput(f"--custodian: {request.custodian} is not an active custodian")
        if request.workstation is not None:
            workstation = db.scalar(
                select(Workstation).where(Workstation.name == request.workstation)
            )
            if workstation is None or workstation.custodian_id != account.id:
                raise InvalidInput(
                    f"--workstation: {request.workstation} is not a registered workstation "
                    f"of {request.custodian}"
                )
        return account.id


def _keys(request: Enrolment) -> list[DemoKey]:
    """The role's keys, each under the label of the key pair adopted for its purpose."""
    keys = ROLE_KEYS[request.role]
    adopted = dict(request.adopt)
    purposes = {key.purpose for key in keys}
    for purpose in adopted:
        if purpose not in purposes:
            raise InvalidInput(f"--adopt: a {request.role.value} token has no {purpose} key")
    if request.role is TokenRole.AUDIT and adopted:
        raise InvalidInput("--adopt: the audit token's keys are always made on it")
    return [
        DemoKey(adopted.get(key.purpose, key.label), key.purpose, key.algorithm) for key in keys
    ]


def _check_adopted(session: TokenSession, request: Enrolment, keys: list[DemoKey]) -> None:
    """Every key pair already on the token under a label enrolment would use — named by
    `--adopt`, or left there by the vendor's tool or a run cut short — must never have been
    able to leave it: it is certified as it is, not made anew."""
    for _, label in request.adopt:
        if not session.has_private_key(label):
            raise NotFound(f"--adopt: USBKey {session.label} has no private key {label!r}")
    for key in keys:
        if not session.has_private_key(key.label):
            continue
        attributes = session.private_key_attributes(key.label)
        if any(attributes[name] != wanted for name, wanted in ADOPTABLE.items()):
            raise EnrolRefused(
                f"--adopt: key {key.label!r} ({key.purpose}) is on the token already and could "
                "have left it (it is not sensitive and never extractable); delete it with the "
                "vendor's tool, or adopt another"
            )


def _provision(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    session: TokenSession,
    root: TokenSession,
    label: str,
    keys: list[DemoKey],
    custodian_id: int | None,
    actor: Actor,
) -> None:
    token = DemoToken(label, tuple(keys))
    provision_keys(
        settings, sessions, tokens, session, root, token, keys, custodian_id, True, actor
    )


def _workstation(sessions: sessionmaker[Session], serial: str, name: str, actor: Actor) -> None:
    with sessions.begin() as db:
        workstation = db.scalar(select(Workstation).where(Workstation.name == name))
        assert workstation is not None  # checked by _check
        register_token_workstation(db, actor, serial, name, workstation.custodian_id)


def _recorded(
    sessions: sessionmaker[Session], request: Enrolment, serial: str, label: str, actor: Actor
) -> None:
    with sessions.begin() as db:
        record(
            db,
            actor,
            "signer.token.enrol",
            serial,
            details={
                "label": label,
                "role": request.role.value,
                "custodian": request.custodian or "",
                "adopted": ",".join(f"{p}={lbl}" for p, lbl in request.adopt),
            },
        )
