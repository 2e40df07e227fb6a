"""Enrolment with the simulation off, as a certifying body does with a vendor's USBKeys: tokens
initialised only with the vendor's tool (`softhsm2-util` standing in for it, SoftHSM as the
"vendor module"), then `certsvc hsm enrol` for each, `certsvc init`, a signing round
(`certsvc demo`), and the checks an operator runs after it."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from certsvc.accounts import ApiToken, StaffAccount
from certsvc.grants import ACCOUNT_BOOTSTRAP
from certsvc.settings import Settings
from certsvc.workstations import Workstation
from hsm_fixtures import module_path
from server_support import serving
from signer.models import HsmToken, KeyPurpose, SigningKey

CERTSVC = str(Path(sys.executable).parent / "certsvc")
LABELS = {
    "root": "BODY-ROOT-CA",
    "signing": "ZHANG-WEI-01",
    "audit": "AUDIT-01",
    "vault": "VAULT-KEK",
}


@dataclass
class Vendor:
    env: dict[str, str]
    pins: dict[str, str]
    pin_files: dict[str, Path]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CERTSVC, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=self.env,
            input=stdin,
        )

    def leaked(self, done: subprocess.CompletedProcess[str]) -> list[str]:
        return [role for role, pin in self.pins.items() if pin in done.stdout + done.stderr]


@pytest.fixture
def vendor(settings: Settings, tmp_path: Path) -> Iterator[Vendor]:
    """Four tokens initialised by the 'vendor tool' in a SoftHSM of their own; the service set
    to use that module directly, without the simulation."""
    token_dir = tmp_path / "vendor-tokens"
    token_dir.mkdir()
    config = tmp_path / "vendor-softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {
        **os.environ,
        "SOFTHSM2_CONF": str(config),
        "CERTSVC_HSM_SIMULATION": "false",
        "CERTSVC_PKCS11_MODULE": module_path(),
    }
    pins, files = {}, {}
    for role, label in LABELS.items():
        pins[role] = secrets.token_hex(4)
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pins[role],
             "--so-pin", secrets.token_hex(6)],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        files[role] = tmp_path / f"{role}.pin"
        files[role].write_text(pins[role] + "\n")
        files[role].chmod(0o600)
    yield Vendor(env, pins, files)


FIRST = {"admin": "P-0001", "security_officer": "P-0002"}
# The demo round's staff, each proposed by the admin and approved by the security officer.
STAFF = {
    "custodian": ("custodian", "P-0101"),
    "registrar": ("registrar", "P-0102"),
    "officer": ("officer", "P-0103"),
    "officer-2": ("officer", "P-0104"),
}


def _init_first(vendor: Vendor, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`certsvc init` naming the first admin and security officer, each typing a password."""
    return vendor.run(
        "init",
        "--admin-person", FIRST["admin"],
        "--security-officer-person", FIRST["security_officer"],
        stdin=f"{passwords['admin']}\n{passwords['security_officer']}\n",
    )  # fmt: skip


class StaffApi:
    """The staff API of a real `certsvc serve` with the simulation off."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)

    def set_own(self, username: str, initial: str) -> str:
        chosen = secrets.token_urlsafe(16)
        done = self.http.post(
            "/api/v1/auth/password",
            json={"username": username, "password": initial, "new_password": chosen},
        )
        assert done.status_code == 204, done.text
        return chosen

    def login(self, username: str, password: str) -> httpx.Response:
        return self.http.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )

    def token(self, username: str, password: str) -> dict[str, str]:
        answer = self.login(username, password)
        assert answer.status_code == 201, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}


@contextmanager
def staff_api(vendor: Vendor) -> Iterator[StaffApi]:
    env = {**vendor.env, "CERTSVC_LOGIN_ATTEMPTS_PER_MINUTE": "1000"}
    with serving(env=env) as server:
        api = StaffApi(server.base)
        try:
            yield api
        finally:
            api.http.close()


def _grant_staff(vendor: Vendor, passwords: dict[str, str], tmp_path: Path) -> None:
    """The first admin and security officer set their passwords; the admin proposes the
    round's staff, the security officer approves them; the custodian's workstation is
    registered from the shell."""
    with staff_api(vendor) as api:
        admin = api.token("admin", api.set_own("admin", passwords["admin"]))
        security = api.token(
            "security_officer", api.set_own("security_officer", passwords["security_officer"])
        )
        for username, (role, person) in STAFF.items():
            proposed = api.http.post(
                "/api/v1/admin/accounts",
                headers=admin,
                json={"username": username, "display_name": username, "role": role,
                      "person": person},
            )  # fmt: skip
            assert proposed.status_code == 201, proposed.text
            if role == "registrar":  # neither reveals, decides, approves nor signs
                continue
            assert proposed.json()["awaiting_approval"] is True
            approved = api.http.post(
                f"/api/v1/security/accounts/{username}/approve", headers=security
            )
            assert approved.status_code == 200, approved.text
    added = vendor.run(
        "workstation", "add", "ws-custodian-01", "--custodian", "custodian",
        "--key-out", str(tmp_path / "ws-custodian-01.pem"),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def test_production_init_grants_nobody_a_power_alone(
    vendor: Vendor, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    bare = vendor.run("init")
    assert bare.returncode != 0 and "--admin-person" in bare.stderr
    same = vendor.run(
        "init", "--admin-person", "P-0001", "--security-officer-person", "P-0001",
        stdin=f"{secrets.token_urlsafe(16)}\n{secrets.token_urlsafe(16)}\n",
    )  # fmt: skip
    assert same.returncode != 0 and "two different persons" in same.stderr
    simulated = subprocess.run(
        [CERTSVC, "init", "--admin-person", "P-0001", "--security-officer-person", "P-0002"],
        env={**vendor.env, "CERTSVC_HSM_SIMULATION": "true"},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert simulated.returncode != 0 and "simulation makes the demo's accounts" in simulated.stderr
    with sessions() as db:
        assert db.scalars(select(StaffAccount)).all() == []

    passwords = {role: secrets.token_urlsafe(16) for role in FIRST}
    first = _init_first(vendor, passwords)
    assert first.returncode == 0, first.stderr
    assert not any(password in first.stdout + first.stderr for password in passwords.values())
    with sessions() as db:
        made = {
            a.username: (a.role.value, a.person, a.must_set_password)
            for a in db.scalars(select(StaffAccount))
        }
        # Whoever ran init holds no token, workstation or usable password.
        assert db.scalars(select(ApiToken)).all() == []
        assert db.scalars(select(Workstation)).all() == []
    assert made == {
        "admin": ("admin", FIRST["admin"], True),
        "security_officer": ("security_officer", FIRST["security_officer"], True),
    }
    assert not settings.credentials_file.exists()
    again = vendor.run("init")
    assert again.returncode == 0 and "created" not in again.stderr

    with staff_api(vendor) as api:
        assert api.login("admin", passwords["admin"]).status_code == 403
        admin = api.token("admin", api.set_own("admin", passwords["admin"]))
        proposed = api.http.post(
            "/api/v1/admin/accounts",
            headers=admin,
            json={"username": "zhangwei", "display_name": "张伟", "role": "custodian",
                  "person": "P-0101"},
        )  # fmt: skip
        assert proposed.status_code == 201, proposed.text
        chosen = api.set_own("zhangwei", proposed.json()["initial_password"])
        # The admin alone made a custodian who can do nothing yet.
        assert api.login("zhangwei", chosen).status_code == 403
        security = api.token(
            "security_officer", api.set_own("security_officer", passwords["security_officer"])
        )
        approved = api.http.post("/api/v1/security/accounts/zhangwei/approve", headers=security)
        assert approved.status_code == 200, approved.text
        assert api.login("zhangwei", chosen).status_code == 201
    with sessions() as db:
        bootstrapped = db.scalars(
            select(AuditEventRow.object).where(AuditEventRow.action == ACCOUNT_BOOTSTRAP)
        ).all()
    assert sorted(bootstrapped) == ["admin", "security_officer"]


def test_enrol_vendor_tokens_then_sign_and_verify(
    vendor: Vendor, settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    passwords = {role: secrets.token_urlsafe(16) for role in FIRST}
    first = _init_first(vendor, passwords)
    assert first.returncode == 0, first.stderr
    _grant_staff(vendor, passwords, tmp_path)
    listing = vendor.run("hsm", "enrol")
    assert listing.returncode == 0, listing.stderr
    for label in LABELS.values():
        assert label in listing.stdout
    assert "free slots (no token, or not initialised): 1" in listing.stdout

    # A signing token before the root: refused, nothing registered or made.
    early = vendor.run(
        "hsm", "enrol", "--token", LABELS["signing"], "--role", "signing",
        "--custodian", "custodian", "--workstation", "ws-custodian-01",
        stdin=f"{vendor.pins['signing']}\n{vendor.pins['root']}\n",
    )  # fmt: skip
    assert early.returncode != 0 and "enrol the root token first" in early.stderr
    # A wrong PIN: refused, nothing registered.
    wrong = vendor.run(
        "hsm", "enrol", "--token", LABELS["root"], "--role", "root", "--custodian", "custodian",
        "--workstation", "ws-custodian-01", stdin="00000000\n",
    )  # fmt: skip
    assert wrong.returncode != 0 and "PIN" in wrong.stderr
    with sessions() as db:
        assert db.scalars(select(HsmToken)).all() == []

    root = vendor.run(
        "hsm", "enrol", "--token", LABELS["root"], "--role", "root", "--custodian", "custodian",
        "--workstation", "ws-custodian-01", "--pin-file", str(vendor.pin_files["root"]),
    )  # fmt: skip
    assert root.returncode == 0, root.stderr
    signing = vendor.run(
        "hsm", "enrol", "--token", LABELS["signing"], "--role", "signing",
        "--custodian", "custodian", "--workstation", "ws-custodian-01",
        stdin=f"{vendor.pins['signing']}\n{vendor.pins['root']}\n",
    )  # fmt: skip
    assert signing.returncode == 0, signing.stderr
    audit = vendor.run(
        "hsm", "enrol", "--token", LABELS["audit"], "--role", "audit",
        "--pin-file", str(vendor.pin_files["audit"]),
        "--root-pin-file", str(vendor.pin_files["root"]),
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    vault = vendor.run(
        "hsm", "enrol", "--token", LABELS["vault"], "--role", "vault",
        "--pin-file", str(vendor.pin_files["vault"]),
    )  # fmt: skip
    assert vault.returncode == 0, vault.stderr
    again = vendor.run(
        "hsm", "enrol", "--token", LABELS["vault"], "--role", "vault",
        "--pin-file", str(vendor.pin_files["vault"]),
    )  # fmt: skip
    assert again.returncode != 0 and "already enrolled" in again.stderr

    with sessions() as db:
        tokens = {t.label: t for t in db.scalars(select(HsmToken))}
        keys = list(db.scalars(select(SigningKey)))
        enrolled = db.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "signer.token.enrol")
        ).all()
    assert set(tokens) == set(LABELS.values())
    assert tokens[LABELS["signing"]].custodian_id is not None
    assert tokens[LABELS["audit"]].custodian_id is None
    assert {k.purpose for k in keys} == set(KeyPurpose)
    root_key = next(k for k in keys if k.purpose is KeyPurpose.ROOT)
    root_cert = x509.load_der_x509_certificate(root_key.certificate_der)
    for key in keys:
        x509.load_der_x509_certificate(key.certificate_der).verify_directly_issued_by(root_cert)
    assert len(enrolled) == len(LABELS)
    production = settings.model_copy(update={"hsm_simulation": False})
    service_pins = json.loads(production.service_pins_file.read_text())  # beside the home
    assert set(service_pins) == {LABELS["audit"], LABELS["vault"]}

    assert vendor.run("init").returncode == 0
    out = tmp_path / "round"
    round_ = vendor.run(
        "demo", "--out", str(out), "--usbkey", LABELS["signing"], stdin=vendor.pins["signing"]
    )
    assert round_.returncode == 0, round_.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(m["status"] for m in manifest) == ["revoked", "valid", "valid", "valid"]
    valid = next(m for m in manifest if m["status"] == "valid")
    checked = vendor.run("verify-qr", str(out / valid["qr_png"]))
    assert checked.returncode == 0, checked.stderr
    assert "VALID" in checked.stdout
    verified = vendor.run("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    morning = vendor.run("status", "--json")
    assert morning.returncode == 0, morning.stdout
    present = {t["label"]: t["present"] for t in json.loads(morning.stdout)["tokens"]}
    assert present == dict.fromkeys(LABELS.values(), True)

    for done in (early, wrong, root, signing, audit, vault, round_, checked):
        assert vendor.leaked(done) == []


def _keypair(vendor: Vendor, label: str, *flags: str) -> None:
    """A key pair made with the vendor's tool (pkcs11-tool), as a body may have done before."""
    subprocess.run(
        ["pkcs11-tool", "--module", module_path(), "--token-label", LABELS["root"], "--login",
         "--pin", vendor.pins["root"], "--keypairgen", "--key-type", "EC:prime256v1",
         "--label", label, "--id", "42", *flags],
        env=vendor.env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_key_made_with_the_vendor_tool_is_adopted_only_if_it_never_left(
    vendor: Vendor, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    passwords = {role: secrets.token_urlsafe(16) for role in FIRST}
    assert _init_first(vendor, passwords).returncode == 0
    _grant_staff(vendor, passwords, tmp_path)
    _keypair(vendor, "root", "--extractable")  # under the label enrolment would give its key
    _keypair(vendor, "kept-root", "--sensitive")
    enrol = (
        "hsm", "enrol", "--token", LABELS["root"], "--role", "root", "--custodian", "custodian",
        "--pin-file", str(vendor.pin_files["root"]),
    )  # fmt: skip
    for adopt in ((), ("--adopt", "root=root")):
        refused = vendor.run(*enrol, *adopt)
        assert refused.returncode != 0 and "could have left it" in refused.stderr
    missing = vendor.run(*enrol, "--adopt", "root=no-such-key")
    assert missing.returncode != 0 and "no private key 'no-such-key'" in missing.stderr
    with sessions() as db:
        assert db.scalars(select(HsmToken)).all() == []

    adopted = vendor.run(*enrol, "--adopt", "root=kept-root")
    assert adopted.returncode == 0, adopted.stderr
    with sessions() as db:
        [root] = db.scalars(select(SigningKey)).all()
    assert (root.label, root.purpose) == ("kept-root", KeyPurpose.ROOT)
    certificate = x509.load_der_x509_certificate(root.certificate_der)
    certificate.verify_directly_issued_by(certificate)  # self-signed by the adopted key
    # Its certificate went onto the token beside it, under the key's own CKA_ID.
    listing = subprocess.run(
        ["pkcs11-tool", "--module", module_path(), "--token-label", LABELS["root"],
         "--list-objects", "--type", "cert"],
        env=vendor.env, check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert re.search(r"label:\s+kept-root\s.*?ID:\s+42", listing, re.DOTALL), listing
