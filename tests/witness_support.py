"""Real `certsvc witness serve` processes on loopback, for the witness tests."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from server_support import CERTSVC, free_port


@dataclass
class WitnessProcess:
    """A witness: its name, vkey, key file and state directory, and while running its URL."""

    name: str
    vkey: str
    key: Path
    state: Path
    url: str = ""
    output: str = ""
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None


def make_witness(directory: Path, name: str) -> WitnessProcess:
    """`certsvc witness init`: a key in `directory`, its vkey from the command's output."""
    key = directory / f"{name.replace('/', '_')}.pem"
    made = subprocess.run(
        [CERTSVC, "witness", "init", "--name", name, "--key", str(key)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return WitnessProcess(
        name, made.stdout.strip(), key, directory / f"{name.replace('/', '_')}-state"
    )


@contextmanager
def running(witness: WitnessProcess, log_vkeys: Sequence[str]) -> Iterator[WitnessProcess]:
    """`certsvc witness serve` for `log_vkeys` until it answers; stopped on exit (unless stopped
    before), its output kept."""
    port = free_port()
    arguments = [CERTSVC, "witness", "serve", "--name", witness.name, "--key", str(witness.key)]
    arguments += ["--state", str(witness.state), "--port", str(port)]
    for vkey in log_vkeys:
        arguments += ["--log-vkey", vkey]
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(arguments, stdout=output, stderr=subprocess.STDOUT, text=True)
        witness._process, witness.url = process, f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None:
                try:
                    httpx.get(f"{witness.url}/0/checkpoint", timeout=5)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert process.poll() is None, "the witness did not start"
            yield witness
        finally:
            witness.stop()
            output.seek(0)
            witness.output = output.read()
