"""A pytest plugin that reads every metric line the handler writes in the test session.

Each line must be a valid Embedded Metric Format document (``tests.support.emf``), name only
metrics of ``handler.metrics.METRICS`` with their declared units, keep to the stack's
dimension (and ``Kind``, one of ``FAILURE_KINDS``, for failures) and carry nothing else: no
PSID, no text. A bad line fails the run, whatever the tests said; the summary says how many
lines were read and which metrics the suite saw.

Registered in ``tests/conftest.py`` next to the log audit.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from handler.metrics import FAILURE_KINDS, KIND_DIMENSION, LOGGER, METRICS, STACK_DIMENSION
from tests.support import emf

ALLOWED_FIELDS = {"_aws", "timestamp", "level", STACK_DIMENSION, KIND_DIMENSION}


def line_problems(line: str) -> list[str]:
    """What in one metric line breaks the specification or the bridge's own rules."""
    found = emf.problems(line)
    if found:
        return found
    document = json.loads(line)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimensions in directive["Dimensions"]:
            if dimensions not in ([STACK_DIMENSION], [STACK_DIMENSION, KIND_DIMENSION]):
                found.append(f"dimensions {dimensions}: only the stack, and the kind")
        for metric in directive["Metrics"]:
            declared = METRICS.get(metric["Name"])
            if declared is None:
                found.append(f"{metric['Name']} is not in handler.metrics.METRICS")
            elif metric["Unit"] != declared.unit:
                found.append(f"{metric['Name']}: unit {metric['Unit']}, declared {declared.unit}")
    kind = document.get(KIND_DIMENSION)
    if kind is not None and kind not in FAILURE_KINDS:
        found.append(f"kind {kind!r} is not one of FAILURE_KINDS")
    names = {m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    extra = set(document) - ALLOWED_FIELDS - names
    if extra:
        found.append(f"fields beyond the metrics and dimensions: {sorted(extra)}")
    return found


class MetricAudit(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.lines.append(record.getMessage())

    def problems(self) -> list[tuple[str, str]]:
        with self._lock:
            lines = list(self.lines)
        return [(line, problem) for line in lines for problem in line_problems(line)]

    def seen(self) -> set[str]:
        with self._lock:
            lines = list(self.lines)
        return {name for line in lines for name in json.loads(line) if name in METRICS}


_audit: MetricAudit | None = None
_problems: list[tuple[str, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    global _audit
    if _audit is None:
        _audit = MetricAudit()
        logging.getLogger(LOGGER).addHandler(_audit)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _audit is None:
        return
    _problems[:] = _audit.problems()
    if _problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _audit is None:
        return
    if _problems:
        terminalreporter.section("metric audit: INVALID METRIC LINES", sep="!", red=True)
        for line, problem in _problems[:30]:
            terminalreporter.write_line(f"{problem}: {line[:200]}", red=True)
        terminalreporter.write_line("the run fails (exit status 1).", red=True)
    elif _audit.lines:
        terminalreporter.write_line(
            f"metric audit: {len(_audit.lines)} EMF lines read, all valid; metrics seen: "
            f"{len(_audit.seen())} of {len(METRICS)}."
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    global _audit
    if _audit is not None:
        logging.getLogger(LOGGER).removeHandler(_audit)
        _audit = None
