"""Warm webhook latency: one process, secrets and clients already there, many signed POSTs.

Each POST goes through ``handler.app.lambda_handler`` exactly as a Function URL event; its
hand-off is one SQS SendMessageBatch over loopback to the FIFO queue in moto (a child
process), wired by ``local.harness.Harness`` with no poller, so the queue only fills (it is
purged between rounds, untimed, so that moto's deduplication scan stays short). Every
delivery has a message id of its own, so none is dropped as a repeat. The SendMessageBatch
alone is timed too, and the CPU-only part (decoding the event, checking the signature,
parsing the body, routing, logging and the metric line, with the hand-off stubbed) in
microseconds. ``METRICS_STACK`` is set, as in a deployed stack, so each delivery writes its one
Embedded Metric Format line: its time is in the figures, its bytes are counted apart.
"""

from __future__ import annotations

import logging
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import (
    APP_SECRET,
    METRICS,
    METRICS_STACK,
    CountingSink,
    harness,
    is_metric_line,
    moto_server,
    signed_post,
    summary,
    webhook_body,
)

PURGE_EVERY = 250  # messages between purges of the queue


@contextmanager
def handler_logs_to(sink: CountingSink) -> Iterator[None]:
    """Send the handler's log lines (JSON on stdout in Lambda) and its metric lines (EMF, on
    stdout through their own logger, ``handler.metrics.LOGGER``) to ``sink`` meanwhile: both
    are what CloudWatch Logs ingests and bills."""
    from handler import metrics

    # The metric logger's line handler is made on the first line written; made now, so that
    # its lines come here too instead of to the console.
    metrics.line_logger()
    handlers = [
        h
        for name in ("bridge", metrics.LOGGER)
        for h in logging.getLogger(name).handlers
        if isinstance(h, logging.StreamHandler)
    ]
    previous = [h.setStream(sink) for h in handlers]  # type: ignore[arg-type]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)


def per_call_us(fn: Callable[[], Any], repeat: int = 7, budget: float = 0.2) -> dict[str, float]:
    """Median and best of ``repeat`` timeit runs, each ~``budget`` s, per call in us."""
    timer = timeit.Timer(fn)
    number = 1
    while timer.timeit(number) < budget / 10:
        number *= 2
    number *= 10
    runs = [t / number * 1e6 for t in timer.repeat(repeat, number)]
    runs.sort()
    return {"median": runs[len(runs) // 2], "best": runs[0], "loops": number}


class _NoHandoff:
    def enqueue(self, events: Any) -> int:
        return len(events)


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    from handler import app, events, handoff, metrics, signature, webhook
    from handler.clients import aws as aws_client

    requests = 300 if quick else 2000
    sink = CountingSink(keep=True)
    with (
        moto_server() as aws_url,
        harness(
            aws_url, poll=False, use_model=False, use_graph=False, settings=METRICS
        ) as stand_ins,
        handler_logs_to(sink),
    ):
        sqs, queue_url = stand_ins.sqs, stand_ins.queue_url

        def purge() -> None:
            sqs.purge_queue(QueueUrl=queue_url)

        def post(psid: str) -> dict[str, Any]:
            return signed_post(webhook_body(psid, "Hello?"))

        first = post("300000000000000")
        assert app.lambda_handler(first, None)["statusCode"] == 200  # secrets, clients
        for i in range(50):  # warm the connection pools and caches
            app.lambda_handler(post(f"30000000000{i:04d}"), None)
        purge()
        progress(f"  warm: {requests} signed POSTs")
        prepared = [post(f"30000000000{i % 50:04d}") for i in range(requests)]
        took: list[float] = []
        for index, event in enumerate(prepared):
            if index and index % PURGE_EVERY == 0:
                purge()
            start = time.perf_counter_ns()
            response = app.lambda_handler(event, None)
            took.append((time.perf_counter_ns() - start) / 1e6)
            if response["statusCode"] != 200:
                raise RuntimeError(f"webhook answered {response['statusCode']}")
        log_bytes = sink.bytes
        metric_lines = [line for line in sink.lines if is_metric_line(line)]
        sink.keep = False
        sink.lines.clear()
        purge()

        # The hand-off's one call alone, straight from boto3, with the handler's entry.
        client = aws_client("sqs")
        send_ms: list[float] = []
        batches = [
            handoff.entries(events.parse_webhook(webhook_body(f"31000000000{i % 50:04d}", "Hi")))
            for i in range(min(requests, 500))
        ]
        for index, entries in enumerate(batches):
            if index and index % PURGE_EVERY == 0:
                purge()
            start = time.perf_counter_ns()
            answer = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            send_ms.append((time.perf_counter_ns() - start) / 1e6)
            if answer.get("Failed"):
                raise RuntimeError(f"SendMessageBatch refused: {answer['Failed']}")

        progress("  warm: CPU-only part")
        body = webhook_body("300000000000001", "Hello?")
        event = signed_post(body)
        header = event["headers"]["x-hub-signature-256"]
        request = events.http_request(event)
        runtime = app.runtime()
        secrets = runtime.secrets
        no_hand_off: Callable[[list[Any]], None] = lambda _events: None  # noqa: E731
        runtime.handoff = _NoHandoff()  # type: ignore[misc]  # over the cached property
        delivery = metrics.Batch()  # what one delivery counts
        delivery.add("MessagesReceived")
        try:
            cpu = {
                "http_request": per_call_us(lambda: events.http_request(event)),
                "signature": per_call_us(lambda: signature.is_valid(body, header, APP_SECRET)),
                "parse_webhook": per_call_us(lambda: events.parse_webhook(body)),
                "handoff_entries": per_call_us(lambda: handoff.entries(events.parse_webhook(body))),
                "route_no_hand_off": per_call_us(
                    lambda: webhook.route(request, secrets, no_hand_off)
                ),
                "metric_line": per_call_us(
                    lambda: metrics.write(delivery, METRICS_STACK, runtime.settings.log_level)
                ),
                "lambda_handler_no_hand_off": per_call_us(lambda: app.lambda_handler(event, None)),
            }
        finally:
            del runtime.handoff  # the cached property again
    return {
        "requests": requests,
        "body_bytes": len(body),
        "latency_ms": summary(took),
        "send_only_ms": summary(send_ms),
        "cpu_us": cpu,
        "log_bytes_per_request": log_bytes / (requests + 51),
        "metric_lines_per_request": len(metric_lines) / (requests + 51),
        "metric_bytes_per_request": sum(len(line.encode()) + 1 for line in metric_lines)
        / (requests + 51),
    }
