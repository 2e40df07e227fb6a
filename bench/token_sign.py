"""Signing through the signer (simulated USBKey, module lock, SHA-256, verify-after-sign)
against a raw python-pkcs11 sign loop on the same token key, in the same run.

    python bench/token_sign.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import tempfile
import time
from pathlib import Path

import pkcs11
from pkcs11 import Mechanism, ObjectClass

from certsvc.settings import Settings
from hsm_sim import init_token, open_simulated_library
from signer.ecdsa import sign_p256
from signer.tokens import Pkcs11Tokens

# Every signature is verified before it leaves the signer (a token that signs wrongly must not
# be trusted), and a P-256 verify in process costs about what the token's sign does: the
# ceiling is near 0.5, and 0.3 leaves room for the module lock and the USBKey simulation.
TARGET = 0.3


def rate(work: int, run: object) -> float:
    started = time.perf_counter()
    for n in range(work):
        run(n)  # type: ignore[operator]
    return work / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    args = parser.parse_args()
    work = 2_000 if args.quick else 20_000

    with tempfile.TemporaryDirectory() as tmp:
        hsm_dir = Path(tmp) / "hsm"
        pin = secrets.token_hex(4)
        library = open_simulated_library(Settings().pkcs11_module, hsm_dir, max_tries=6)
        serial = init_token(hsm_dir, "BENCH", pin, secrets.token_hex(6))
        tokens = Pkcs11Tokens(library, pin_max_tries=6)
        tokens.reset()
        with tokens.login(serial, pin, rw=True) as session:
            session.generate_ec_p256("bench", b"\x01")
            public = session.public_key("bench")
            ours = rate(work, lambda n: sign_p256(session, "bench", n.to_bytes(8, "big"), public))
        raw_lib = pkcs11.lib(Settings().pkcs11_module)
        token = raw_lib.get_token(token_serial=serial.encode())
        with token.open(user_pin=pin) as raw:
            key = raw.get_key(object_class=ObjectClass.PRIVATE_KEY, label="bench")
            digest = hashlib.sha256(b"x").digest()
            baseline = rate(work, lambda _n: key.sign(digest, mechanism=Mechanism.ECDSA))

    print(f"signer {ours:,.0f} sig/s; raw PKCS#11 loop {baseline:,.0f} sig/s")
    print(f"RESULT token_sign ratio={ours / baseline:.2f} target=>={TARGET}")


if __name__ == "__main__":
    main()
