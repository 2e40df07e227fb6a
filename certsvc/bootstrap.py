"""`certsvc init`: create or upgrade the database and provision what the service needs.

With the simulation, the demo: accounts, workstations, tokens and keys. Without it (production)
only the first admin and security officer, two persons; every other account is proposed by
the one and approved by the other, and the vendor's USBKeys are enrolled (`certsvc hsm enrol`).

Idempotent: each account, workstation, token and key is made only when missing, and a run cut
short is finished by the next one. Secrets generated here (the demo's passwords, API tokens,
PINs) are written only to the credentials file, readable by its owner alone, and never printed.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.keychain import KEY_ADDED, KEY_RETIRED
from audit.publish import InconsistentLog, latest_checkpoint
from audit.trail import record
from audit.verify import verify_log
from certsvc.accounts import Role, StaffAccount, password_hasher, validate_person
from certsvc.audit_keys import (
    CheckpointKeyHolder,
    announce,
    checkpoint_keys,
    note_keys,
    signing_keys,
)
from certsvc.audit_trail import INIT_PROVISIONER
from certsvc.db import make_engine, make_sessionmaker, upgrade_database
from certsvc.grants import (
    adopt_legacy_grants,
    bootstrap_account,
    grant_token,
    grant_workstation,
)
from certsvc.hsm import open_tokens
from certsvc.revocation_catchup import sign_catch_up_list
from certsvc.service_pins import service_pin, store_service_pin
from certsvc.settings import Settings
from certsvc.trust_publish import publish_trust_list
from certsvc.vault_setup import provision_vault
from certsvc.workstations import Workstation, generate_workstation_key
from common.errors import InvalidInput
from hsm_sim import init_token
from hsm_sim.softhsm import serial_of
from signer.actor import Actor
from signer.claims import SessionClaims, TokenClaimedElsewhere
from signer.custody import (
    active_key,
    certificate_of,
    register_key,
    register_token,
    register_token_workstation,
    retire_key,
    token_workstations,
)
from signer.gate import (
    GateTransaction,
    SigningGate,
    SignRequest,
    Subject,
    sign_as_service,
    sign_root_enrolment,
    signing_transaction,
)
from signer.models import ED25519, ES256, HsmToken, KeyPurpose, SigningKey
from signer.policy import SignPurpose
from signer.sessions import SigningSessions
from signer.tokens import Pkcs11Tokens, TokenPublicKey, TokenSession
from signer.x509 import issue_key_certificate, issue_root_certificate
from verify.anchors import pin_anchor
from verify.trust import latest_revocation_list

DEMO_CUSTODIAN = "custodian"
DEMO_WORKSTATION = "ws-custodian-01"
DEMO_REVEALER_WORKSTATION = "ws-revealer-01"
DEMO_WORKSTATIONS = {DEMO_WORKSTATION: DEMO_CUSTODIAN, DEMO_REVEALER_WORKSTATION: "vault_revealer"}
ROOT_USBKEY = "CERTSVC-ROOT"
ROOT_KEY = "root"
INIT_ACTOR = Actor(username="certsvc-init", account_id=0, role="admin")
INIT_SIGNER = INIT_PROVISIONER


class DemoKey(NamedTuple):
    label: str
    purpose: KeyPurpose
    algorithm: str = ES256


@dataclass(frozen=True)
class DemoToken:
    label: str
    keys: tuple[DemoKey, ...]
    # Unlocked by the service itself (its PIN goes to the service PIN file), not by a person.
    service: bool = False


AUDIT_USBKEY = "USBKEY-AUDIT"
DEMO_TOKENS = (
    DemoToken(ROOT_USBKEY, (DemoKey(ROOT_KEY, KeyPurpose.ROOT),)),
    DemoToken(
        "USBKEY-01",
        (
            DemoKey("certificate-1", KeyPurpose.CERTIFICATE),
            DemoKey("decision-1", KeyPurpose.DECISION),
            DemoKey("revocation-1", KeyPurpose.REVOCATION),
        ),
    ),
    # Checkpoints carry both: Ed25519 for public witnesses, ECDSA P-256 as before. An install
    # made before the Ed25519 key existed gets it at its next `certsvc init`.
    DemoToken(
        AUDIT_USBKEY,
        (
            DemoKey("audit-checkpoint-1", KeyPurpose.AUDIT_CHECKPOINT),
            DemoKey("audit-checkpoint-ed25519-1", KeyPurpose.AUDIT_CHECKPOINT, ED25519),
        ),
        service=True,
    ),
)


@dataclass(frozen=True)
class FirstHolder:
    """The first admin or security officer, named at `certsvc init` with the simulation off:
    their personnel number and the initial password they typed."""

    person: str
    password: str = field(repr=False)


FIRST_ROLES = (Role.ADMIN, Role.SECURITY_OFFICER)
FIRST_OPTIONS = {Role.ADMIN: "--admin-person", Role.SECURITY_OFFICER: "--security-officer-person"}


@dataclass
class InitReport:
    """What one run created; names only, no secret."""

    created: list[str] = field(default_factory=list)
    credentials_file: Path | None = None


class Credentials:
    """The demo credentials file: JSON, mode 0600, rewritten atomically after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"accounts": {}, "tokens": {}, "workstations": {}}
        if path.exists():
            self.data.update(json.loads(path.read_text()))

    def save(self) -> None:
        self.data["notice"] = "demo credentials written by `certsvc init`; keep this file private"
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump(self.data, out, ensure_ascii=False, indent=1)
        os.replace(tmp, self.path)


def initialise(
    settings: Settings,
    progress: Callable[[str], None] = lambda _: None,
    first: Mapping[Role, FirstHolder] | None = None,
) -> InitReport:
    """Upgrade the schema, then provision what is missing: with the simulation, the demo's
    accounts, workstations, tokens and keys; without it, only the first admin and security
    officer (`first`), who then grant every other account through propose and approve."""
    refuse_first_in_simulation(settings, bool(first))
    home = settings.resolved_home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    progress("database schema")
    upgrade_database(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        sessions = make_sessionmaker(engine)
        report = InitReport()
        with sessions.begin() as db:
            report.created += [
                f"grant event for {name}" for name in adopt_legacy_grants(db, INIT_SIGNER)
            ]
        if not settings.hsm_simulation:
            _first_accounts(settings, sessions, first or {}, report, progress)
        else:
            report.credentials_file = settings.credentials_file
            credentials = Credentials(settings.credentials_file)
            _accounts(settings, sessions, credentials, report, progress)
            _workstations(settings, sessions, credentials, report, progress)
            tokens = open_tokens(settings, sessions)
            try:
                _tokens(settings, sessions, tokens, credentials, report, progress)
                _trust_list(settings, sessions, tokens, credentials, report, progress)
                _token_workstations(sessions, report, progress)
                _revocation_list(settings, sessions, tokens, credentials, report, progress)
                report.created += provision_vault(settings, sessions, tokens, credentials, progress)
                # Last, so that the log init leaves is checkpointed whole.
                checkpoint(settings, sessions, tokens, progress)
            finally:
                tokens.reset()
        return report
    finally:
        engine.dispose()


def refuse_first_in_simulation(settings: Settings, named: bool) -> None:
    """The simulation makes its demo accounts: first holders named there are a mistake."""
    if named and settings.hsm_simulation:
        raise InvalidInput(
            f"{FIRST_OPTIONS[Role.ADMIN]}: the simulation makes the demo's accounts; the first "
            "admin and security officer are named with CERTSVC_HSM_SIMULATION=false"
        )


def _first_accounts(
    settings: Settings,
    sessions: sessionmaker[Session],
    first: Mapping[Role, FirstHolder],
    report: InitReport,
    progress: Callable[[str], None],
) -> None:
    """The first admin and security officer, when the body has none: one appoints the
    staff, the other approves those who reveal, decide, approve or sign; two persons, so
    that neither grants alone. Their passwords, having passed through init, only let each
    holder set their own; no API token is made."""
    with sessions.begin() as db:
        held = {
            account.role: account
            for account in db.scalars(
                select(StaffAccount).where(
                    StaffAccount.role.in_(FIRST_ROLES), StaffAccount.active.is_(True)
                )
            )
        }
        missing = [role for role in FIRST_ROLES if role not in held]
        for role in missing:
            if role not in first:
                raise InvalidInput(
                    f"{FIRST_OPTIONS[role]}: the body has no {role.value} yet; name the first "
                    "admin's and security officer's personnel numbers (two persons)"
                )
            try:
                validate_person(first[role].person)
            except InvalidInput as exc:
                raise InvalidInput(f"{FIRST_OPTIONS[role]}: {exc}") from None
        persons = {
            role: held[role].person if role in held else first[role].person for role in FIRST_ROLES
        }
        if persons[Role.ADMIN] == persons[Role.SECURITY_OFFICER]:
            raise InvalidInput(
                f"{FIRST_OPTIONS[Role.SECURITY_OFFICER]}: the first admin and security officer "
                "must be two different persons"
            )
        hasher = password_hasher(settings)
        for role in missing:
            progress(f"account {role.value}")
            bootstrap_account(
                db,
                INIT_SIGNER,
                role.value,
                role,
                first[role].password,
                f"first {role.value}",
                hasher=hasher,
                person=first[role].person,
                must_set_password=True,
            )
            report.created.append(f"account {role.value} (person {first[role].person})")


def _accounts(
    settings: Settings,
    sessions: sessionmaker[Session],
    credentials: Credentials,
    report: InitReport,
    progress: Callable[[str], None],
) -> None:
    hasher = password_hasher(settings)
    for role in Role:
        username = role.value
        with sessions.begin() as db:
            if db.scalar(select(StaffAccount.id).where(StaffAccount.username == username)):
                continue
            progress(f"account {username}")
            password = secrets.token_urlsafe(18)
            account = bootstrap_account(
                db, INIT_SIGNER, username, role, password, f"demo {role.value}", hasher=hasher
            )
            token, _ = grant_token(db, INIT_SIGNER, account, settings.api_token_days)
            credentials.data["accounts"][username] = {
                "role": role.value,
                "password": password,
                "api_token": token,
            }
            credentials.save()
        report.created.append(f"account {username}")


def _workstations(
    settings: Settings,
    sessions: sessionmaker[Session],
    credentials: Credentials,
    report: InitReport,
    progress: Callable[[str], None],
) -> None:
    for name, owner in DEMO_WORKSTATIONS.items():
        with sessions.begin() as db:
            if db.scalar(select(Workstation.id).where(Workstation.name == name)):
                continue
            progress(f"workstation {name}")
            key_dir = settings.resolved_home / "workstations"
            key_dir.mkdir(exist_ok=True, mode=0o700)
            key_path = key_dir / f"{name}.pem"
            public_key = generate_workstation_key(key_path)
            grant_workstation(db, INIT_SIGNER, name, owner, public_key)
            credentials.data["workstations"][name] = {
                "custodian": owner,
                "private_key": str(key_path),
            }
            credentials.save()
        report.created.append(f"workstation {name}")


def _tokens(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    credentials: Credentials,
    report: InitReport,
    progress: Callable[[str], None],
) -> None:
    with sessions() as db:
        custodian_id = db.scalar(
            select(StaffAccount.id).where(StaffAccount.username == DEMO_CUSTODIAN)
        )
    # Tokens to make, and registered tokens missing a key a newer version provisions.
    pending: list[tuple[DemoToken, list[DemoKey], bool]] = []
    for demo in DEMO_TOKENS:
        with sessions() as db:
            serial = db.scalar(select(HsmToken.serial).where(HsmToken.label == demo.label))
            have = set(
                db.scalars(select(SigningKey.label).where(SigningKey.token_serial == serial))
            )
        missing = [key for key in demo.keys if key.label not in have]
        if missing:
            pending.append((demo, missing, serial is None))
    # Initialise every missing token before logging in: SoftHSM shows a new token only after
    # the module is initialised again, which closes all sessions.
    on_hsm = {
        demo.label: _token_on_hsm(settings, tokens, credentials, demo.label)
        for demo, _, _ in pending
    }
    for demo, _, new in pending:
        if demo.service and new:
            store_service_pin(settings.service_pins_file, demo.label, on_hsm[demo.label][1])
    root_session: TokenSession | None = None
    try:
        for demo, missing, new in pending:
            progress(f"USBKey {demo.label}")
            serial, pin = on_hsm[demo.label]
            session = tokens.login(serial, pin, rw=True)
            is_root = demo.label == ROOT_USBKEY
            if is_root:
                root_session = session
            elif root_session is None:
                root_session = _login_root(tokens, credentials)
            provision_keys(
                settings, sessions, tokens, session, root_session, demo, missing, custodian_id, new
            )
            if not is_root:
                session.close()
            report.created += (
                [f"USBKey {demo.label}"] if new else [f"key {key.label}" for key in missing]
            )
    finally:
        if root_session is not None:
            root_session.close()


def pin_root(settings: Settings, sessions: sessionmaker[Session]) -> bool:
    """Pin the body's root certificate outside the database (`trust-anchors.json`) once it
    exists, so that no trust list a DBA writes can replace it; whether it was pinned now.
    `certsvc init` calls it for the simulated root, `certsvc hsm enrol` for a vendor's."""
    with sessions() as db:
        root_key = active_key(db, settings.body_code, KeyPurpose.ROOT)
        root_der = None if root_key is None else root_key.certificate_der
    return root_der is not None and pin_anchor(
        settings.trust_anchors_file, settings.body_code, root_der
    )


def _trust_list(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    credentials: Credentials,
    report: InitReport,
    progress: Callable[[str], None],
) -> None:
    """Publish the issuing keys and sign the trust list with the root key when they changed."""
    progress("trust list")
    if pin_root(settings, sessions):
        report.created.append("trust anchor")
    with _login_root(tokens, credentials) as root:
        if publish_trust_list(settings, sessions, root, INIT_SIGNER):
            report.created.append("trust list")


def checkpoint(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    progress: Callable[[str], None],
    actor: Actor = INIT_SIGNER,
) -> None:
    """Sign a checkpoint over what this run recorded (nothing happens when it recorded
    nothing): the first one proves the keys work, and covers the announcement of any new
    checkpoint key, vouched for by the keys before it. A log checkpointed before anchors
    existed is anchored outside the database here, once, after it verifies, on record."""
    holder = CheckpointKeyHolder(settings, tokens, sessions)
    try:
        with sessions() as db:
            first_anchor = not holder.anchor.exists() and latest_checkpoint(db) is not None
            if first_anchor:
                verdict = verify_log(db, settings.audit_origin, note_keys(db, settings))
                if not verdict.ok:
                    raise InconsistentLog(
                        f"the audit log is not intact, so it is not anchored: "
                        f"{verdict.problems[0]}; see `certsvc audit verify`"
                    )
        if first_anchor:
            progress("audit anchor")
            with sessions.begin() as db:
                record(db, actor, "audit.anchor.create", "audit-anchor")
        progress("audit checkpoint")
        holder.publish(sessions, actor, restart=first_anchor)
    finally:
        holder.close()


def _token_workstations(
    sessions: sessionmaker[Session], report: InitReport, progress: Callable[[str], None]
) -> None:
    """Register the demo workstation for every token its custodian holds (R6)."""
    with sessions.begin() as db:
        workstation = db.scalar(select(Workstation).where(Workstation.name == DEMO_WORKSTATION))
        if workstation is None:
            return
        held = db.scalars(select(HsmToken).where(HsmToken.custodian_id == workstation.custodian_id))
        for token in list(held):
            if DEMO_WORKSTATION in token_workstations(db, token.serial):
                continue
            progress(f"workstation {DEMO_WORKSTATION} for USBKey {token.label}")
            register_token_workstation(
                db, INIT_ACTOR, token.serial, DEMO_WORKSTATION, workstation.custodian_id
            )
            report.created.append(f"workstation {DEMO_WORKSTATION} for USBKey {token.label}")


def _revocation_list(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    credentials: Credentials,
    report: InitReport,
    progress: Callable[[str], None],
) -> None:
    """The first signed revocation list (empty on a fresh body), signed in the demo
    custodian's session on the revocation key, whose PIN the simulation holds: offline
    verifiers then know a certificate's status before the body's first revocation. Skipped
    while another process holds that USBKey's session."""
    with sessions() as db:
        if latest_revocation_list(db) is not None:
            return
        key = active_key(db, settings.body_code, KeyPurpose.REVOCATION)
        custodian = db.scalar(select(StaffAccount).where(StaffAccount.username == DEMO_CUSTODIAN))
        if key is None or custodian is None:
            return
        serial, label, custodian_id = key.token_serial, key.label, custodian.id
    pins = [t["user_pin"] for t in credentials.data["tokens"].values() if t["serial"] == serial]
    if not pins:
        return
    progress("revocation list")
    signing = SigningSessions(tokens, 600, 600, claims=SessionClaims(settings.signing_claims_dir))
    try:
        signing.open(serial, pins[0], DEMO_CUSTODIAN, DEMO_WORKSTATION, label)
        actor = Actor(DEMO_CUSTODIAN, custodian_id, Role.CUSTODIAN.value, DEMO_WORKSTATION)
        caught = sign_catch_up_list(
            sessions, SigningGate(signing), actor, settings.body_code, settings.pinned_anchors()
        )
    except TokenClaimedElsewhere:
        return
    finally:
        signing.close_all()
    if caught is not None:
        report.created.append(f"revocation list version {caught.version}")


def _token_on_hsm(
    settings: Settings, tokens: Pkcs11Tokens, credentials: Credentials, label: str
) -> tuple[str, str]:
    """The token's serial and user PIN, initialising it first when a previous run did not."""
    entry = credentials.data["tokens"].get(label)
    serial = serial_of(settings.hsm_dir, label)
    if entry is None or serial is None:
        entry = {"user_pin": _digits(8), "so_pin": _digits(12)}
        credentials.data["tokens"][label] = entry
        credentials.save()
        serial = init_token(settings.hsm_dir, label, entry["user_pin"], entry["so_pin"])
        tokens.reset()
    entry["serial"] = serial
    credentials.save()
    return serial, str(entry["user_pin"])


def _login_root(tokens: Pkcs11Tokens, credentials: Credentials) -> TokenSession:
    root = credentials.data["tokens"][ROOT_USBKEY]
    return tokens.login(root["serial"], root["user_pin"])


def provision_keys(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    session: TokenSession,
    root_session: TokenSession,
    demo: DemoToken,
    missing: list[DemoKey],
    custodian_id: int | None,
    new: bool,
    actor: Actor = INIT_SIGNER,
) -> None:
    """Generate each missing key on the token (or adopt the key pair already there under its
    label), then in one transaction certify each (the root key signing through the gate),
    store the certificates on the token and register the token (when `new`) and the keys with
    the signatures' events; a checkpoint key is announced in the log. `certsvc init` does it
    for simulated USBKeys, `certsvc hsm enrol` for a vendor's."""
    indexes = {key: demo.keys.index(key) + 1 for key in missing}  # their CKA_ID on the token
    publics = [(key, key_on_token(session, key, indexes[key])) for key in missing]
    status = tokens.status(session.serial)
    with signing_transaction(sessions) as unit:
        db = unit.db
        root_key = db.scalar(select(SigningKey).where(SigningKey.purpose == KeyPurpose.ROOT))
        if new:
            register_token(
                db,
                actor,
                session.serial,
                demo.label,
                status.model,
                status.manufacturer,
                custodian_id,
            )
        for key, public in publics:
            if key.purpose is KeyPurpose.ROOT:
                if not isinstance(public, ec.EllipticCurvePublicKey):
                    raise RuntimeError("the root key is ECDSA P-256")
                name = f"{session.serial}/{key.label}"
                certificate = issue_root_certificate(
                    public,
                    settings.body_name,
                    settings.body_code,
                    _root_enrols(unit, session, key.label, name, actor),
                )
                _register(unit, settings, session, key, certificate, None, actor)
                continue
            if root_key is None:
                raise RuntimeError("the root key must be provisioned before other keys")
            certify_key(
                unit,
                settings,
                session,
                demo.label,
                key,
                public,
                root_key,
                root_session,
                actor,
            )


def key_on_token(session: TokenSession, key: DemoKey, index: int) -> TokenPublicKey:
    """The key pair on the token: made now, or by an earlier run cut short."""
    if session.has_private_key(key.label):
        return session.public_key(key.label)
    if key.algorithm == ED25519:
        return session.generate_ed25519(key.label, bytes([index]))
    return session.generate_ec_p256(key.label, bytes([index]))


def certify_key(
    unit: GateTransaction,
    settings: Settings,
    session: TokenSession,
    token_label: str,
    key: DemoKey,
    public: TokenPublicKey,
    root_key: SigningKey,
    root_session: TokenSession,
    actor: Actor,
) -> SigningKey:
    """Have the root certify a key made on `session`'s token (through the gate), store the
    certificate beside the key and register it; a checkpoint key is announced in the log."""
    name = f"{session.serial}/{key.label}"
    certificate = issue_key_certificate(
        certificate_of(root_key),
        public,
        f"{token_label}/{key.label}",
        key.purpose.value,
        root_signs(unit, root_key, root_session, name, actor),
    )
    return _register(unit, settings, session, key, certificate, root_key.id, actor)


def _register(
    unit: GateTransaction,
    settings: Settings,
    session: TokenSession,
    key: DemoKey,
    certificate: x509.Certificate,
    issuer_key_id: int | None,
    actor: Actor,
) -> SigningKey:
    session.store_certificate(key.label, session.key_id(key.label), certificate)
    name = f"{session.serial}/{key.label}"
    record(unit.db, actor, "signer.key.generate", name, details={"purpose": key.purpose.value})
    registered = register_key(
        unit.db,
        session.serial,
        key.label,
        key.purpose,
        settings.body_code,
        certificate,
        issuer_key_id=issuer_key_id,
        # The root's self-signature, made through the gate before it was registered.
        usage_count=1 if key.purpose is KeyPurpose.ROOT else 0,
    )
    if key.purpose is KeyPurpose.AUDIT_CHECKPOINT:
        announce(unit.db, settings, actor, registered, KEY_ADDED)
    return registered


def _root_enrols(
    unit: GateTransaction, session: TokenSession, label: str, name: str, actor: Actor
) -> Callable[[bytes], bytes]:
    """The root key `name` signing its own certificate through the gate, once, at enrolment."""
    subject = Subject(f"root-certificate:{name}")

    def sign_der(tbs: bytes) -> bytes:
        return sign_root_enrolment(unit, actor, session, label, subject, tbs).der

    return sign_der


def root_signs(
    unit: GateTransaction,
    root_key: SigningKey,
    root_session: TokenSession,
    name: str,
    actor: Actor,
) -> Callable[[bytes], bytes]:
    """The root key signing the certificate of key `name` through the gate, as `actor` asks."""
    subject = Subject(f"key-certificate:{name}")

    def sign_der(tbs: bytes) -> bytes:
        request = SignRequest(SignPurpose.KEY_CERTIFICATE, subject, tbs)
        return sign_as_service(unit, actor, root_key.id, root_session, request)

    return sign_der


def rotate_checkpoint_key(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    root_pin: str,
    actor: Actor,
    algorithm: str,
) -> SigningKey:
    """Replace the active checkpoint key(s) of `algorithm` by a new one on the audit token.

    The new key is made, certified by the root (its PIN given) and announced in the log; a
    checkpoint signed by the keys trusted so far covers the announcement, so verifiers that
    follow the log trust the new key from the next checkpoint on. Then the old keys are retired
    and their retirement announced, and one more checkpoint, signed without them, covers that."""
    with sessions() as db:
        keys = checkpoint_keys(db, settings)
        old = [k for k in signing_keys(keys) if k.algorithm == algorithm]
        token = db.get_one(HsmToken, keys[-1].token_serial)
        on_token = (
            db.scalar(
                select(func.count())
                .select_from(SigningKey)
                .where(SigningKey.token_serial == token.serial)
            )
            or 0
        )
        same = sum(1 for k in keys if k.algorithm == algorithm)
        root_key = active_key(db, settings.body_code, KeyPurpose.ROOT)
        root_serial = None if root_key is None else root_key.token_serial
    if root_key is None or root_serial is None:
        raise InconsistentLog("the body has no active root key to certify a new checkpoint key")
    stem = "audit-checkpoint-ed25519" if algorithm == ED25519 else "audit-checkpoint"
    key = DemoKey(f"{stem}-{same + 1}", KeyPurpose.AUDIT_CHECKPOINT, algorithm)
    index = on_token + 1
    with (
        tokens.login(root_serial, root_pin) as root_session,
        tokens.login(
            token.serial, service_pin(settings.service_pins_file, token.label), rw=True
        ) as session,
    ):
        public = key_on_token(session, key, index)
        with signing_transaction(sessions) as unit:
            new = certify_key(
                unit,
                settings,
                session,
                token.label,
                key,
                public,
                root_key,
                root_session,
                actor,
            )
    holder = CheckpointKeyHolder(settings, tokens, sessions)
    try:
        holder.publish(sessions, actor)
        with sessions.begin() as db:
            for retiring in old:
                retired = retire_key(db, actor, retiring.id, f"replaced by {key.label}")
                announce(db, settings, actor, retired, KEY_RETIRED)
        holder.publish(sessions, actor)
    finally:
        holder.close()
    return new


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))
