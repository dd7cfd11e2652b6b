"""Log lines as Lambda's level filter reads them: a warning stays a warning under logLevel WARN."""

from __future__ import annotations

import json
import logging

import pytest

from handler.logs import JsonFormatter, rfc3339
from tests.support.lambda_logs import kept_at, level_lambda_reads


def _line(level: int, created: float = 1_764_556_610.25) -> str:
    record = logging.LogRecord("bridge", level, __file__, 1, "event.failed", None, None)
    record.created = created
    return JsonFormatter().format(record)


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARN"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "FATAL"),
    ],
)
def test_lambda_reads_each_line_at_its_own_level(level: int, name: str) -> None:
    line = _line(level)
    assert level_lambda_reads(line) == name
    assert kept_at(line, name)


def test_a_warning_survives_a_warn_filter_and_an_info_line_does_not() -> None:
    assert kept_at(_line(logging.WARNING), "WARN")
    assert not kept_at(_line(logging.INFO), "WARN")


def test_the_timestamp_is_rfc3339_in_utc_with_milliseconds() -> None:
    assert json.loads(_line(logging.INFO))["timestamp"] == "2025-12-01T02:36:50.250Z"
    assert rfc3339(0.9999) == "1970-01-01T00:00:00.999Z"


def test_a_line_without_a_timestamp_is_info_to_lambda_whatever_it_says() -> None:
    """Why the field matters: the rule the tests hold the handler's lines to."""
    assert level_lambda_reads(json.dumps({"level": "ERROR", "time": "2026-12-01"})) == "INFO"
