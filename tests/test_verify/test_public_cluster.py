"""The whole DMZ of docs/public-side.md, from Debian's programs: the internal service (its own
relay running) on the test server's PostgreSQL → a public primary of the test's own → a hot
standby made with `pg_basebackup -R` → two `certsvc serve --public` nodes reading the standby →
nginx balancing them. A certificate issued and then revoked through the staff API shows at the
balancer within a generous bound; a node whose standby stops replaying says so on /healthz,
where a balancer's health check sees it.

The bound is "eventually, within BOUND seconds": how fast it goes is bench/public_cluster.py's
business, not this test's."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import dmz_cluster
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from certsvc.accounts import Role
from certsvc.public_app import create_public_app
from certsvc.relay import init_public
from certsvc.settings import Settings
from init_cache import initialised
from reliability.test_concurrent_limits import _issued
from server_support import serving
from service_helpers import MakeStaff, demo_member
from test_certify.test_http_flow import API, Desk, _open_batch

POSTGRES_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgres)]
BOUND = 30.0
# Two PostgreSQL servers, nginx and three services start on a 2-core machine others share.
SLOW_SET_UP = pytest.mark.timeout(900)
RELAY_ROLE, NODE_ROLE = "certsvc_relay", "certsvc_node"


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"not within {BOUND:.0f} s: {what}"
        time.sleep(0.2)


def node_env(settings: Settings, **extra: str) -> dict[str, str]:
    """What a public node is given: the pinned roots, and no per-client limit to trip over (all
    requests come from nginx's address here)."""
    return {
        **os.environ,
        "CERTSVC_TRUST_ANCHORS": ",".join(sorted(settings.pinned_anchors())),
        "CERTSVC_VERIFY_RATE_PER_MINUTE": "1000000",
        **extra,
    }


def prepared(side: dmz_cluster.Dmz) -> None:
    """`register init-public` on the primary with the relay's and the nodes' roles, as
    docs/public-side.md does it; replayed on the standby before a node starts there."""
    for role in (RELAY_ROLE, NODE_ROLE):
        side.primary.psql(f"CREATE ROLE {role} LOGIN")
    init_public(side.primary_url, RELAY_ROLE, NODE_ROLE).dispose()
    dmz_cluster.wait_replayed(side)


@SLOW_SET_UP
@pytest.mark.parametrize("db_url", POSTGRES_ONLY, indirect=True)
def test_issue_and_revoke_inside_show_at_the_balancer(
    settings: Settings, sessions: sessionmaker[Session], make_staff: MakeStaff, tmp_path: Path
) -> None:
    initialised(settings)
    secrets = json.loads(settings.credentials_file.read_text())
    with dmz_cluster.dmz() as side:
        prepared(side)
        relay_url = side.primary.url(side.database, RELAY_ROLE)
        side_env = {**os.environ, "CERTSVC_PUBLIC_DATABASE_URL": relay_url}
        with (
            serving(env=side_env) as inside,
            httpx.Client(base_url=inside.base, timeout=60) as staff,
            dmz_cluster.with_nodes(side, 2, tmp_path / "dmz", node_env(settings), NODE_ROLE),
        ):
            assert side.balancer is not None
            for node in side.nodes:  # on the standby, as the read-only role
                assert httpx.get(f"{node.base}/healthz").json() == {"status": "ok"}
            desk = Desk(
                client=staff,  # type: ignore[arg-type]  (the real server, not a TestClient)
                registrar=demo_member(secrets, "registrar"),
                officer=demo_member(secrets, "officer"),
                officer_2=make_staff(Role.OFFICER),
                custodian=demo_member(secrets, "custodian", "ws-custodian-01"),
                security_officer=demo_member(secrets, "security_officer"),
                usbkey=secrets["tokens"]["USBKEY-01"],
            )
            batch_id = _open_batch(desk)
            _, number = _issued(desk, sessions, batch_id, 71)
            certificate = desk.ok("GET", f"{API}/certificates/{number}", desk.registrar)
            verification_id = certificate["verification_url"].rsplit("/", 1)[1]
            balancer = httpx.Client(base_url=side.balancer.base, timeout=10)
            path = f"/api/v1/verify/{verification_id}"

            def status() -> str | None:
                answer = balancer.get(path)
                return answer.json().get("status") if answer.status_code == 200 else None

            eventually(lambda: status() == "valid", "the issued certificate at the balancer")
            served_by = {balancer.get(path).headers["X-Upstream"] for _ in range(4)}
            assert served_by == {f"127.0.0.1:{node.port}" for node in side.nodes}

            filed = desk.ok(
                "POST",
                f"{API}/certificates/{number}/revocations",
                desk.officer,
                {"category": "error", "reason": "conclusion corrected"},
            )
            approval = f"{API}/revocations/{filed['id']}/approvals"
            desk.ok("POST", approval, desk.officer, {"reason": "checked the file"})
            desk.ok("POST", approval, desk.officer_2, {"reason": "second check"})
            desk.session("revocation-1")
            signed = desk.ok(
                "POST", f"{API}/revocations/sign", desk.custodian, {"revocation_ids": [filed["id"]]}
            )
            assert signed["signed"] == [f"REV-{filed['id']}"]
            eventually(lambda: status() == "revoked", "the revocation at the balancer")
            for node in side.nodes:  # each node, not only the one that answered last
                eventually(
                    lambda base=node.base: httpx.get(f"{base}{path}").json()["status"] == "revoked",
                    "the revocation on every node",
                )
            assert side.standby.psql("SELECT pg_is_in_recovery()") == "t"
            balancer.close()
    assert "Traceback" not in inside.output


@SLOW_SET_UP
@pytest.mark.parametrize("db_url", POSTGRES_ONLY, indirect=True)
def test_a_node_whose_standby_stops_replaying_says_so_on_healthz(
    settings: Settings, tmp_path: Path
) -> None:
    initialised(settings)  # for the pinned roots the node is given
    with dmz_cluster.dmz() as side:
        prepared(side)
        env = node_env(settings, CERTSVC_PUBLIC_MAX_REPLICA_LAG_SECONDS="1")
        with dmz_cluster.with_nodes(side, 1, tmp_path / "dmz", env):
            (node,) = side.nodes

            def health() -> tuple[int, dict[str, str]]:
                answer = httpx.get(f"{node.base}/healthz", timeout=10)
                return answer.status_code, answer.json()

            time.sleep(2)  # quiet past the bound: a standby with nothing to replay is not behind
            assert health() == (200, {"status": "ok"})

            side.standby.psql("SELECT pg_wal_replay_pause()")
            side.primary.psql("UPDATE register_relay_state SET relayed_at = now()", side.database)
            behind = (503, {"status": "degraded", "reason": "register replica behind"})
            eventually(lambda: health() == behind, "the paused standby's node degraded")

            on_primary = create_public_app(
                Settings(
                    home=tmp_path / "on-primary",
                    database_url=side.primary_url,
                    trust_anchors=env["CERTSVC_TRUST_ANCHORS"],
                    public_max_replica_lag_seconds=0.001,
                )
            )
            with TestClient(on_primary) as client:  # no standby, never behind
                assert client.get("/healthz").json() == {"status": "ok"}

            side.standby.psql("SELECT pg_wal_replay_resume()")
            eventually(lambda: health() == (200, {"status": "ok"}), "caught up again")

            side.standby.stop()
            gone = (503, {"status": "degraded", "reason": "database unavailable"})
            eventually(lambda: health() == gone, "the node without its standby degraded")
            side.standby.start()
            eventually(lambda: health() == (200, {"status": "ok"}), "the standby back")
