"""One signing session per USBKey across the service's worker processes: a second worker can
neither open another session on a claimed token nor sign as if none were open, and a claim
dies with the process that held it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.errors import InvalidInput
from signer.claims import SessionClaims, SessionElsewhere, TokenClaimedElsewhere
from signer.errors import TokenBusy, WrongPin
from signer.sessions import SigningSessions
from signing_env import WORKSTATION, SigningEnv


def two_workers(env: SigningEnv, claims: Path) -> tuple[SigningSessions, SigningSessions]:
    """Two workers' signing sessions over one token module, claiming in one directory."""
    first, second = (
        SigningSessions(env.tokens, 3600, 600, claims=SessionClaims(claims)) for _ in range(2)
    )
    return first, second


def test_a_second_worker_cannot_open_or_use_a_claimed_usbkey(
    env: SigningEnv, tmp_path: Path
) -> None:
    first, second = two_workers(env, tmp_path)
    serial, pin = env.usbkey["serial"], env.usbkey["user_pin"]
    first.open(serial, pin, "custodian", WORKSTATION, "certificate-1")
    try:
        with pytest.raises(TokenClaimedElsewhere) as refused:
            second.open(serial, pin, "custodian", WORKSTATION, "certificate-1")
        assert pin not in str(refused.value)
        with pytest.raises(SessionElsewhere):
            second.current(serial)
        with pytest.raises(SessionElsewhere):
            second.use(serial, "custodian")
        assert first.current(serial) is not None
    finally:
        first.close(serial, "custodian")
    assert second.current(serial) is None
    second.open(serial, pin, "custodian", WORKSTATION, "certificate-1")
    second.close_all()


def test_a_wrong_pin_leaves_no_claim(env: SigningEnv, tmp_path: Path) -> None:
    first, second = two_workers(env, tmp_path)
    serial = env.usbkey["serial"]
    with pytest.raises(WrongPin):
        first.open(serial, "00000000", "custodian", WORKSTATION, "certificate-1")
    second.open(serial, env.usbkey["user_pin"], "custodian", WORKSTATION, "certificate-1")
    second.close_all()


CLAIM_AND_WAIT = """
import sys, time
from pathlib import Path
from common.errors import InvalidInput
from signer.claims import SessionClaims
SessionClaims(Path(sys.argv[1])).claim("0123abcd")
print("claimed", flush=True)
time.sleep(600)
"""


def test_a_claim_dies_with_its_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        claims = SessionClaims(tmp_path)
        assert claims.held_elsewhere("0123abcd")
        with pytest.raises(TokenClaimedElsewhere):
            claims.claim("0123abcd")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.monotonic() + 10
    while claims.held_elsewhere("0123abcd") and time.monotonic() < deadline:
        time.sleep(0.05)
    claims.claim("0123abcd")
    assert not claims.held_elsewhere("0123abcd")
    claims.release("0123abcd")


def test_serials_cannot_name_other_files(tmp_path: Path) -> None:
    for serial in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(InvalidInput, match="token_serial"):
            SessionClaims(tmp_path).claim(serial)
        assert not SessionClaims(tmp_path).held_elsewhere(serial)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_second_opening_keeps_the_first_sessions_claim(
    env: SigningEnv, tmp_path: Path
) -> None:
    first, second = two_workers(env, tmp_path)
    serial, pin = env.usbkey["serial"], env.usbkey["user_pin"]
    first.open(serial, pin, "custodian", WORKSTATION, "certificate-1")
    with pytest.raises(TokenBusy):
        first.open(serial, pin, "custodian", WORKSTATION, "certificate-1")
    with pytest.raises(TokenClaimedElsewhere):
        second.open(serial, pin, "custodian", WORKSTATION, "certificate-1")
    first.close_all()
