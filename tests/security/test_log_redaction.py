"""Defence in depth: personal values and secrets logged on purpose come out redacted, from any
logger, and what must stay readable (certificate numbers, token ids) does."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import httpx
import pytest

from certsvc.log_config import JsonFormatter
from certsvc.log_redaction import install_log_redaction
from certsvc.settings import Settings
from init_cache import initialised
from server_support import serving

SECRETS = {
    "id number": "41130219900307123X",
    "mobile": "+86 138-1234-5678",
    "e-mail": "ouyang.minghua@example.com",
    "api token": "cst_0123456789abcdef_Zm9vYmFyYmF6cXV4",
}


@pytest.mark.parametrize("logger_name", ["certsvc.anything", "sqlalchemy.engine", "some.library"])
def test_values_logged_on_purpose_are_redacted(
    logger_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    install_log_redaction()
    caplog.set_level(logging.INFO)
    logger = logging.getLogger(logger_name)
    for kind, value in SECRETS.items():
        logger.warning("careless %s: %s", kind, value)
    logger.warning("pin=13572468 so_pin: 97531864 password=hunter2hunter2")
    logger.warning("issued certificate 20264100000000001 (token id 0123456789abcdef)")
    text = caplog.text
    for value in [*SECRETS.values(), "13572468", "97531864", "hunter2hunter2"]:
        assert value not in text
    assert text.count("[redacted]") >= len(SECRETS) + 3
    assert "20264100000000001" in text and "0123456789abcdef" in text


def test_json_lines_carry_fields_and_hide_values_in_tracebacks_and_extras() -> None:
    install_log_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("certsvc.test_json_lines")
    logger.addHandler(handler)
    try:
        logger.warning("careless %s", SECRETS["mobile"], extra={"applicant": SECRETS["e-mail"]})
        try:
            raise ValueError(f"bad value {SECRETS['id number']}")
        except ValueError:
            logger.exception("import of certificate %s failed", "20264100000000001")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["level"] for line in lines] == ["warning", "error"]
    assert lines[0]["logger"] == "certsvc.test_json_lines"
    assert lines[0]["applicant"] == "[redacted]"
    assert lines[1]["message"] == "import of certificate 20264100000000001 failed"
    assert "ValueError: bad value [redacted]" in lines[1]["exception"]
    assert datetime.fromisoformat(lines[0]["time"]).tzinfo is not None
    for value in SECRETS.values():
        assert value not in stream.getvalue()


# What each redaction pattern catches, and the characters JSON must escape around it.
PATTERN_SAMPLES = [
    *SECRETS.values(),
    "/api/v1/certify/certificates/1&token=a",
    "/x?access_token=abc",
    "pin=13572468",
    "password: hunter2hunter2",
]
AROUND = ['"', "\\", "\n", '\\"', "\t", "'", "\u2028", "\x85"]


def test_every_json_line_parses_whatever_surrounds_a_redacted_value() -> None:
    """Redaction after serialising once ate the backslash of an escaped quote (`token=a\\"x`)
    and left a line no collector could parse: each value is redacted before it is encoded."""
    install_log_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("certsvc.test_json_escapes")
    logger.addHandler(handler)
    written = []
    try:
        for sample in PATTERN_SAMPLES:
            for before in AROUND:
                for after in AROUND:
                    text = f"{before}{sample}{after}x"
                    written.append(text)
                    logger.warning("seen %s", text, extra={"field": text, "items": [text]})
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(written)
    for line in lines:
        entry = json.loads(line)
        assert entry["message"].startswith("seen ") and "[redacted]" in entry["message"]
        assert "[redacted]" in entry["field"] and "[redacted]" in entry["items"][0]
    for value in (*SECRETS.values(), "13572468", "hunter2hunter2"):
        assert value not in stream.getvalue()


def test_json_lines_leave_out_uvicorns_colour_copy() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started", None, None)
    record.color_message = "\x1b[32mStarted\x1b[0m"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Started" and "color_message" not in entry


def test_server_logs_are_json_lines_without_the_values_sent(settings: Settings) -> None:
    initialised(settings)
    password = "pin=13572468"
    with serving() as server:
        for username in ("admin", SECRETS["e-mail"]):
            answer = httpx.post(
                f"{server.base}/api/v1/auth/token",
                json={"username": username, "password": password},
                timeout=10,
            )
            assert answer.status_code == 401
    lines = [json.loads(line) for line in server.output.splitlines() if line.strip()]
    refused = [line for line in lines if line.get("event") == "service.login"]
    assert [line["outcome"] for line in refused] == ["refused", "refused"]
    assert refused[0]["message"].startswith("login failed for admin")
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert password not in server.output and SECRETS["e-mail"] not in server.output
