"""Issuing certificates end to end through the signer (content from the records, policy through
the signing gate, sign on the USBKey, verify, COSE, store, audit) against a raw python-pkcs11
sign loop on the same token key, in the same run; then the time per certificate with a real
USBKey's latency.

The signer pipelines each chunk: a token thread signs while the caller's thread verifies the
signature before, encodes it and reads the next record, so the time per certificate is the
slower of the two sides, not their sum. Where it goes is printed beside the ratio: the token's
sign (the raw loop), the in-process verify every signature gets (measured alone, same run) and
the rest of the caller's side (records, policy, COSE, events and rows, commit) — with the
caller's side the slower one, what it would have to come under to meet the target.

    python bench/issue.py [--quick] [--count N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
from bench_database import BenchDatabases, add_database_argument
from bench_signing import certificates, raw_sign_rate, signing_service
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from hsm_sim import UsbKeyBay

TARGETS = {"SQLite": 0.5, "PostgreSQL": 0.35}
USB_LATENCY_MS = 80
LATENCY_SAMPLE = 10
BATCH = 5_000


def verify_seconds(count: int) -> float:
    """Seconds per P-256 verify of a prehashed SHA-256 digest in process, as the gate does."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(b"x").digest()
    algorithm = ec.ECDSA(Prehashed(hashes.SHA256()))
    signature = key.sign(digest, algorithm)
    public = key.public_key()
    started = time.perf_counter()
    for _ in range(count):
        public.verify(signature, digest, algorithm)
    return (time.perf_counter() - started) / count


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
    verify = verify_seconds(count)

    ours = count / ours_seconds
    per_certificate = slow_seconds / LATENCY_SAMPLE
    print(
        f"issued {count:,} certificates on {databases.label}: {ours:,.0f}/s through the signer "
        f"(policy, sign, verify, COSE, store, audit)"
    )
    print(f"raw PKCS#11 sign loop, same key: {baseline:,.0f} sig/s")
    ours_us, sign_us, verify_us = 1e6 / ours, 1e6 / baseline, verify * 1e6
    target = TARGETS[databases.label]
    print(
        f"where the time goes, per certificate: {ours_us:,.0f} µs through the signer, set by "
        f"the caller's thread (the token's sign, {sign_us:,.0f} µs, runs beside it): verify "
        f"{verify_us:,.0f} µs, records, policy, COSE, events, rows and commit "
        f"{max(ours_us - verify_us, 0.0):,.0f} µs; the target needs the caller's side under "
        f"{sign_us / target:,.0f} µs"
    )
    print(
        f"with {USB_LATENCY_MS} ms per USBKey operation: {per_certificate * 1000:,.1f} ms per "
        f"certificate, {per_certificate * BATCH / 60:,.1f} min per batch of {BATCH:,}"
    )
    print(f"RESULT {databases.result_name('issue')} ratio={ours / baseline:.2f} target=>={target}")


if __name__ == "__main__":
    main()
