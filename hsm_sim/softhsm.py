"""SoftHSM2 as the simulated USBKeys' store: its config file and token directory under our home."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

CONFIG_NAME = "softhsm2.conf"


class SoftHsmError(RuntimeError):
    """softhsm2-util failed or is missing; the message says which and how to fix it."""


def write_config(hsm_dir: Path) -> Path:
    """Write a SoftHSM config whose token directory lives in `hsm_dir` and return its path."""
    hsm_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_dir = hsm_dir / "tokens"
    token_dir.mkdir(exist_ok=True, mode=0o700)
    config = hsm_dir / CONFIG_NAME
    text = (
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    return config


def activate(hsm_dir: Path) -> Path:
    """Point SoftHSM at our config; must happen before the module is loaded in this process."""
    config = write_config(hsm_dir)
    os.environ["SOFTHSM2_CONF"] = str(config)
    return config


def init_token(hsm_dir: Path, label: str, user_pin: str, so_pin: str) -> str:
    """Initialise a new token in the first free slot and return its serial.

    PINs go to softhsm2-util through its argument list, which only this process's user can
    read under /proc; nothing of them is printed or kept.
    """
    config = write_config(hsm_dir)
    env = {**os.environ, "SOFTHSM2_CONF": str(config)}
    try:
        done = subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                user_pin,
                "--so-pin",
                so_pin,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except FileNotFoundError as exc:
        raise SoftHsmError("softhsm2-util not found: install the Debian package softhsm2") from exc
    if done.returncode != 0:
        raise SoftHsmError(f"softhsm2-util could not initialise token {label!r}")
    serial = serial_of(hsm_dir, label)
    if serial is None:
        raise SoftHsmError(f"token {label!r} was initialised but is not listed")
    return serial


def serial_of(hsm_dir: Path, label: str) -> str | None:
    """The serial of the token labelled `label`, read from `softhsm2-util --show-slots`."""
    env = {**os.environ, "SOFTHSM2_CONF": str(write_config(hsm_dir))}
    listing = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout
    serial: str | None = None
    for line in listing.splitlines():
        found = re.match(r"\s*Serial number:\s*(\S*)", line)
        if found:
            serial = found.group(1) or None
            continue
        found = re.match(r"\s*Label:\s*(.*?)\s*$", line)
        if found and found.group(1) == label and serial:
            return serial
    return None
