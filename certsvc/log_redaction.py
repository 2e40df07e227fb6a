"""Keep secrets and personal values out of the server's logs, whoever logs them.

The service refuses a token in a URL, but uvicorn's access log writes the request line before
anyone could refuse it; and a library or a careless message could log a value it should not.
Every log record of the process is rewritten when it is made: any `cst_…` API token, the value
of any token-like query parameter or of a `pin=`/`password=` pair, and anything shaped like a
resident ID number, a mainland mobile number or an e-mail address become `[redacted]`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

TOKEN_QUERY_NAMES = ("token", "access_token", "api_token", "apikey", "api_key", "auth", "bearer")
TOKEN_TEXT_RE = re.compile(r"cst_[A-Za-z0-9_-]+")
TOKEN_QUERY_RE = re.compile(r"(?i)([?&](?:" + "|".join(TOKEN_QUERY_NAMES) + r")=)[^&\s\"]*")
SECRET_PAIR_RE = re.compile(r"(?i)\b((?:so_)?pin|password|passwd|secret)(\s*[=:]\s*)[^\s,;&\"']+")
PERSONAL_RE = re.compile(
    r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])"  # resident ID number
    r"|(?<!\d)(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)"  # mainland mobile
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail
)
REDACTED = "[redacted]"
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """`text` with every token, secret pair and personal value replaced."""
    text = TOKEN_QUERY_RE.sub(r"\1" + REDACTED, TOKEN_TEXT_RE.sub(REDACTED, text))
    text = SECRET_PAIR_RE.sub(r"\1\2" + REDACTED, text)
    return PERSONAL_RE.sub(REDACTED, text)


class RedactTokensFilter(logging.Filter):
    """Rewrites a record's message and string arguments through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)


def install_log_redaction() -> None:
    """Redact every record the process makes, at creation (so no handler or logger is missed),
    and keep the filter on uvicorn's loggers, which write request lines; idempotent."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "certsvc_redacting", False):

        def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            _redact_record(record)
            return record

        redacting.certsvc_redacting = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(redacting)
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokensFilter) for f in logger.filters):
            logger.addFilter(RedactTokensFilter())
