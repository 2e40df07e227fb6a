"""Signing through the signing gate (policy rules, usage count, audit event; simulated USBKey,
module lock, SHA-256, verify-after-sign) against a raw python-pkcs11 sign loop on the same token
key, in the same run. The gate is driven as batch signing drives it: the key's rules once per
chunk of 200 signatures in one transaction, each signature's event appended with the chunk's.

    python bench/token_sign.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
import pkcs11
from pkcs11 import Mechanism, ObjectClass
from sqlalchemy import select

from certsvc.accounts import StaffAccount
from certsvc.bootstrap import initialise
from certsvc.db import make_engine, make_sessionmaker
from certsvc.hsm import open_tokens
from certsvc.settings import Settings
from signer.actor import Actor
from signer.gate import SigningGate, SignRequest, Subject, signing_transaction
from signer.models import SigningKey
from signer.policy import Refusal, SignPurpose
from signer.sessions import SigningSessions

# Every signature is verified before it leaves the gate (a token that signs wrongly must not be
# trusted), and a P-256 verify in process costs about what the token's sign does: the ceiling is
# near 0.5. Each signature's audit event (appended per chunk) costs about as much again, and the
# module lock and the USBKey simulation add to the sign (measured on a quiet 2-core machine:
# sign ≈ 110 µs through the simulation, verify ≈ 75 µs, event ≈ 90 µs, raw sign ≈ 66 µs).
TARGET = 0.3
KEY = "certificate-1"
WORKSTATION = "ws-custodian-01"
CHUNK = 200


def rate(work: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return work / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    args = parser.parse_args()
    work = 2_000 if args.quick else 20_000

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
        gate = SigningGate(signing)
        with sessions() as db:
            account = db.scalars(
                select(StaffAccount).where(StaffAccount.username == "custodian")
            ).one()
            key_id = db.scalars(select(SigningKey.id).where(SigningKey.label == KEY)).one()
        actor = Actor("custodian", account.id, "custodian", WORKSTATION)
        signing.open(usbkey["serial"], usbkey["user_pin"], "custodian", WORKSTATION, KEY)

        def through_gate() -> None:
            for start in range(0, work, CHUNK):
                with signing_transaction(sessions) as unit:
                    chunk = gate.chunk(unit, actor, key_id, Subject("bench"))
                    if isinstance(chunk, Refusal):
                        raise SystemExit(f"the gate refused the bench: {chunk.message}")
                    for n in range(start, min(start + CHUNK, work)):
                        subject = Subject(f"certificate-qr:{n}")
                        data = n.to_bytes(8, "big")
                        chunk.sign(SignRequest(SignPurpose.CERTIFICATE_QR, subject, data))
                    chunk.close()

        ours = rate(work, through_gate)
        signing.close_all()
        tokens.reset()

        raw_lib = pkcs11.lib(settings.pkcs11_module)
        token = raw_lib.get_token(token_serial=usbkey["serial"].encode())
        with token.open(user_pin=usbkey["user_pin"]) as raw:
            key = raw.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY)
            digest = hashlib.sha256(b"x").digest()

            def loop() -> None:
                for _ in range(work):
                    key.sign(digest, mechanism=Mechanism.ECDSA)

            baseline = rate(work, loop)
        engine.dispose()

    print(f"signing gate {ours:,.0f} sig/s; raw PKCS#11 loop {baseline:,.0f} sig/s")
    print(f"RESULT token_sign ratio={ours / baseline:.2f} target=>={TARGET}")


if __name__ == "__main__":
    main()
