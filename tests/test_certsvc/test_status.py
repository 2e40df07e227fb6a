"""`certsvc status`: the operator's morning check names what needs attention, and its exit
code says whether anything does."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from audit.events import AuditEvent
from audit.log import append
from certsvc.cli_status import collect
from certsvc.settings import Settings
from common.dbtypes import utcnow
from init_cache import initialised
from server_support import CERTSVC
from signer.models import KeyPurpose, SigningKey


def test_status_names_an_expiring_key_and_the_day_s_refusals(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    initialised(settings)
    healthy = collect(settings)
    assert healthy["attention"] == [] and len(healthy["tokens"]) == 4
    assert all(t["present"] and not t["pin_locked"] for t in healthy["tokens"])
    assert healthy["audit"]["checkpoint_size"] == healthy["audit"]["events"]
    with sessions.begin() as db:
        db.execute(
            update(SigningKey)
            .where(SigningKey.purpose == KeyPurpose.DECISION)
            .values(not_after=utcnow() + timedelta(days=5, hours=1))
        )
        append(db, AuditEvent("registrar", "registrar", "vault.reveal", "tk", "refused"))
    report = collect(settings)
    [expiring] = report["expiring"]
    assert (expiring["what"], expiring["days_left"], expiring["warning"]) == (
        "key certificate",
        5,
        7,
    )
    assert any("expires in 5 days" in line for line in report["attention"])
    assert report["refused_or_failed_since_yesterday"] == {"vault.reveal": 1}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_command_exits_1_while_a_usbkey_is_out(settings: Settings) -> None:
    initialised(settings)

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CERTSVC, *args], capture_output=True, text=True, check=False, timeout=120
        )

    ok = status("status")
    assert ok.returncode == 0 and "nothing needs attention" in ok.stdout
    phantom = status("hsm", "unplug", "USBKEY-99")
    assert phantom.returncode == 1 and "no registered USBKey" in phantom.stderr
    assert status("hsm", "unplug", "USBKEY-01").returncode == 0  # its label names it
    out = status("status", "--json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["attention"] == ["USBKey USBKEY-01 is not inserted"]
    assert [t["present"] for t in report["tokens"] if t["label"] == "USBKEY-01"] == [False]
