"""A real `certsvc serve` process for tests that need one listening on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CERTSVC = str(Path(sys.executable).parent / "certsvc")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    output: str = ""


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`certsvc serve ARGS --port P` until `/healthz` answers; its output is kept on exit.

    The output goes to a file, not a pipe: a pipe nobody reads fills up and the server then
    blocks in its next log call."""
    port = free_port()
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            [CERTSVC, "serve", *args, "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        server = Server(f"http://127.0.0.1:{port}")
        try:
            # Generous: on two cores shared by parallel workers, imports alone took 30-70 s.
            deadline = time.monotonic() + 180
            while process.poll() is None:
                try:
                    httpx.get(f"{server.base}/healthz", timeout=5)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield server
        finally:
            process.terminate()
            process.wait(timeout=30)
            output.seek(0)
            server.output = output.read()
