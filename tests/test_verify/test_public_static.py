"""The relay's static files: the service's own bytes, verifiable offline from what nginx serves,
with ETag, Cache-Control and 304 on both sides; never a partial file, never an older version;
and the outbox pruned behind the relay, never ahead of it; the lag as a metric."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from certsvc.audit_keys import CHECKPOINTER, published_vkeys
from certsvc.public_app import create_public_app
from certsvc.public_static import LOCK, StaticFiles, StaticFilesRefused, nginx_locations
from certsvc.relay import init_public, mark_relayed, relay_all
from certsvc.settings import Settings
from server_support import CERTSVC, free_port
from test_verify.test_relay import issue_and_revoke, public_url  # noqa: F401 (a fixture)
from verify.fast_lookup import FastLookup
from verify.models import SignedRevocationList
from verify.outbox import RegisterOutbox, RegisterOutboxHead, backlog
from verify.published import (
    AUDIT_CHECKPOINT_PATH,
    REVOCATIONS_PATH,
    TRUST_LIST_PATH,
    revocations_version_path,
)
from verify_support import Demo


def _checkpoint(demo: Demo) -> None:
    """A checkpoint signed and published, as the service's checkpointer does."""
    holder = demo.client.app.state.checkpoint_key  # type: ignore[attr-defined]
    holder.publish(demo.sessions, CHECKPOINTER)
    holder.witness()


def _list_version(demo: Demo) -> int:
    with demo.sessions() as db:
        return db.scalar(select(func.max(SignedRevocationList.version))) or 0


def _written(demo: Demo, directory: Path) -> tuple[StaticFiles, int]:
    """Two revocations (two list versions after the one `init` signs), a checkpoint, and the
    files written; the static files and the first of the two versions."""
    first = _list_version(demo) + 1
    ids = issue_and_revoke(demo, count=3)
    demo.revoke(ids[0], date(2026, 12, 1), "error")
    assert _list_version(demo) == first + 1
    _checkpoint(demo)
    static = StaticFiles(demo.settings, demo.sessions, directory)
    written = static.refresh()
    assert TRUST_LIST_PATH in written and REVOCATIONS_PATH in written
    return static, first


def test_static_files_are_the_services_bytes_with_etag_and_304(demo: Demo, tmp_path: Path) -> None:
    directory = tmp_path / "static"
    static, first = _written(demo, directory)
    for path, cache in (
        (TRUST_LIST_PATH, "public, max-age=30"),
        (REVOCATIONS_PATH, "public, max-age=30"),
        (revocations_version_path(first), "public, max-age=31536000, immutable"),
        (revocations_version_path(first + 1), "public, max-age=31536000, immutable"),
        (AUDIT_CHECKPOINT_PATH, "public, max-age=5"),
    ):
        answer = demo.client.get(path)
        assert answer.status_code == 200, path
        assert (directory / path.lstrip("/")).read_bytes() == answer.content, path
        assert answer.headers["cache-control"] == cache
        again = demo.client.get(path, headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == answer.headers["etag"]
        other = demo.client.get(path, headers={"If-None-Match": '"0000"'})
        assert other.status_code == 200 and other.content == answer.content
    assert (
        json.loads((directory / REVOCATIONS_PATH.lstrip("/")).read_bytes())["revocation_list"][
            "version"
        ]
        == first + 1
    )
    assert (directory / "audit/tiles/checkpoint").read_bytes() == (
        directory / AUDIT_CHECKPOINT_PATH.lstrip("/")
    ).read_bytes()
    assert static.refresh() == []  # nothing changed: nothing written
    assert demo.client.get(revocations_version_path(first + 2)).status_code == 404
    assert demo.client.get("/.well-known/certsvc/revocations/99999999999.json").status_code == 422

    # A public node answers the same bytes with the same ETag.
    node = create_public_app(
        Settings(
            home=tmp_path / "node",
            database_url=demo.settings.resolved_database_url,
            trust_anchors=demo.anchors,
        )
    )
    try:
        with TestClient(node) as client:
            for path in (TRUST_LIST_PATH, REVOCATIONS_PATH, revocations_version_path(first)):
                ours, theirs = demo.client.get(path), client.get(path)
                assert theirs.content == ours.content
                assert theirs.headers["etag"] == ours.headers["etag"]
    finally:
        node.state.engine.dispose()


def test_a_database_gone_back_never_takes_a_published_file_back(demo: Demo, tmp_path: Path) -> None:
    directory = tmp_path / "static"
    _static, first = _written(demo, directory)
    current = directory / REVOCATIONS_PATH.lstrip("/")
    published = current.read_bytes()
    with demo.sessions.begin() as db:  # as a restored backup would
        db.execute(delete(SignedRevocationList).where(SignedRevocationList.version == first + 1))
    restarted = StaticFiles(demo.settings, demo.sessions, directory)
    with pytest.raises(StaticFilesRefused, match=f"version {first + 1} is published"):
        restarted.refresh()
    assert current.read_bytes() == published


NGINX = "/usr/sbin/nginx"


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """nginx serving a static directory with `certsvc register nginx-static`'s locations."""
    directory = tmp_path / "static"
    directory.mkdir()
    run = tmp_path / "nginx"
    run.mkdir()
    port = free_port()
    temps = " ".join(
        f"{kind}_temp_path {run / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    config = run / "nginx.conf"
    config.write_text(
        textwrap.dedent(f"""\
        daemon off;
        {"user root;" if os.geteuid() == 0 else ""}
        pid {run / "nginx.pid"};
        error_log stderr warn;
        events {{ worker_connections 64; }}
        http {{
          access_log off;
          {temps} uwsgi_temp_path {run / "uwsgi"}; scgi_temp_path {run / "scgi"};
          server {{
            listen 127.0.0.1:{port};
        """)
        + textwrap.indent(nginx_locations(directory), "    ")
        + "  }\n}\n"
    )
    process = subprocess.Popen([NGINX, "-c", str(config), "-p", str(run)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base, timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, "nginx did not start"
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.1)
        yield directory, base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CERTSVC, *args], capture_output=True, text=True, timeout=300)


def test_nginx_serves_the_files_and_they_verify_offline(
    demo: Demo, nginx: tuple[Path, str], tmp_path: Path
) -> None:
    directory, base = nginx
    first = _list_version(demo) + 1
    ids = issue_and_revoke(demo, count=2)
    valid_qr = demo.certificate("20204100000000077").text
    _checkpoint(demo)
    StaticFiles(demo.settings, demo.sessions, directory).refresh()

    trust = httpx.get(base + TRUST_LIST_PATH)
    assert trust.status_code == 200 and trust.content == demo.client.get(TRUST_LIST_PATH).content
    assert trust.headers["content-type"] == "application/json"
    assert trust.headers["cache-control"] == "public, max-age=30"
    assert (
        httpx.get(
            base + TRUST_LIST_PATH, headers={"If-None-Match": trust.headers["etag"]}
        ).status_code
        == 304
    )
    tile_file = next(p for p in (directory / "audit/tiles/tile/0").rglob("*") if p.is_file())
    tile = httpx.get(f"{base}/{tile_file.relative_to(directory)}")
    assert tile.status_code == 200 and tile.content == tile_file.read_bytes()
    assert tile.headers["cache-control"] == "public, max-age=31536000, immutable"
    (directory / ".well-known/certsvc/.trust-list.json.x1.tmp").write_bytes(b"{")
    assert httpx.get(base + "/.well-known/certsvc/.trust-list.json.x1.tmp").status_code == 404
    assert httpx.get(base + "/" + LOCK).status_code == 404

    saved = tmp_path / "saved"
    saved.mkdir()
    for name, path in (("trust.json", TRUST_LIST_PATH), ("revoked.json", REVOCATIONS_PATH)):
        (saved / name).write_bytes(httpx.get(base + path).content)
    lists = [
        "--trust-list", str(saved / "trust.json"), "--revocations", str(saved / "revoked.json"),
        "--anchor", demo.anchors, "--seen", str(saved / "seen.json"),
    ]  # fmt: skip
    fine = _cli("verify-qr", valid_qr, *lists)
    assert fine.returncode == 0 and "VALID" in fine.stdout, fine.stderr
    with demo.sessions() as db:
        vkeys = published_vkeys(db, demo.settings)
    tiles = _cli("audit", "verify-tiles", base + "/audit/tiles", *[f"--vkey={k}" for k in vkeys])
    assert tiles.returncode == 0 and "audit tiles intact" in tiles.stdout, tiles.stderr
    assert ids  # the revoked one is in the list the verifier was given
    revoked = httpx.get(base + revocations_version_path(first)).json()["revocation_list"]["revoked"]
    assert len(revoked) == 1


WRITER = """
import sys
from pathlib import Path
from common.files import write_published
target = Path(sys.argv[1])
contents = [b"A" * 8_000_000, b"B" * 8_000_001]
n = 0
while True:
    write_published(target, contents[n % 2])
    n += 1
"""


def test_a_writer_killed_mid_write_never_leaves_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "static" / ".well-known" / "certsvc" / "trust-list.json"
    complete = {b"A" * 8_000_000, b"B" * 8_000_001}
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                content = target.read_bytes()
            except FileNotFoundError:
                continue
            assert content in complete, f"a partial file of {len(content)} bytes was visible"
            seen.append(len(content))

    for attempt in range(5):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)])
        deadline = time.monotonic() + 60
        while not target.exists():  # the writer's interpreter starting
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.05)
        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.5 + 0.23 * attempt)  # killed at a different point each time
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        stop.set()
        reader.join()
        stop.clear()
        assert target.read_bytes() in complete
        assert target.stat().st_mode & 0o777 == 0o644  # for the web server to read
    assert len(set(seen)) == 2, "the reader saw both contents being replaced"


def test_leftover_temporary_files_are_removed(demo: Demo, tmp_path: Path) -> None:
    directory = tmp_path / "static"
    left = directory / ".well-known" / "certsvc" / ".revocations.json.k3j.tmp"
    left.parent.mkdir(parents=True)
    left.write_bytes(b'{"revoc')
    StaticFiles(demo.settings, demo.sessions, directory).refresh()
    assert not left.exists()


def test_the_outbox_is_pruned_behind_the_public_database_only(
    demo: Demo,
    public_url: str,  # noqa: F811 (the fixture)
) -> None:
    issue_and_revoke(demo, count=4)
    public = init_public(public_url)
    try:
        moved = relay_all(demo.sessions, public, batch=3, keep=2)
        assert moved > 4
        with demo.sessions() as db:
            kept = list(db.scalars(select(RegisterOutbox.id).order_by(RegisterOutbox.id)))
            last = db.scalar(select(RegisterOutboxHead.last_id))
        assert kept == [moved - 1, moved] and last == moved

        # Changes not relayed yet are never pruned, whatever is asked.
        demo.certificate("20204100000000088")
        with demo.sessions() as db:
            waiting, _age = backlog(db)
        mark_relayed(demo.sessions, moved, keep=0)
        with demo.sessions() as db:
            assert backlog(db)[0] == waiting > 0
            ids = list(db.scalars(select(RegisterOutbox.id)))
            assert min(ids) == moved + 1  # every relayed row gone, every waiting one there
        assert relay_all(demo.sessions, public, batch=500, keep=0) == waiting
        with demo.sessions() as db:
            assert db.scalar(select(func.count()).select_from(RegisterOutbox)) == 0
        # ids go on past the pruned ones
        demo.certificate("20204100000000089")
        assert relay_all(demo.sessions, public, batch=500, keep=0) > 0
    finally:
        public.dispose()


def test_the_relay_lag_is_a_metric_for_staff_only(demo: Demo, tmp_path: Path) -> None:
    issue_and_revoke(demo)
    secrets = json.loads(demo.settings.credentials_file.read_text())
    token = secrets["accounts"]["registrar"]["api_token"]
    assert demo.client.get("/api/v1/metrics").status_code == 401
    answer = demo.client.get("/api/v1/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    with demo.sessions() as db:
        waiting, _age = backlog(db)
    figures = dict(line.split(" ") for line in answer.text.splitlines() if not line.startswith("#"))
    assert int(figures["certsvc_relay_pending_rows"]) == waiting > 0
    assert float(figures["certsvc_relay_lag_seconds"]) >= 0
    node = create_public_app(
        Settings(
            home=tmp_path / "node",
            database_url=demo.settings.resolved_database_url,
            trust_anchors=demo.anchors,
        )
    )
    try:
        with TestClient(node) as client:
            assert client.get("/api/v1/metrics").status_code == 404
    finally:
        node.state.engine.dispose()


def test_the_fast_lookup_answers_exactly_as_the_route(demo: Demo, tmp_path: Path) -> None:
    """`verify.fast_lookup` against the FastAPI route it stands in front of: same status,
    headers and body for a valid, a revoked, an unknown and a malformed id, and past the
    client's budget."""
    ids = issue_and_revoke(demo)
    settings = Settings(
        home=tmp_path / "node",
        database_url=demo.settings.resolved_database_url,
        trust_anchors=demo.anchors,
        verify_rate_per_minute=6,
    )
    fast = create_public_app(settings)
    plain = create_public_app(settings)
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not FastLookup]
    assert len(plain.user_middleware) == len(fast.user_middleware) - 1
    asked = [*ids, "A" * 26, "no-such-id", ids[0].lower(), "offline", ids[0], ids[0]]
    try:
        with TestClient(fast) as one, TestClient(plain) as other:
            seen = []
            for verification_id in asked:
                a = one.get(f"/api/v1/verify/{verification_id}")
                b = other.get(f"/api/v1/verify/{verification_id}")
                assert (a.status_code, a.content) == (b.status_code, b.content)
                assert sorted(a.headers.items()) == sorted(b.headers.items())
                seen.append(a.json().get("status", a.status_code))
            assert seen[:5] == ["valid", "revoked", 404, 404, "valid"]
            assert a.headers["x-frame-options"] == "DENY"  # the hardening still wraps it
            assert [a.status_code, b.status_code] == [429, 429]  # the budget of 6 spent
            statuses = [one.get(f"/api/v1/verify/{i}").status_code for i in ids]
            assert statuses == [429, 429]
    finally:
        fast.state.engine.dispose()
        plain.state.engine.dispose()
