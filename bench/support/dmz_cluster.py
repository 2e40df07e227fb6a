"""The DMZ of docs/public-side.md, stood up in a temporary directory from Debian's own programs:
a PostgreSQL primary the relay writes into, a hot standby made from it with `pg_basebackup -R`,
`certsvc serve --public` nodes reading the standby, and nginx balancing them. Used by
tests/test_verify/test_public_cluster.py and bench/public_cluster.py alike, so the benchmark
measures what the test proves works.

Nothing touches the machine's own PostgreSQL or nginx: each cluster and nginx listen on a free
loopback port, keep their sockets, pid files and logs in their directory, and are stopped when
the context ends. PostgreSQL refuses to run as root: as root, its programs run as `postgres` on
directories that user owns (FIELD-NOTES.md, "Private PostgreSQL clusters in tests").
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CERTSVC = str(Path(sys.executable).parent / "certsvc")
START_SECONDS = 120.0  # a server starting on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs (`initdb`, `pg_ctl`, `pg_basebackup`)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[4]))
    if not found:
        raise RuntimeError("PostgreSQL server programs not found under /usr/lib/postgresql")
    return found[-1].parent


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _owned_tempdir(prefix: str) -> Path:
    """A new directory the PostgreSQL programs may use (as root: owned by `postgres`)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def _run(argv: Sequence[str], what: str) -> None:
    done = subprocess.run([*_as_postgres(), *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {(done.stderr or done.stdout).strip()[-2000:]}")


@dataclass
class PgCluster:
    """One PostgreSQL server of its own: `data` its directory, `port` on 127.0.0.1."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        log = self.root / "server.log"
        _run(
            [
                str(postgres_bin() / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(START_SECONDS)),
                "start",
            ],
            "pg_ctl start",
        )

    def stop(self) -> None:
        _run(
            [str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            "pg_ctl stop",
        )

    def psql(self, statement: str, database: str = "postgres") -> str:
        """One statement as the superuser, through the cluster's socket; its output, unaligned."""
        done = subprocess.run(
            [
                *_as_postgres(),
                str(postgres_bin() / "psql"),
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-XAtqc",
                statement,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()


@contextmanager
def primary() -> Iterator[PgCluster]:
    """A new primary (trust authentication on loopback, WAL for streaming replicas)."""
    cluster = PgCluster(_owned_tempdir("certsvc-dmz-primary-"), free_port())
    try:
        _run(
            [
                str(postgres_bin() / "initdb"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
                str(cluster.data),
            ],
            "initdb",
        )
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.write("wal_level = replica\nmax_wal_senders = 5\nfsync = off\n")
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


@contextmanager
def standby(of: PgCluster) -> Iterator[PgCluster]:
    """A hot standby of `of`, streaming from it: `pg_basebackup -R` writes the connection into
    the copy and marks it a standby, so it starts in recovery and stays read-only."""
    cluster = PgCluster(_owned_tempdir("certsvc-dmz-standby-"), free_port())
    try:
        _run(
            [
                str(postgres_bin() / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(of.port),
                "-U",
                "postgres",
                "-D",
                str(cluster.data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            "pg_basebackup",
        )
        cluster.start()
        try:
            if cluster.psql("SELECT pg_is_in_recovery()") != "t":
                raise RuntimeError("the standby did not start in recovery")
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


@dataclass
class Process:
    """A server started by `serve_process`: where it listens and, on exit, what it printed."""

    base: str
    port: int
    process: subprocess.Popen[str]
    log: Path


@contextmanager
def serve_process(
    argv: Sequence[str], port: int, log: Path, env: dict[str, str], ready_path: str = "/healthz"
) -> Iterator[Process]:
    """`argv` as a child process until `ready_path` answers; terminated on exit. Its output
    goes to `log` (a pipe nobody reads would fill up and block the server)."""
    with log.open("w") as output:
        child = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        try:
            started = Process(f"http://127.0.0.1:{port}", port, child, log)
            deadline = time.monotonic() + START_SECONDS
            while True:
                if child.poll() is not None:
                    raise RuntimeError(f"{argv[0]} ended at start: {log.read_text()[-2000:]}")
                try:
                    httpx.get(started.base + ready_path, timeout=5)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield started
        finally:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@contextmanager
def public_node(database_url: str, home: Path, env: dict[str, str]) -> Iterator[Process]:
    """`certsvc serve --public` on `database_url` (the standby), home `home`; `env` carries
    the rest (trust anchors, rate limit, replica lag bound)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    node_env = {**env, "CERTSVC_DATABASE_URL": database_url, "CERTSVC_HOME": str(home)}
    argv = [CERTSVC, "serve", "--public", "--port", str(port)]
    with serve_process(argv, port, home / "serve.log", node_env) as node:
        yield node


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream public_nodes {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://public_nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout http_502 http_503;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def nginx_conf(root: Path, port: int, upstreams: Sequence[int]) -> str:
    """The balancer's configuration: every path inside `root`, so no root rights are needed;
    a node that errs or answers 502/503 is skipped for 10 s (`max_fails`)."""
    servers = "\n".join(
        f"        server 127.0.0.1:{upstream} max_fails=1 fail_timeout=10s;"
        for upstream in upstreams
    )
    return NGINX_CONF.format(root=root, port=port, servers=servers)


@contextmanager
def nginx(upstreams: Sequence[int], root: Path) -> Iterator[Process]:
    """nginx (`/usr/sbin/nginx -p root -c conf`, in the foreground) balancing `upstreams`."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(nginx_conf(root, port, upstreams))
    argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(root), "-c", str(conf)]
    with serve_process(argv, port, root / "stdout.log", dict(os.environ)) as balancer:
        yield balancer


@dataclass
class Dmz:
    """The public side: `primary` (the relay's target), `standby`, the nodes, the balancer."""

    primary: PgCluster
    standby: PgCluster
    database: str
    nodes: list[Process] = field(default_factory=list)
    balancer: Process | None = None

    @property
    def primary_url(self) -> str:
        return self.primary.url(self.database)


@contextmanager
def dmz(database: str = "certsvc_public") -> Iterator[Dmz]:
    """A primary holding an empty `database`, and its standby; nodes and nginx are added by
    `with_nodes` once the public tables exist (a node refuses a database without them)."""
    with primary() as first:
        first.psql(f"CREATE DATABASE {database}")
        with standby(first) as second:
            yield Dmz(first, second, database)


@contextmanager
def with_nodes(
    side: Dmz, count: int, root: Path, env: dict[str, str], user: str = "postgres"
) -> Iterator[Dmz]:
    """`count` public nodes on the standby (connecting as `user`) behind nginx, until the
    context ends."""
    url = side.standby.url(side.database, user)
    with ExitStack() as stack:
        side.nodes = [
            stack.enter_context(public_node(url, root / f"node-{n}", env)) for n in range(count)
        ]
        side.balancer = stack.enter_context(nginx([n.port for n in side.nodes], root / "nginx"))
        try:
            yield side
        finally:
            side.nodes, side.balancer = [], None


def wait_replayed(side: Dmz, seconds: float = 30.0) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    target = side.primary.psql("SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + seconds
    query = f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
    while side.standby.psql(query) != "t":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the standby did not replay up to {target} in {seconds:.0f} s")
        time.sleep(0.1)
