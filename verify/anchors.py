"""Pinned trust anchors: the SHA-256 fingerprints of the body's root certificates, kept outside
the database (a file `certsvc init` writes under CERTSVC_HOME, or CERTSVC_TRUST_ANCHORS), so
that a trust list some database administrator signs with a root of their own is refused."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

ANCHORS_FORMAT = "certsvc-trust-anchors/1"
FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")


class AnchorsInvalid(ValueError):
    """A pinned-anchor file or setting that cannot be read; says where, never guesses."""


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER, lower-case hex: what an anchor pins."""
    return hashlib.sha256(der).hexdigest()


def parse_fingerprints(text: str) -> frozenset[str]:
    """Comma-separated fingerprints (hex, `sha256:` prefix and colons allowed)."""
    pins = set()
    for item in text.split(","):
        value = item.strip().lower().removeprefix("sha256:").replace(":", "")
        if not value:
            continue
        if not FINGERPRINT_RE.match(value):
            raise AnchorsInvalid("trust anchors: each must be the 64-hex SHA-256 of a root's DER")
        pins.add(value)
    return frozenset(pins)


def read_anchors(path: Path) -> frozenset[str]:
    """The fingerprints pinned in `path`; empty when the file does not exist."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError):
        raise AnchorsInvalid(f"trust anchors: {path} is not readable JSON") from None
    if not isinstance(document, dict) or document.get("format") != ANCHORS_FORMAT:
        raise AnchorsInvalid(f"trust anchors: {path} is not a {ANCHORS_FORMAT} file")
    roots = document.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, dict) for r in roots):
        raise AnchorsInvalid(f"trust anchors: {path} lists no roots")
    return parse_fingerprints(",".join(str(r.get("sha256", "")) for r in roots))


def pin_anchor(path: Path, body_code: str, root_der: bytes) -> bool:
    """Pin the root when nothing is pinned yet (first provisioning); True when it wrote the
    file. A pinned file is never changed here: a root found later in the database is exactly
    what pinning refuses, and adding a root is the operator's act (edit the file)."""
    if read_anchors(path):
        return False
    roots = [{"body": body_code, "sha256": fingerprint(root_der)}]
    text = json.dumps({"format": ANCHORS_FORMAT, "roots": roots}, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.replace(temporary, path)
    return True
