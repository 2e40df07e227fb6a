"""The USBKey state is checked before every token operation, so the check costs no system call;
an edit by another process is still seen by the very next operation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hsm_sim import state
from hsm_sim.state import UsbKeyStates

EDIT = (
    "import sys; from pathlib import Path; from hsm_sim.state import UsbKeyStates\n"
    "with UsbKeyStates(Path(sys.argv[1])).edit('S1') as key:\n"
    "    key.plugged = False\n"
)


def test_an_edit_in_another_process_is_seen_at_once(tmp_path: Path) -> None:
    reader = UsbKeyStates(tmp_path)
    assert reader.get("S1").plugged
    subprocess.run([sys.executable, "-c", EDIT, str(tmp_path)], check=True, timeout=60)
    assert not reader.get("S1").plugged
    with reader.edit("S1") as key:
        key.plugged = True
    assert reader.get("S1").plugged


def test_an_unchanged_state_is_read_without_a_system_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = UsbKeyStates(tmp_path)
    with reader.edit("S1") as key:
        key.failures = 2
    assert reader.get("S1").failures == 2

    def no_system_call(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a system call while reading an unchanged state")

    with monkeypatch.context() as patched:  # undone before pytest itself needs them again
        for name in ("stat", "open", "fstat", "read", "pread"):
            patched.setattr(state.os, name, no_system_call)
        patched.setattr(Path, "read_text", no_system_call)
        failures = reader.get("S1").failures
        plugged = reader.get("S2").plugged
    assert (failures, plugged) == (2, True)
