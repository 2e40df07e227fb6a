"""Issuing certificates end to end through the signer (content from the records, policy through
the signing gate, sign on the USBKey, verify, COSE, store, audit) against a raw python-pkcs11
sign loop on the same token key, in the same run; then the time per certificate with a real
USBKey's latency.

The signer pipelines each chunk: a token thread signs while the caller's thread verifies the
signature before, encodes it and reads the next record, so the ceiling is the slower of the two
sides, not their sum. What is left is printed beside the ratio: the caller's share (verify,
COSE, events and rows, commit) per certificate.

    python bench/issue.py [--quick] [--count N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
from bench_database import BenchDatabases, add_database_argument
from bench_signing import certificates, raw_sign_rate, signing_service

from hsm_sim import UsbKeyBay

TARGETS = {"SQLite": 0.5, "PostgreSQL": 0.35}
USB_LATENCY_MS = 80
LATENCY_SAMPLE = 10
BATCH = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    parser.add_argument("--count", type=int, help="certificates to issue (default 10,000)")
    add_database_argument(parser)
    args = parser.parse_args()
    count = args.count or (2_000 if args.quick else 10_000)

    with tempfile.TemporaryDirectory() as tmp, BenchDatabases(args.database_url) as databases:
        with signing_service(Path(tmp) / "home", databases.fresh()) as service:
            signer, actor, key_id = service.signer, service.actor, service.key_id
            signer.sign_batch(actor, key_id, certificates(200, "W"))  # warm-up
            batch = certificates(count, "C")
            started = time.perf_counter()
            signer.sign_batch(actor, key_id, batch)
            ours_seconds = time.perf_counter() - started

            bay = UsbKeyBay(service.settings.hsm_dir)
            bay.set_latency(service.usbkey["serial"], USB_LATENCY_MS)
            started = time.perf_counter()
            signer.sign_batch(actor, key_id, certificates(LATENCY_SAMPLE, "L"))
            slow_seconds = time.perf_counter() - started
            bay.set_latency(service.usbkey["serial"], None)
        baseline = raw_sign_rate(service, count)

    ours = count / ours_seconds
    per_certificate = slow_seconds / LATENCY_SAMPLE
    target = TARGETS[databases.label]
    print(
        f"issued {count:,} certificates on {databases.label}: {ours:,.0f}/s through the signer "
        f"(policy, sign, verify, COSE, store, audit)"
    )
    print(f"raw PKCS#11 sign loop, same key: {baseline:,.0f} sig/s")
    print(
        f"per certificate: {1e6 / ours:,.0f} µs through the signer, {1e6 / baseline:,.0f} µs "
        f"of it the token's sign (overlapped by the pipeline); the rest is the caller's side"
    )
    print(
        f"with {USB_LATENCY_MS} ms per USBKey operation: {per_certificate * 1000:,.1f} ms per "
        f"certificate, {per_certificate * BATCH / 60:,.1f} min per batch of {BATCH:,}"
    )
    print(f"RESULT {databases.result_name('issue')} ratio={ours / baseline:.2f} target=>={target}")


if __name__ == "__main__":
    main()
