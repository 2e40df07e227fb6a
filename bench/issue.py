"""Issuing certificates end to end through the signer (content from the records, policy through
the signing gate, sign on the USBKey, verify, COSE, store, audit) against a raw python-pkcs11
sign loop on the same token key, in the same run; then the time per certificate with a real
USBKey's latency.

    python bench/issue.py [--quick] [--count N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
import pkcs11
from pkcs11 import Mechanism, ObjectClass
from sqlalchemy import select
from sqlalchemy.orm import Session

from certsvc.accounts import StaffAccount
from certsvc.bootstrap import initialise
from certsvc.db import make_engine, make_sessionmaker
from certsvc.hsm import open_tokens
from certsvc.settings import Settings
from hsm_sim import UsbKeyBay
from signer.actor import Actor
from signer.documents import DocumentRef, DocumentSigner
from signer.gate import SigningGate
from signer.models import SigningKey
from signer.policy import CaseGates
from signer.sessions import SigningSessions

TARGET = 0.5
KEY = "certificate-1"
WORKSTATION = "ws-custodian-01"
USB_LATENCY_MS = 80
LATENCY_SAMPLE = 10
BATCH = 5_000


class ClearCases:
    """Records of a ready batch, as `certify` answers them: every case cleared (R2) and in time
    (R3), each certificate's content from its number."""

    def gates_for(self, db: Session, kind: str, document_id: str) -> CaseGates:
        return CaseGates(criminal_record_clear=True)

    def content_for(self, db: Session, kind: str, document_id: str) -> Mapping[str, Any]:
        return {"number": document_id, "type": "高级中学", "subject": "数学", "body": "410000"}


def certificates(count: int, prefix: str) -> list[DocumentRef]:
    return [DocumentRef("certificate", f"{prefix}{n:06d}") for n in range(count)]


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    parser.add_argument("--count", type=int, help="certificates to issue (default 10,000)")
    args = parser.parse_args()
    count = args.count or (2_000 if args.quick else 10_000)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            home=Path(tmp) / "home",
            database_url=None,
            password_hash_profile="test",  # noqa: S106 - the cost profile's name, not a secret
        )
        initialise(settings)
        usbkey = json.loads(settings.credentials_file.read_text())["tokens"]["USBKEY-01"]
        engine = make_engine(settings.resolved_database_url)
        sessions = make_sessionmaker(engine)
        tokens = open_tokens(settings, sessions)
        signing = SigningSessions(tokens, 3600, 600)
        signer = DocumentSigner(sessions, SigningGate(signing), ClearCases())
        with sessions() as db:
            account = db.scalars(
                select(StaffAccount).where(StaffAccount.username == "custodian")
            ).one()
            key_id = db.scalars(select(SigningKey.id).where(SigningKey.label == KEY)).one()
        actor = Actor("custodian", account.id, "custodian", WORKSTATION)
        signing.open(usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, KEY)

        signer.sign_batch(actor, key_id, certificates(200, "W"))  # warm-up
        batch = certificates(count, "C")
        ours_seconds = timed(lambda: signer.sign_batch(actor, key_id, batch))

        bay = UsbKeyBay(settings.hsm_dir)
        bay.set_latency(usbkey["serial"], USB_LATENCY_MS)
        slow_seconds = timed(
            lambda: signer.sign_batch(actor, key_id, certificates(LATENCY_SAMPLE, "L"))
        )
        bay.set_latency(usbkey["serial"], None)
        signing.close_all()
        tokens.reset()

        raw_lib = pkcs11.lib(settings.pkcs11_module)
        token = raw_lib.get_token(token_serial=usbkey["serial"].encode())
        with token.open(user_pin=usbkey["user_pin"]) as raw:
            key = raw.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY)
            digest = hashlib.sha256(b"x").digest()

            def loop() -> None:
                for _ in range(count):
                    key.sign(digest, mechanism=Mechanism.ECDSA)

            raw_seconds = timed(loop)
        engine.dispose()

    ours = count / ours_seconds
    baseline = count / raw_seconds
    per_certificate = slow_seconds / LATENCY_SAMPLE
    print(
        f"issued {count:,} certificates: {ours:,.0f}/s through the signer "
        f"(policy, sign, verify, COSE, store, audit)"
    )
    print(f"raw PKCS#11 sign loop, same key: {baseline:,.0f} sig/s")
    print(
        f"with {USB_LATENCY_MS} ms per USBKey operation: {per_certificate * 1000:,.0f} ms per "
        f"certificate, {per_certificate * BATCH / 60:,.1f} min per batch of {BATCH:,}"
    )
    print(f"RESULT issue ratio={ours / baseline:.2f} target=>={TARGET}")


if __name__ == "__main__":
    main()
