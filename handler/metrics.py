"""CloudWatch metrics as Embedded Metric Format lines on stdout: no API call, no latency.

CloudWatch Logs turns each line into metric data points. Every metric the handler may emit is
named in ``METRICS`` (the stack's dashboard and alarms are built from the same names, and a
test holds them to it). One namespace per stack, one dimension (the stack) and, for
failures, their kind: the metric count, and its monthly cost, stays small. No PSID and no
text ever goes into a dimension or a property.

Lambda filters JSON log lines by their ``level`` before they are stored; a line without one,
or without an RFC 3339 ``timestamp``, counts as INFO and would vanish under ``logLevel:
WARN``. Metric lines carry both, with the configured level itself, so the filter always lets
them through.

The code counts with ``add(name)`` wherever it is; ``lambda_handler`` opens one ``Batch``
per invocation (``collecting``) and writes it once at the end: a webhook delivery is one
line, a queue batch one line (plus one per failure kind). Nothing is counted outside it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from .logs import rfc3339

NAMESPACE_PREFIX = "MessengerBridge"
STACK_DIMENSION = "Stack"
KIND_DIMENSION = "Kind"
MAX_VALUES = 100  # EMF's limit of values in one metric's array


@dataclass(frozen=True)
class Metric:
    unit: str
    by_kind: bool = False  # also emitted per kind (Failed by model, send, token, quota...)
    doc: str = ""


# Every metric the handler emits; infra/monitoring.py builds the dashboard and alarms from it.
METRICS: dict[str, Metric] = {
    "MessagesReceived": Metric("Count", doc="events the webhook put on the queue"),
    "Answered": Metric("Count", doc="questions the model answered and the bot sent"),
    "RefusedByLimit": Metric("Count", doc="questions over the daily limit or budget"),
    "Blocked": Metric("Count", doc="messages from blocked people"),
    "Failed": Metric("Count", by_kind=True, doc="failures, by kind: model, send, token, quota"),
    "Retries": Metric("Count", doc="messages handed back to the queue to try again"),
    "ReplyLatency": Metric("Milliseconds", doc="from the webhook to the reply's last bubble"),
    "ModelLatency": Metric("Milliseconds", doc="one model call"),
    "TokensIn": Metric("Count", doc="input tokens the provider billed"),
    "TokensOut": Metric("Count", doc="output tokens (reasoning included)"),
    "EstimatedCost": Metric("None", doc="dollars, from the price table"),
    "Transcriptions": Metric("Count", doc="voice messages transcribed"),
    "Images": Metric("Count", doc="photos sent to the model"),
    "HumanTakeovers": Metric("Count", doc="pauses begun: a reply by hand, /human, /pause"),
    "SpendCapReached": Metric("Count", doc="questions refused by the page's daily spend cap"),
    "ColdStarts": Metric("Count", doc="invocations that started a new container"),
    "WebhookErrors": Metric("Count", doc="webhook answers of 5xx, which Meta holds against it"),
}
# model: the model failed; send: the Send API did; token: it refused the page token (190);
# quota: OpenAI's insufficient_quota; unsupported: the model refused a parameter; store:
# DynamoDB or SQS failed the worker; crash: anything else the worker did not expect.
FAILURE_KINDS = ("model", "send", "token", "quota", "unsupported", "store", "crash")
LOGGER = "bridge.metrics"


def namespace(stack: str) -> str:
    return f"{NAMESPACE_PREFIX}/{stack}"


@dataclass
class Batch:
    """Values gathered over one invocation, written as one line (the webhook writes at most
    one per delivery)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    kinds: dict[tuple[str, str], float] = field(default_factory=dict)
    # The people of a queue batch are answered on threads of their own.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, value: float = 1.0, kind: str | None = None) -> None:
        if name not in METRICS:
            raise KeyError(f"not a metric of ours: {name}")
        if kind is not None and (not METRICS[name].by_kind or kind not in FAILURE_KINDS):
            raise KeyError(f"{name} has no kind {kind!r}")
        with self._lock:
            if kind is not None:
                self.kinds[(name, kind)] = self.kinds.get((name, kind), 0.0) + value
            values = self.values.setdefault(name, [])
            if METRICS[name].unit == "Count" and values:
                values[0] += value  # a count is one number: the sum
            elif len(values) < MAX_VALUES:
                values.append(value)

    def __bool__(self) -> bool:
        return bool(self.values)


def lines(batch: Batch, stack: str, level: str, now_ms: int | None = None) -> list[str]:
    """The EMF lines for ``batch``: one for the stack's metrics, one per failure kind."""
    if not batch:
        return []
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    out = [
        _line(stamp, stack, level, {name: values for name, values in batch.values.items()}, None)
    ]
    for (name, kind), value in sorted(batch.kinds.items()):
        out.append(_line(stamp, stack, level, {name: [value]}, kind))
    return out


def _line(
    stamp: int, stack: str, level: str, values: Mapping[str, Sequence[float]], kind: str | None
) -> str:
    dimensions = [STACK_DIMENSION] + ([KIND_DIMENSION] if kind else [])
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": stamp,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace(stack),
                    "Dimensions": [dimensions],
                    "Metrics": [
                        {"Name": name, "Unit": METRICS[name].unit} for name in sorted(values)
                    ],
                }
            ],
        },
        "timestamp": rfc3339(stamp / 1000),
        "level": level,
        STACK_DIMENSION: stack,
        **({KIND_DIMENSION: kind} if kind else {}),
    }
    for name, series in values.items():
        document[name] = series[0] if len(series) == 1 else list(series)
    return json.dumps(document, separators=(",", ":"))


def write(batch: Batch, stack: str | None, level: str, out: TextIO | None = None) -> None:
    """Print the lines (to ``out``, else through the ``bridge.metrics`` logger to stdout):
    Lambda sends stdout to CloudWatch Logs, which reads the metrics. Without a stack (local
    runs) nothing is written."""
    if not stack or not batch:
        return
    if out is not None:
        for line in lines(batch, stack, level):
            out.write(line + "\n")
        out.flush()
        return
    logger = line_logger()
    for line in lines(batch, stack, level):
        logger.info(line)


class _Lines(logging.StreamHandler):  # type: ignore[type-arg]
    """Each record's message as it is, one line on stdout."""


def line_logger() -> logging.Logger:
    """Lines as they are, whatever the handler's log level (their own ``level`` field is
    what Lambda filters on), and not through the ``bridge`` logger's JSON formatter."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, _Lines) for h in logger.handlers):
        handler = _Lines(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    return logger


_current: contextvars.ContextVar[Batch | None] = contextvars.ContextVar("metrics", default=None)


def add(name: str, value: float = 1.0, kind: str | None = None) -> None:
    """Count into this invocation's batch; outside an invocation, nothing happens."""
    batch = _current.get()
    if batch is not None:
        batch.add(name, value, kind)


@contextmanager
def collecting() -> Iterator[Batch]:
    """One invocation's batch: what ``add`` counts inside (and in threads started from a
    copy of this context) lands in it."""
    batch = Batch()
    token = _current.set(batch)
    try:
        yield batch
    finally:
        _current.reset(token)
