"""The verification page in a real browser (Debian's headless Chromium): loads with no script
and no third-party resource, and shows the state. The screenshot is kept in the test output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from server_support import serving
from verify_support import Demo, Issued, public_copy

CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=412,915",
]


@pytest.fixture
def served(demo: Demo, tmp_path: Path) -> Iterator[tuple[str, Issued]]:
    issued = demo.certificate("20204100000000012")
    url = public_copy(demo, tmp_path / "public.db")
    env = {
        **os.environ,
        "CERTSVC_DATABASE_URL": url,
        "CERTSVC_HOME": str(tmp_path / "h"),
        "CERTSVC_TRUST_ANCHORS": demo.anchors,
    }
    with serving("--public", env=env) as server:
        yield server.base, issued


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [*CHROMIUM, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def test_page_shows_the_state_in_chromium(served: tuple[str, Issued], tmp_path: Path) -> None:
    base, issued = served
    page = f"{base}/V/{issued.verification_id}"
    dom = _chromium(tmp_path, "--dump-dom", page).stdout
    assert "证书有效" in dom and "Certificate valid" in dom and issued.number in dom
    assert "<script" not in dom
    shot = tmp_path / "verification-page.png"
    _chromium(tmp_path, f"--screenshot={shot}", page)
    with Image.open(shot) as image:
        assert image.size == (412, 915)
        colours = dict((rgb, n) for n, rgb in image.convert("RGB").getcolors(1 << 20) or [])
        green = colours.get((0x17, 0x80, 0x3D), 0)
    assert green > 1000  # the green state banner is drawn
    print(f"screenshot of the verification page: {shot}")
    unknown = _chromium(tmp_path, "--dump-dom", f"{base}/v/AAAAAAAAAAAAAAAAAAAAAAAAAA").stdout
    assert "未找到该证书" in unknown
