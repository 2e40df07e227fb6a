"""Signing through the signing gate (policy rules, usage count, audit event; simulated USBKey,
module lock, SHA-256, verify-after-sign) against a raw python-pkcs11 sign loop on the same token
key, in the same run. The gate is driven as batch signing drives it: the key's rules once per
chunk of 200 signatures in one transaction, each signature's event appended with the chunk's.

    python bench/token_sign.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
from bench_database import BenchDatabases, add_database_argument
from bench_signing import raw_sign_rate, signing_service

from signer.gate import SignRequest, Subject, signing_transaction
from signer.policy import Refusal, SignPurpose

# Every signature is verified before it leaves the gate (a token that signs wrongly must not be
# trusted), and a P-256 verify in process costs about what the token's sign does: the ceiling is
# near 0.5. Each signature's audit event (appended per chunk) costs about as much again, and the
# module lock and the USBKey simulation add to the sign (measured on a quiet 2-core machine:
# sign ≈ 110 µs through the simulation, verify ≈ 75 µs, event ≈ 90 µs, raw sign ≈ 66 µs).
TARGET = 0.3
CHUNK = 200


def rate(work: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return work / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    add_database_argument(parser)
    args = parser.parse_args()
    work = 2_000 if args.quick else 20_000

    with tempfile.TemporaryDirectory() as tmp, BenchDatabases(args.database_url) as databases:
        with signing_service(Path(tmp) / "home", databases.fresh()) as service:
            sessions, gate, actor, key_id = (
                service.sessions,
                service.gate,
                service.actor,
                service.key_id,
            )

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
        baseline = raw_sign_rate(service, work)

    print(f"signing gate {ours:,.0f} sig/s; raw PKCS#11 loop {baseline:,.0f} sig/s")
    name = databases.result_name("token_sign")
    print(f"RESULT {name} ratio={ours / baseline:.2f} target=>={TARGET}")


if __name__ == "__main__":
    main()
