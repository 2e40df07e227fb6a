"""A public node loads the public side and nothing private: checked on the running command
(every module its processes import) and on the source (what `verify`, `common` and `printing`
import)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import httpx
import pytest

from server_support import serving
from verify_support import Demo, public_copy

ROOT = Path(__file__).resolve().parents[2]
# The repository's own top-level packages: each ships a py.typed marker.
PROJECT = frozenset(marker.parent.name for marker in ROOT.glob("*/py.typed"))
# What a public node may load of certsvc: the command, and the neutral modules of the
# composition. Everything else in certsvc is the staff side.
NEUTRAL_CERTSVC = frozenset(
    {
        "certsvc",
        "certsvc.cli",
        "certsvc.cli_server",
        "certsvc.db",
        "certsvc.db_outage",
        "certsvc.error_answers",
        "certsvc.hardening",
        "certsvc.log_config",
        "certsvc.log_redaction",
        "certsvc.public_app",
        "certsvc.settings",
    }
)
PUBLIC_ROUTES = {
    "/v/{verification_id}",
    "/api/v1/verify/{verification_id}",
    "/api/v1/verify/offline",
    "/api/v1/notices/{number}",
    "/.well-known/certsvc/trust-list.json",
    "/.well-known/certsvc/revocations.json",
    "/.well-known/certsvc/revocations/{version}.json",
    "/healthz",
    "/audit/tiles/{path}",
}
# Which project packages each package may import (itself included); third-party ones are free.
MAY_IMPORT = {
    "verify": {"verify", "common"},
    "common": {"common"},
    "printing": {"printing", "common"},
}


# Put on the PYTHONPATH of the node, Python runs this at the start of each of its processes
# (uvicorn's workers are spawned, so they run it too): each writes its modules when it exits.
# uvicorn ends a process by raising SIGTERM again once it has shut down, whose default action
# skips `atexit`: here SIGTERM exits through `SystemExit` instead.
SITECUSTOMIZE = """
import atexit, os, signal, sys

def _report():
    path = os.path.join(os.environ["MODULES_REPORT_DIR"], f"{os.getpid()}.txt")
    with open(path, "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

atexit.register(_report)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
"""


def _may_load(module: str) -> bool:
    top = module.split(".")[0]
    return top not in PROJECT or top in {"verify", "common"} or module in NEUTRAL_CERTSVC


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the node reads a SQLite copy
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_public_loads_the_public_side_only(demo: Demo, tmp_path: Path, workers: int) -> None:
    """The console script as an operator runs it, every process of it (uvicorn's workers too)
    reporting the modules it held at its exit, after a round of every public route."""
    issued = demo.certificate("20204100000000031")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    reports = tmp_path / "modules"
    reports.mkdir()
    env = {
        **os.environ,
        "CERTSVC_DATABASE_URL": public_copy(demo, tmp_path / "public.db"),
        "CERTSVC_HOME": str(tmp_path / "public-home"),
        "CERTSVC_TRUST_ANCHORS": demo.anchors,
        "PYTHONPATH": str(tmp_path / "site"),
        "MODULES_REPORT_DIR": str(reports),
    }
    with serving("--public", "--workers", str(workers), env=env) as server:
        base = server.base
        for _ in range(2 * workers):  # spread over the workers, which share one socket
            assert httpx.get(f"{base}/healthz", timeout=10).json()["status"] == "ok"
            online = httpx.get(f"{base}/api/v1/verify/{issued.verification_id}", timeout=10)
            assert online.json()["status"] == "valid"
            assert httpx.get(f"{base}/v/{issued.verification_id}", timeout=10).status_code == 200
            offline = httpx.post(
                f"{base}/api/v1/verify/offline", content=issued.text.encode(), timeout=10
            )
            assert offline.json()["signature_valid"] is True
            trust = httpx.get(f"{base}/.well-known/certsvc/trust-list.json", timeout=10)
            assert trust.status_code == 200
        paths = set(httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"])
    assert paths == PUBLIC_ROUTES

    processes = [set(report.read_text().split()) for report in reports.iterdir()]
    # The command's process and each worker reported, each having built the public app.
    serving_processes = [p for p in processes if "certsvc.public_app" in p]
    assert len(serving_processes) == (1 if workers == 1 else 1 + workers)
    loaded = set().union(*processes)
    assert sorted(module for module in loaded if not _may_load(module)) == []
    assert "pkcs11" not in {module.split(".")[0] for module in loaded}
    assert {"certsvc.cli", "verify.routes", "verify.offline", "common.cose"} <= loaded


def _project_imports(path: Path) -> set[str]:
    """The project packages a source file imports, by statements anywhere in it (inside
    functions and `TYPE_CHECKING` blocks too)."""
    package = path.relative_to(ROOT).parts[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(package if node.level else node.module or "")
    return {name.split(".")[0] for name in names} & PROJECT


def test_verify_and_common_import_nothing_private_and_printing_not_verify() -> None:
    assert set(MAY_IMPORT) | {"signer", "vault", "certify", "certsvc"} <= PROJECT
    found = []
    for package, allowed in MAY_IMPORT.items():
        sources = sorted((ROOT / package).rglob("*.py"))
        assert sources, package
        for source in sources:
            for imported in sorted(_project_imports(source) - allowed):
                found.append(f"{source.relative_to(ROOT)} imports {imported}")
    assert found == []
