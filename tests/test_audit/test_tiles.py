"""C2SP tlog-tiles: paths and tile sets against the spec's own examples, tile hashes against
RFC 6962's MTH computed independently (`spec_note.merkle_root`), and the round trip an outside
auditor makes — `certsvc audit publish-tiles`, a plain `python -m http.server`, `certsvc audit
verify-tiles` with the vkeys alone — on SQLite and PostgreSQL; one byte changed in an entry
bundle fails, naming the entry."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append
from audit.merkle import leaf_hash, verify_inclusion
from audit.note import note_key
from audit.tiles import (
    WIDTH,
    Tile,
    TileError,
    TileReader,
    bundle,
    encode_index,
    levels,
    tile_content,
    tiles_for,
)
from certsvc.app import create_app
from certsvc.audit_keys import published_vkeys
from certsvc.public_app import create_public_app
from certsvc.settings import Settings, get_settings, reset_settings
from init_cache import initialised
from server_support import CERTSVC, free_port
from spec_note import merkle_root


def test_tile_paths_are_the_specs() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert [encode_index(n) for n in (0, 7, 999, 1000, 256000)] == [
        "000",
        "007",
        "999",
        "x001/000",
        "x256/000",
    ]
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(2, 5, 17).path == "tile/2/005.p/17"
    assert Tile(None, 1, 112).path == "tile/entries/001.p/112"


def test_the_tiles_of_a_tree_are_the_specs_examples() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level
    # 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1" — and as many entry bundles as level-0 tiles.
    tiles = tiles_for(70000)
    hashes = [t for t in tiles if t.level is not None]
    assert sum(t.level == 0 and t.full for t in hashes) == 273
    assert [t.width for t in hashes if not t.full] == [112, 17, 1]
    assert [t.level for t in hashes if not t.full] == [0, 1, 2]
    assert sum(t.level == 1 and t.full for t in hashes) == 1
    assert sum(t.level is None for t in tiles) == 274
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    # tile of width 1".
    assert [(t.level, t.width) for t in tiles_for(256) if t.level is not None] == [(0, 256), (1, 1)]


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 600, 65536 + 300])
def test_tiles_hash_as_rfc_6962_says(size: int) -> None:
    entries = [f"entry {n}".encode() for n in range(size)]
    by_level = levels([leaf_hash(e) for e in entries])
    files = {}
    for tile in tiles_for(size):
        if tile.level is None:
            files[tile.path] = bundle(entries[tile.index * WIDTH : tile.index * WIDTH + tile.width])
        else:
            files[tile.path] = tile_content(tile, by_level)
    # A level-1 hash is MTH of its 256 leaves: spot-checked against the independent MTH.
    if size >= WIDTH:
        level1 = files[Tile(1, 0, min(size // WIDTH, WIDTH)).path]
        assert level1[:32] == merkle_root(entries[:WIDTH])
    reader = TileReader(size, files.__getitem__)
    assert reader.root() == merkle_root(entries)
    for index in {0, size // 2, size - 1}:
        proof = reader.inclusion_proof(index)
        assert verify_inclusion(leaf_hash(entries[index]), index, size, proof, reader.root())
    assert list(reader.all_entries()) == entries


def test_a_changed_entry_is_named() -> None:
    entries = [f"entry {n}".encode() for n in range(300)]
    by_level = levels([leaf_hash(e) for e in entries])
    files = {t.path: tile_content(t, by_level) for t in tiles_for(300) if t.level is not None}
    files["tile/entries/000"] = bundle(entries[:256])
    changed = list(entries[256:])
    changed[5] = b"entry 999"
    files["tile/entries/001.p/44"] = bundle(changed)
    with pytest.raises(TileError, match="entry 261: "):
        list(TileReader(300, files.__getitem__).all_entries())


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTSVC, *args], capture_output=True, text=True, check=False, timeout=300
    )


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """`python -m http.server` over an empty directory, until it answers."""
    directory = tmp_path / "www"
    directory.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.1)
        yield directory, base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_tiles_published_to_a_static_server_verify_from_the_vkeys_alone(
    settings: Settings,
    sessions: sessionmaker[Session],
    static_server: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    initialised(settings)
    with sessions.begin() as db:
        for n in range(300):  # past one full tile
            append(db, AuditEvent("officer1", "officer", "certify.decision", f"case:{n}", "ok"))
    assert _run("audit", "checkpoint").returncode == 0
    with sessions() as db:
        vkeys = published_vkeys(db, settings)
    directory, base = static_server
    published = _run("audit", "publish-tiles", str(directory))
    assert published.returncode == 0, published.stderr
    assert (directory / "tile/0/000").stat().st_size == 8192
    assert (directory / "tile/entries/000").exists()
    again = _run("audit", "publish-tiles", str(directory))
    assert "already holds" in again.stdout

    keys = [arg for vkey in vkeys for arg in ("--vkey", vkey)]
    whole = _run("audit", "verify-tiles", f"{base}/", *keys)
    assert whole.returncode == 0, whole.stderr
    assert "audit tiles intact" in whole.stdout
    one = _run("audit", "verify-tiles", base, *keys, "--event", "270")
    assert one.returncode == 0, one.stderr
    assert "event 270 is in the signed checkpoint" in one.stdout
    other = note_key(settings.audit_origin, Ed25519PrivateKey.generate().public_key())
    stranger = _run("audit", "verify-tiles", base, "--vkey", other.vkey())
    assert stranger.returncode == 1 and "not signed by any trusted key" in stranger.stderr

    # The same files under /audit/tiles/ of the service, with the spec's cache headers.
    monkeypatch.setenv("CERTSVC_AUDIT_TILES_DIR", str(directory))
    reset_settings()
    app = create_app(get_settings())
    client = TestClient(app)
    tile = client.get("/audit/tiles/tile/0/000")
    assert tile.content == (directory / "tile/0/000").read_bytes()
    assert "immutable" in tile.headers["cache-control"]
    assert tile.headers["content-type"] == "application/octet-stream"
    assert client.get("/audit/tiles/checkpoint").headers["cache-control"] == "public, max-age=5"
    assert client.get("/audit/tiles/../certsvc.db").status_code == 404
    assert client.get("/audit/tiles/tile/0/0").status_code == 404
    app.state.engine.dispose()
    # A public node serves them only when its operator points it at them.
    node = create_public_app(get_settings())
    assert TestClient(node).get("/audit/tiles/tile/entries/000").status_code == 200
    node.state.engine.dispose()
    monkeypatch.delenv("CERTSVC_AUDIT_TILES_DIR")
    reset_settings()
    node = create_public_app(get_settings())
    assert TestClient(node).get("/audit/tiles/tile/entries/000").status_code == 404
    node.state.engine.dispose()

    # One byte of one entry changed on the static server: named.
    [bundle_file] = (directory / "tile/entries/001.p").iterdir()
    data = bytearray(bundle_file.read_bytes())
    data[2 + 20] ^= 0x01  # inside the first entry of the bundle: entry 256
    bundle_file.write_bytes(bytes(data))
    tampered = _run("audit", "verify-tiles", base, *keys)
    assert tampered.returncode == 1
    assert "entry 256: " in tampered.stderr, tampered.stderr
    assert _run("audit", "verify-tiles", base, *keys, "--event", "256").returncode == 1
    assert _run("audit", "verify-tiles", base, *keys, "--event", "255").returncode == 0
