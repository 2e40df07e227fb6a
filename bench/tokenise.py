"""Bulk tokenisation as `certsvc import applicants` does it, against a raw AES-256-GCM +
HMAC-SHA256 loop over the same identifiers in process with no vault, in the same run.

Measured: `import_applicants`, the function behind the command, on the embedded default
(SQLite) with its default batch (500 rows, so 2,500 identifiers, per transaction), over a CSV
file of synthetic applicants with all five identifier columns filled. Every row is read and
checked, its identifiers tokenised into the vault (normalised again, blind index, AES-GCM,
insert) and the applicant stored. The ratio is identifiers tokenised per second over the raw
loop's values per second. On a shared machine both vary by a factor of two from run to run,
so each side is measured three times, interleaved (each import into a fresh service), and the
fastest run of each side counts.

Also printed, for reference only: the vault's bulk call alone (`Vault.tokenise` on ID numbers,
1,000 per transaction, no CSV and no applicant rows, also fastest of three), which is what this
bench measured before.

    python bench/tokenise.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import os
import random
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _isolated  # noqa: F401  (first: takes bench/ off the import path)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session, sessionmaker

from certify.applicant_import import COLUMNS, import_applicants
from certsvc.bootstrap import initialise
from certsvc.db import make_engine, make_sessionmaker
from certsvc.hsm import open_tokens
from certsvc.settings import get_settings, reset_settings
from certsvc.vault_setup import open_vault
from vault import synthetic
from vault.kinds import Kind
from vault.store import Vault

TARGET = 0.3
RUNS = 3
VAULT_BATCH = 1000
GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "name": synthetic.name,
    "id_number": synthetic.id_number,
    "phone": synthetic.phone,
    "email": synthetic.email,
    "address": synthetic.address,
}


def raw_loop(values: list[str]) -> float:
    """Per value: HMAC-SHA256 blind index and AES-256-GCM with a fresh nonce."""
    aead = AESGCM(secrets.token_bytes(32))
    index_key = secrets.token_bytes(32)
    started = time.perf_counter()
    for value in values:
        data = value.encode()
        hmac.digest(index_key, data, hashlib.sha256)
        nonce = os.urandom(12)
        aead.encrypt(nonce, data, b"aad")
    return len(values) / (time.perf_counter() - started)


def applicants(rows: int, rng: random.Random) -> list[dict[str, str]]:
    """Synthetic applicants, each with its own ID number."""
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    while len(out) < rows:
        row = {column: GENERATORS[column](rng) for column in COLUMNS}
        if row["id_number"] not in seen:
            seen.add(row["id_number"])
            out.append(row)
    return out


def service(home: Path) -> tuple[sessionmaker[Session], Vault, Callable[[], None]]:
    """A freshly initialised service in `home`, its vault keys unwrapped once (as a running
    service has them)."""
    os.environ["CERTSVC_HOME"] = str(home)
    os.environ.pop("CERTSVC_DATABASE_URL", None)
    reset_settings()
    settings = get_settings()
    initialise(settings)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    vault = open_vault(settings, sessions, open_tokens(settings, sessions))
    with sessions() as db:
        vault.keyring.current(db)
    return sessions, vault, engine.dispose


def import_loop(rows: list[dict[str, str]], home: Path) -> float:
    """Identifiers tokenised per second by `import_applicants` on a CSV file of `rows`."""
    home.parent.mkdir(parents=True, exist_ok=True)
    path = home.parent / "applicants.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    sessions, vault, dispose = service(home)
    started = time.perf_counter()
    report = import_applicants(sessions, vault, path, "bench")
    elapsed = time.perf_counter() - started
    dispose()
    if (report.imported, report.duplicates, report.invalid) != (len(rows), 0, 0):
        raise SystemExit(f"import went wrong: {report}")
    return len(rows) * len(COLUMNS) / elapsed


def vault_loop(values: list[str], home: Path) -> float:
    """ID numbers tokenised per second by `Vault.tokenise` alone, 1,000 per transaction."""
    sessions, vault, dispose = service(home)
    started = time.perf_counter()
    for start in range(0, len(values), VAULT_BATCH):
        with sessions.begin() as db:
            vault.tokenise(db, Kind.ID_NUMBER, values[start : start + VAULT_BATCH])
    elapsed = time.perf_counter() - started
    dispose()
    return len(values) / elapsed


def _runs(rates: list[float]) -> str:
    return "fastest of " + ", ".join(f"{rate:,.0f}" for rate in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    parser.add_argument("--rows", type=int, default=None, help="applicants (default 20,000)")
    args = parser.parse_args()
    count = args.rows or (4_000 if args.quick else 20_000)
    rng = random.Random(11643)  # noqa: S311 (synthetic data, reproducible)
    rows = applicants(count, rng)
    identifiers = [row[column] for row in rows for column in COLUMNS]
    id_numbers = list({synthetic.id_number(rng) for _ in range(len(identifiers))})
    imports: list[float] = []
    baselines: list[float] = []
    alone: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(RUNS):
            baselines.append(raw_loop(identifiers))
            imports.append(import_loop(rows, Path(tmp) / f"import-{run}" / "home"))
            alone.append(vault_loop(id_numbers, Path(tmp) / f"vault-{run}" / "home"))
    ours, baseline = max(imports), max(baselines)
    print(f"applicants:        {len(rows):,} ({len(identifiers):,} identifiers)")
    print(f"import (SQLite):   {ours:,.0f} identifiers/s ({_runs(imports)})")
    print(f"raw AES-GCM+HMAC:  {baseline:,.0f} values/s ({_runs(baselines)})")
    print(
        f"for reference, Vault.tokenise alone on {len(id_numbers):,} ID numbers: "
        f"{max(alone):,.0f} values/s ({_runs(alone)}), ratio {max(alone) / baseline:.2f}"
    )
    print(f"RESULT tokenise ratio={ours / baseline:.2f} target=>={TARGET}")


if __name__ == "__main__":
    main()
