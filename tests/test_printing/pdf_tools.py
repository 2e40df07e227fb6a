"""Ordinary PDF tools run on our PDFs, as a holder or an employer would: pyHanko's CLI and
poppler's `pdfsig` (trusting the body's root through a throwaway NSS database), `pdftoppm`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

PYHANKO = Path(sys.executable).with_name("pyhanko")
TIMEOUT = 60


@dataclass(frozen=True)
class Run:
    code: int
    output: str


def run(*args: str | Path) -> Run:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    return Run(done.returncode, done.stdout + done.stderr)


def write_pem(certificate: x509.Certificate, path: Path) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def pyhanko_validate(pdf: Path, root_pem: Path) -> Run:
    return run(
        PYHANKO, "sign", "validate", "--pretty-print", "--no-revocation-check",
        "--trust", root_pem, "--trust-replace", pdf,
    )  # fmt: skip


def nss_database(directory: Path, root_pem: Path | None) -> str:
    """An NSS database trusting only the body's root (or nothing), for `pdfsig -nssdir`."""
    directory.mkdir()
    database = f"sql:{directory}"
    commands: list[tuple[str | Path, ...]] = [
        ("certutil", "-N", "-d", database, "--empty-password")
    ]
    if root_pem is not None:
        trust = ("-n", "certsvc-root", "-t", "CT,C,C", "-i", root_pem)
        commands.append(("certutil", "-A", "-d", database, *trust))
    for command in commands:
        result = run(*command)
        assert result.code == 0, result.output
    return database


def pdfsig(pdf: Path, nss: str) -> Run:
    return run("pdfsig", "-nssdir", nss, "-no-ocsp", pdf)


def rasterise(pdf: Path, prefix: Path, dpi: int = 200) -> Path:
    """The first page as PNG, as a scanner or a phone camera would see the printed sheet."""
    result = run("pdftoppm", "-r", str(dpi), "-png", "-singlefile", pdf, prefix)
    assert result.code == 0, result.output
    return prefix.with_suffix(".png")
