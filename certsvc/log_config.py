"""How the server's log lines look: one JSON object per line (the default, for a log collector)
or plain text (for a person at a terminal), both redacted a second time as a whole line.

`log_redaction` rewrites each record's message when it is made; a traceback or a field passed
in `extra=` is only turned into text here, so each of them goes through `redact` as well —
before serialising: redacting a finished JSON line could eat an escape and break the line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from certsvc.log_redaction import redact

# The project's packages sit side by side, so their loggers are not under one tree.
PROJECT_LOGGERS = (
    "audit",
    "certify",
    "certsvc",
    "common",
    "hsm_sim",
    "printing",
    "signer",
    "vault",
    "verify",
)
LogFormat = Literal["json", "text"]
LogLevel = Literal["debug", "info", "warning", "error"]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
# uvicorn's copy of its message with terminal colour escapes: noise in a log collector.
_DROPPED_ATTRIBUTES = frozenset({"color_message"})
# Line breaks JSON leaves raw outside ASCII; escaped, so that no reader splits a line on them.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


class RedactingTextFormatter(logging.Formatter):
    """`time level logger: message`, traceback included, redacted as a whole."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `time` (UTC, ISO 8601), `level`, `logger`, `message`,
    `process`, `exception` when there is one, and the record's `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES | _DROPPED_ATTRIBUTES and name not in entry:
                entry[name] = _redacted(value)
        return json.dumps(entry, ensure_ascii=False).translate(_LINE_BREAKS)


def _redacted(value: object) -> JsonValue:
    """A field passed in `extra=`, as JSON, with every string in it redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {redact(str(k)): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(v) for v in value]
    return redact(str(value))


def log_config(log_format: LogFormat, level: LogLevel) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the server (uvicorn's `log_config` takes it as is):
    every logger, uvicorn's included, writes through one redacting formatter to stderr.

    Libraries stay at WARNING: at INFO, SQLAlchemy's engine would log every statement."""
    formatter = "certsvc.log_config." + (
        "JsonFormatter" if log_format == "json" else "RedactingTextFormatter"
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"certsvc": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "certsvc",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": level.upper()}
            for name in (*PROJECT_LOGGERS, "uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
