"""JSON-lines logging with the request id and event kind on every line, and secrets redacted.

Message text and secrets are never passed to the logger by the code; the redaction filter is a
second line of defence for anything that slips through (an exception's text, say).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "log_context", default=None
)
_secrets: set[str] = set()
REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6
# Lambda's level names: its application log level filter and CloudWatch read these.
LAMBDA_LEVEL_NAMES = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def register_secrets(*values: str | None) -> None:
    """Remember values that must never be written, whatever carries them to the logger."""
    _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def rfc3339(seconds: float) -> str:
    """``2026-12-01T02:16:50.123Z``: the time format Lambda's log-level filter accepts."""
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            # Lambda reads "timestamp" (RFC 3339); without it the line counts as INFO and a
            # level filter of WARN or above would drop warnings and errors alike.
            "timestamp": rfc3339(record.created),
            "level": LAMBDA_LEVEL_NAMES.get(record.levelname, record.levelname),
            "message": record.getMessage(),
            **(_context.get() or {}),
            **getattr(record, "fields", {}),
        }
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception text can carry request URLs and payloads.
            line["exception"] = record.exc_info[0].__name__
        return redact(json.dumps(line, default=str, ensure_ascii=False))


def get_logger(level: str = "INFO") -> logging.Logger:
    logger = logging.getLogger("bridge")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
    return logger


class Log:
    """``log.info("webhook.accepted", events=3)``: an event name and structured fields."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _emit(self, level: int, event: str, fields: dict[str, Any], exc: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields, exc=True)


log = Log(get_logger())
