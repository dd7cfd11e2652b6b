"""Warm webhook latency: one process, secrets and clients already there, many signed POSTs.

Each POST goes through ``handler.app.lambda_handler`` exactly as a Function URL event, with
the hand-off (lambda:Invoke) over loopback to the Invoke stand-in, whose function is a
no-op. The CPU-only part (decoding the event, checking the signature, parsing the body,
routing and logging with the hand-off stubbed) is timed separately in microseconds.
"""

from __future__ import annotations

import logging
import os
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import (
    APP_SECRET,
    CountingSink,
    handler_env,
    local_aws,
    signed_post,
    summary,
    webhook_body,
)


@contextmanager
def handler_logs_to(sink: CountingSink) -> Iterator[None]:
    """Send the handler's log lines (JSON on stdout in Lambda) to ``sink`` meanwhile."""
    handlers = [
        h for h in logging.getLogger("bridge").handlers if isinstance(h, logging.StreamHandler)
    ]
    previous = [h.setStream(sink) for h in handlers]  # type: ignore[arg-type]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    from handler import app, events, signature, webhook
    from handler.clients import aws as aws_client
    from local.invoke import LambdaInvokeStandIn

    requests = 300 if quick else 2000
    with local_aws(True) as aws:
        invoke = LambdaInvokeStandIn(lambda _event, _context: None, retry_delay=0.05).start()
        sink = CountingSink(keep=False)
        try:
            with environment(handler_env(aws, invoke.url)), handler_logs_to(sink):
                app.reset()
                bodies = [webhook_body(f"30000000000{i % 50:04d}", "Hello?") for i in range(50)]
                first = signed_post(bodies[0])
                assert app.lambda_handler(first, None)["statusCode"] == 200  # secrets, clients
                for _ in range(50):  # warm the connection pools and caches
                    app.lambda_handler(signed_post(bodies[1]), None)
                progress(f"  warm: {requests} signed POSTs")
                prepared = [signed_post(bodies[i % len(bodies)]) for i in range(requests)]
                took: list[float] = []
                for event in prepared:
                    start = time.perf_counter_ns()
                    response = app.lambda_handler(event, None)
                    took.append((time.perf_counter_ns() - start) / 1e6)
                    if response["statusCode"] != 200:
                        raise RuntimeError(f"webhook answered {response['statusCode']}")
                log_bytes = sink.bytes

                # The hand-off's two calls alone, straight from boto3: the inbox write and
                # the Invoke.
                lam = aws_client("lambda")
                payload = b'{"messenger_bridge_work":1,"drain":[],"events":[]}'
                inbox = app.runtime().inbox
                one = events.parse_webhook(bodies[2])
                post_ms: list[float] = []
                invoke_ms: list[float] = []
                for _ in range(min(requests, 500)):
                    start = time.perf_counter_ns()
                    inbox.post(one)
                    post_ms.append((time.perf_counter_ns() - start) / 1e6)
                    start = time.perf_counter_ns()
                    lam.invoke(
                        FunctionName="messenger-bridge-bench",
                        InvocationType="Event",
                        Payload=payload,
                    )
                    invoke_ms.append((time.perf_counter_ns() - start) / 1e6)

                progress("  warm: CPU-only part")
                body = bodies[0]
                event = signed_post(body)
                header = event["headers"]["x-hub-signature-256"]
                request = events.http_request(event)
                secrets = app.runtime().secrets
                no_hand_off: Callable[[list[Any]], None] = lambda _events: None  # noqa: E731
                original_dispatch = app.dispatch
                app.dispatch = lambda _inbox, _events: None
                try:
                    cpu = {
                        "http_request": per_call_us(lambda: events.http_request(event)),
                        "signature": per_call_us(
                            lambda: signature.is_valid(body, header, APP_SECRET)
                        ),
                        "parse_webhook": per_call_us(lambda: events.parse_webhook(body)),
                        "route_no_hand_off": per_call_us(
                            lambda: webhook.route(request, secrets, no_hand_off)
                        ),
                        "lambda_handler_no_hand_off": per_call_us(
                            lambda: app.lambda_handler(event, None)
                        ),
                    }
                finally:
                    app.dispatch = original_dispatch
                    app.reset()
        finally:
            invoke.stop()
    return {
        "requests": requests,
        "body_bytes": len(bodies[0]),
        "latency_ms": summary(took),
        "invoke_only_ms": summary(invoke_ms),
        "post_only_ms": summary(post_ms),
        "cpu_us": cpu,
        "log_bytes_per_request": log_bytes / (requests + 51),
    }
