"""Defence in depth: personal values and secrets logged on purpose come out redacted, from any
logger, and what must stay readable (certificate numbers, token ids) does."""

from __future__ import annotations

import logging

import pytest

from certsvc.service.log_redaction import install_log_redaction

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
