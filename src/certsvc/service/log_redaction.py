"""Keep API tokens out of the server's logs even when a client puts one where it must not go.

The service refuses a token in a URL, but uvicorn's access log writes the request line before
anyone could refuse it. This filter rewrites such records: any `cst_…` token and the value of any
token-like query parameter become `[redacted]`.
"""

from __future__ import annotations

import logging
import re

TOKEN_QUERY_NAMES = ("token", "access_token", "api_token", "apikey", "api_key", "auth", "bearer")
TOKEN_TEXT_RE = re.compile(r"cst_[A-Za-z0-9_-]+")
TOKEN_QUERY_RE = re.compile(r"(?i)([?&](?:" + "|".join(TOKEN_QUERY_NAMES) + r")=)[^&\s\"]*")
REDACTED = "[redacted]"
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """`text` with every API token and token-like query value replaced."""
    return TOKEN_QUERY_RE.sub(r"\1" + REDACTED, TOKEN_TEXT_RE.sub(REDACTED, text))


class RedactTokensFilter(logging.Filter):
    """Rewrites a record's message and string arguments through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Attach the filter to uvicorn's loggers, which write request lines; idempotent."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokensFilter) for f in logger.filters):
            logger.addFilter(RedactTokensFilter())
