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
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditEventRow
from certsvc.settings import Settings
from hsm_fixtures import module_path
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


def test_enrol_vendor_tokens_then_sign_and_verify(
    vendor: Vendor, settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    first = vendor.run("init")
    assert first.returncode == 0, first.stderr
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
    vendor: Vendor, sessions: sessionmaker[Session]
) -> None:
    assert vendor.run("init").returncode == 0
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
