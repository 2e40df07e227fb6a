"""`certsvc init`: create or upgrade the database and provision what the demo needs.

Idempotent: each account, workstation, token and key is made only when missing, and a run cut
short is finished by the next one. Secrets generated here (passwords, API tokens, PINs) are
written only to the credentials file, readable by its owner alone, and never printed.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.publish import latest_checkpoint, publish_checkpoint
from audit.trail import record
from certsvc.accounts import (
    Role,
    StaffAccount,
    create_account,
    issue_api_token,
    password_hasher,
)
from certsvc.audit_keys import CheckpointKeyHolder
from certsvc.audit_trail import SYSTEM_ROLE
from certsvc.db import make_engine, make_sessionmaker, upgrade_database
from certsvc.hsm import open_tokens
from certsvc.service_pins import store_service_pin
from certsvc.settings import Settings
from certsvc.trust_publish import publish_trust_list
from certsvc.vault_setup import provision_vault
from certsvc.workstations import (
    Workstation,
    generate_workstation_key,
    register_workstation,
)
from hsm_sim import init_token
from hsm_sim.softhsm import serial_of
from signer.actor import Actor
from signer.custody import (
    certificate_of,
    register_key,
    register_token,
    register_token_workstation,
    token_workstations,
)
from signer.gate import (
    GateTransaction,
    SignRequest,
    Subject,
    sign_as_service,
    sign_root_enrolment,
    signing_transaction,
)
from signer.models import HsmToken, KeyPurpose, SigningKey
from signer.policy import SignPurpose
from signer.tokens import Pkcs11Tokens, TokenSession
from signer.x509 import issue_key_certificate, issue_root_certificate

DEMO_CUSTODIAN = "custodian"
DEMO_WORKSTATION = "ws-custodian-01"
DEMO_REVEALER_WORKSTATION = "ws-revealer-01"
DEMO_WORKSTATIONS = {DEMO_WORKSTATION: DEMO_CUSTODIAN, DEMO_REVEALER_WORKSTATION: "vault_revealer"}
ROOT_USBKEY = "CERTSVC-ROOT"
ROOT_KEY = "root"
INIT_ACTOR = Actor(username="certsvc-init", account_id=0, role="admin")
# Who asks the signing gate for what provisioning signs: key certificates, trust lists, the
# first checkpoint.
INIT_SIGNER = Actor(username="certsvc-init", account_id=0, role=SYSTEM_ROLE)


@dataclass(frozen=True)
class DemoToken:
    label: str
    keys: tuple[tuple[str, KeyPurpose], ...]
    # Unlocked by the service itself (its PIN goes to the service PIN file), not by a person.
    service: bool = False


DEMO_TOKENS = (
    DemoToken(ROOT_USBKEY, ((ROOT_KEY, KeyPurpose.ROOT),)),
    DemoToken(
        "USBKEY-01",
        (
            ("certificate-1", KeyPurpose.CERTIFICATE),
            ("decision-1", KeyPurpose.DECISION),
            ("revocation-1", KeyPurpose.REVOCATION),
        ),
    ),
    DemoToken("USBKEY-AUDIT", (("audit-checkpoint-1", KeyPurpose.AUDIT_CHECKPOINT),), service=True),
)


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


def initialise(settings: Settings, progress: Callable[[str], None] = lambda _: None) -> InitReport:
    """Upgrade the schema, then provision accounts, workstation, tokens and keys if missing."""
    home = settings.resolved_home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    progress("database schema")
    upgrade_database(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        sessions = make_sessionmaker(engine)
        report = InitReport(credentials_file=settings.credentials_file)
        credentials = Credentials(settings.credentials_file)
        _accounts(settings, sessions, credentials, report, progress)
        _workstations(settings, sessions, credentials, report, progress)
        if settings.hsm_simulation:
            tokens = open_tokens(settings, sessions)
            try:
                _tokens(settings, sessions, tokens, credentials, report, progress)
                _trust_list(settings, sessions, tokens, credentials, report, progress)
                _token_workstations(sessions, report, progress)
                _first_checkpoint(settings, sessions, tokens, progress)
                report.created += provision_vault(settings, sessions, tokens, credentials, progress)
            finally:
                tokens.reset()
        return report
    finally:
        engine.dispose()


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
            account = create_account(
                db, username, role, password, f"demo {role.value}", hasher=hasher
            )
            token, _ = issue_api_token(db, account, settings.api_token_days)
            record(
                db, INIT_SIGNER, "service.account.create", username, details={"role": role.value}
            )
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
            register_workstation(db, name, owner, public_key)
            record(
                db, INIT_SIGNER, "service.workstation.register", name, details={"custodian": owner}
            )
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
    pending = []
    for demo in DEMO_TOKENS:
        with sessions() as db:
            if db.scalar(select(HsmToken.serial).where(HsmToken.label == demo.label)) is None:
                pending.append(demo)
    # Initialise every missing token before logging in: SoftHSM shows a new token only after
    # the module is initialised again, which closes all sessions.
    on_hsm = {
        demo.label: _token_on_hsm(settings, tokens, credentials, demo.label) for demo in pending
    }
    for demo in pending:
        if demo.service:
            store_service_pin(settings.service_pins_file, demo.label, on_hsm[demo.label][1])
    root_session: TokenSession | None = None
    try:
        for demo in pending:
            progress(f"USBKey {demo.label}")
            serial, pin = on_hsm[demo.label]
            session = tokens.login(serial, pin, rw=True)
            is_root = demo.label == ROOT_USBKEY
            if is_root:
                root_session = session
            elif root_session is None:
                root_session = _login_root(tokens, credentials)
            _provision_keys(
                settings, sessions, tokens, session, root_session, demo, serial, custodian_id
            )
            if not is_root:
                session.close()
            report.created.append(f"USBKey {demo.label}")
    finally:
        if root_session is not None:
            root_session.close()


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
    with _login_root(tokens, credentials) as root:
        if publish_trust_list(settings, sessions, root, INIT_SIGNER):
            report.created.append("trust list")


def _first_checkpoint(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    progress: Callable[[str], None],
) -> None:
    """Sign the log's first checkpoint (a no-op once one exists): proves the key works."""
    with sessions() as db:
        if latest_checkpoint(db) is not None:
            return
    progress("audit checkpoint")
    holder = CheckpointKeyHolder(settings, tokens, sessions)
    try:
        holder.unlock()
        with signing_transaction(sessions) as unit:
            publish_checkpoint(unit.db, holder.signer(unit, INIT_SIGNER))
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


def _provision_keys(
    settings: Settings,
    sessions: sessionmaker[Session],
    tokens: Pkcs11Tokens,
    session: TokenSession,
    root_session: TokenSession,
    demo: DemoToken,
    serial: str,
    custodian_id: int | None,
) -> None:
    """Generate each key on the token (unless a cut-short run did), then in one transaction
    certify each (the root key signing through the gate), store the certificates on the token
    and register token and keys with the signatures' events."""
    publics = [
        (
            index,
            label,
            purpose,
            session.public_key(label)
            if session.has_private_key(label)
            else session.generate_ec_p256(label, bytes([index])),
        )
        for index, (label, purpose) in enumerate(demo.keys, start=1)
    ]
    status = tokens.status(serial)
    with signing_transaction(sessions) as unit:
        db = unit.db
        root_key = db.scalar(select(SigningKey).where(SigningKey.purpose == KeyPurpose.ROOT))
        register_token(db, serial, demo.label, status.model, status.manufacturer, custodian_id)
        record(db, INIT_SIGNER, "signer.token.register", serial, details={"label": demo.label})
        for index, label, purpose, public in publics:
            name = f"{serial}/{label}"
            if purpose is KeyPurpose.ROOT:
                certificate = issue_root_certificate(
                    public,
                    settings.body_name,
                    settings.body_code,
                    _root_enrols(unit, session, label, name),
                )
            else:
                if root_key is None:
                    raise RuntimeError("the root key must be provisioned before other keys")
                certificate = issue_key_certificate(
                    certificate_of(root_key),
                    public,
                    f"{demo.label}/{label}",
                    purpose.value,
                    _root_signs(unit, root_key, root_session, name),
                )
            session.store_certificate(label, bytes([index]), certificate)
            record(db, INIT_SIGNER, "signer.key.generate", name, details={"purpose": purpose.value})
            register_key(
                db,
                serial,
                label,
                purpose,
                settings.body_code,
                certificate,
                issuer_key_id=None if root_key is None else root_key.id,
                # The root's self-signature, made through the gate before it was registered.
                usage_count=1 if purpose is KeyPurpose.ROOT else 0,
            )


def _root_enrols(
    unit: GateTransaction, session: TokenSession, label: str, name: str
) -> Callable[[bytes], bytes]:
    """The root key `name` signing its own certificate through the gate, once, at enrolment."""
    subject = Subject(f"root-certificate:{name}")

    def sign_der(tbs: bytes) -> bytes:
        return sign_root_enrolment(unit, INIT_SIGNER, session, label, subject, tbs).der

    return sign_der


def _root_signs(
    unit: GateTransaction, root_key: SigningKey, root_session: TokenSession, name: str
) -> Callable[[bytes], bytes]:
    """The root key signing the certificate of key `name` through the gate."""
    subject = Subject(f"key-certificate:{name}")

    def sign_der(tbs: bytes) -> bytes:
        request = SignRequest(SignPurpose.KEY_CERTIFICATE, subject, tbs)
        return sign_as_service(unit, INIT_SIGNER, root_key.id, root_session, request).der

    return sign_der


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))
