"""Files the service writes (issue 14): owner-only whatever the home's own mode, never through a
planted symbolic link, and the service PIN file kept out of a copy of CERTSVC_HOME."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from certsvc.app import create_app
from certsvc.service_pins import ServicePinsExposed
from certsvc.settings import Settings
from common.errors import InvalidInput
from common.files import open_for_writing

CERTSVC = str(Path(sys.executable).parent / "certsvc")


def test_everything_init_writes_is_owner_only_in_an_open_home(tmp_path: Path) -> None:
    """The home exists already, world-readable: the database, its journal, keys, tokens,
    credentials and PINs are created owner-only all the same (the CLI's umask)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # noqa: S103 (the open home this test is about)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CERTSVC_") or name == "CERTSVC_PKCS11_MODULE"
    }
    env.update(CERTSVC_HOME=str(home), CERTSVC_PASSWORD_HASH_PROFILE="test")
    done = subprocess.run(
        [CERTSVC, "init"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    written = [path for path in home.rglob("*") if path.is_file() and not path.is_symlink()]
    assert home / "certsvc.db" in written
    readable = [
        str(path.relative_to(home)) for path in written if stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    assert readable == []


def test_output_paths_are_not_followed_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("kept")
    link = tmp_path / "report.csv"
    link.symlink_to(victim)
    with pytest.raises(InvalidInput, match=r"report\.csv is a symbolic link"):
        open_for_writing(link, "errors")
    assert victim.read_text() == "kept"
    with open_for_writing(tmp_path / "fresh.csv", "errors") as out:
        out.write("row,field,reason\n")
    assert stat.S_IMODE((tmp_path / "fresh.csv").stat().st_mode) == 0o600


def test_service_pin_file_stays_out_of_the_home_in_production(
    settings: Settings, tmp_path: Path
) -> None:
    production = settings.model_copy(update={"hsm_simulation": False})
    home = production.resolved_home
    assert not production.service_pins_file.is_relative_to(home)
    assert not production.service_pins_file.is_relative_to(production.hsm_dir)
    inside = production.model_copy(update={"service_pins_path": home / "hsm" / "pins.json"})
    with pytest.raises(ServicePinsExposed, match="inside CERTSVC_HOME"):
        create_app(inside)
