"""Every `CERTSVC_*` variable with a bad value stops any command with one line naming the
variable, what is wrong and a good value (exit 2) — never a traceback, never the value."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from certsvc.cli import main
from certsvc.settings import Settings, reset_settings
from server_support import CERTSVC

# A bad value for each setting that has rules; the others accept any text or path.
BAD_VALUES = {
    "hsm_simulation": "maybe",
    "hsm_profile": "feitian",
    "pin_max_tries": "abc",
    "hsm_latency_ms": "-1",
    "public_base_url": "127.0.0.1:8000",
    "audit_checkpoint_events": "0",
    "audit_checkpoint_seconds": "soon",
    "login_attempts_per_minute": "ten",
    "verify_rate_per_minute": "0",
    "redis_url": "cache.internal:6380",
    "trusted_proxies": "10.0.0.300",
    "system_hosts": "http://rdjg.jszg.edu.cn/",
    "body_contacts": "0371-69691697;" * 200,
    "log_format": "xml",
    "log_level": "verbose",
    "body_code": "41",
    "body_name": "x",
    "api_token_days": "1000",
    "request_max_skew_seconds": "5",
    "signing_session_minutes": "0",
    "signing_idle_minutes": "-3",
    "office_hours_start": "24",
    "office_hours_end": "0",
    "reveal_spike": "0",
    "console_idle_minutes": "0",
    "console_absolute_minutes": "2000",
    "vault_key_cache_seconds": "-1",
    "vault_reveal_limit": "0",
    "vault_reveal_window_minutes": "1e9",
    "print_reveal_limit": "many",
    "vault_lookup_limit": "0",
    "vault_lookup_window_minutes": "-5",
    "vault_lookup_alert_misses": "few",
    "print_reveal_window_minutes": "0",
    "vault_rotation_grace_seconds": "never",
    "password_hash_profile": "fast",
    "trust_anchors": "sha256:not-a-fingerprint",
    "audit_witnesses": '[{"url": "ftp://w.example", "vkey": "w+00000000+AAAA"}]',
    "audit_witness_quorum": "-1",
    "relay_batch": "0",
    "relay_interval_seconds": "0",
    "relay_max_backoff_seconds": "forever",
    "relay_lag_alert_seconds": "-1",
    "public_max_replica_lag_seconds": "0",
    "relay_keep_relayed": "-1",
    "objection_workdays": "0",
}
FREE = {
    "home",
    "database_url",
    "public_database_url",
    "pkcs11_module",
    "service_pins_path",
    "audit_anchor_dir",
    "audit_tiles_dir",
    "public_static_dir",
}


def test_every_setting_with_rules_has_a_bad_value_tried() -> None:
    """A new setting must join one list or the other, so the test below covers it."""
    assert set(Settings.model_fields) == set(BAD_VALUES) | FREE


@pytest.mark.parametrize(("field", "value"), sorted(BAD_VALUES.items()))
def test_a_bad_value_stops_the_command_in_one_line(
    field: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    variable = f"CERTSVC_{field.upper()}"
    monkeypatch.setenv("CERTSVC_HOME", str(tmp_path))
    monkeypatch.setenv(variable, value)
    reset_settings()
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["hsm", "status"])
    finally:
        reset_settings()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"certsvc: error: {variable}: ")
    assert f"(e.g. {variable}=" in err
    if len(value) > 2:  # the value itself is never repeated back
        assert value not in err.removeprefix(f"certsvc: error: {variable}: ")
    assert not any(path.is_file() for path in tmp_path.rglob("*"))  # nothing was written


@pytest.mark.parametrize(
    ("witnesses", "quorum", "said"),
    [
        ("[]", "1", "CERTSVC_AUDIT_WITNESS_QUORUM: more cosignatures than witnesses"),
        ('[{"url": "https://w.example", "vkey": "w+00000000+AAAA"}]', "0", "witness vkey"),
    ],
)
def test_a_witness_quorum_no_witnesses_can_meet_is_refused(
    witnesses: str,
    quorum: str,
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CERTSVC_AUDIT_WITNESSES", witnesses)
    monkeypatch.setenv("CERTSVC_AUDIT_WITNESS_QUORUM", quorum)
    _refused_together(said, tmp_path, monkeypatch, capsys)


def _refused_together(
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Settings each good alone, refused together: any command stops at once (exit 2), one
    line saying `said`."""
    monkeypatch.setenv("CERTSVC_HOME", str(tmp_path))
    reset_settings()
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["hsm", "status"])
    finally:
        reset_settings()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err


def test_the_command_line_says_it_in_one_line_too(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CERTSVC_")},
        "CERTSVC_HOME": str(tmp_path),
        "CERTSVC_HSM_SIMULATION": "maybe",
        "CERTSVC_PUBLIC_BASE_URL": "127.0.0.1:8000",
    }
    done = subprocess.run(
        [CERTSVC, "hsm", "status"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "CERTSVC_HSM_SIMULATION: " in done.stderr and "CERTSVC_PUBLIC_BASE_URL: " in done.stderr


@pytest.mark.parametrize(
    "url", ["https://verify.example.edu.cn", "http://127.0.0.1:8000", "https://h.example/base/"]
)
def test_good_base_urls_are_kept_without_a_trailing_slash(url: str) -> None:
    assert Settings(public_base_url=url).public_base_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("start", "end", "said"),
    [
        ("18", "8", "CERTSVC_OFFICE_HOURS_START must be before CERTSVC_OFFICE_HOURS_END"),
        ("9", "25", "CERTSVC_OFFICE_HOURS_END"),
    ],
)
def test_office_hours_that_hold_no_hour_are_refused(
    start: str,
    end: str,
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CERTSVC_OFFICE_HOURS_START", start)
    monkeypatch.setenv("CERTSVC_OFFICE_HOURS_END", end)
    _refused_together(said, tmp_path, monkeypatch, capsys)
