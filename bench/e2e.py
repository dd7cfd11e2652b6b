"""End to end through the stand-ins: many people writing at once, and one person's flood.

The whole local stack, wired by ``local.harness.Harness``, every hop real HTTP on loopback:
the webhook (``handler.app.lambda_handler``, called by one thread per person), the FIFO
queue and its dead-letter queue in moto (a child process), ``local.event_source.QueuePoller``
standing in for Lambda's event source mapping (batches of ``batchSize``, 1, and at most
``maxConcurrency``, 5, invocations at once: the stack's defaults), which calls
``lambda_handler`` with each batch in threads of this process, DynamoDB and SSM in moto too,
the Send API in the Messenger simulator and the model in ``FakeOpenAI`` answering at once.

Phases:

1. the first message in this process (the worker imports openai & co. on its first batch);
2. the burst: many people send one message each while one person sends a flood of messages
   back to back, all released together; measured per message: the webhook's own time
   (POST -> 200), webhook -> ``typing_on`` and webhook -> reply as the simulator received
   them (its ``at``, ``time.monotonic()``, the clock the POST start is read from); every
   message must get exactly one reply, and each person's replies must come in the order the
   messages were sent;
3. one message at a time, each waited for: uncontended durations of the webhook and of the
   worker's invocations, the AWS requests per answered message (``bench.wire``: botocore
   hooks on every client of this process, the function's apart from the mapping's), the
   DynamoDB request units (item sizes from the table) and the log bytes, which is what
   ``bench.cost`` prices;
4. the keep-warm ping.

``METRICS_STACK`` is set as in a deployed stack, so the handler writes its Embedded Metric
Format lines (one per webhook delivery, one per queue batch, one more per failure kind): they
are logs CloudWatch ingests, counted with the handler's other lines.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from bench.common import (
    METRICS,
    CountingSink,
    harness,
    is_metric_line,
    moto_server,
    signed_post,
    summary,
    webhook_body,
)
from bench.cost import typical_exchange
from bench.warm import handler_logs_to
from bench.wire import AwsCall, by_operation, item_kind, item_size, record_aws, request_units
from handler import replies as replies_text
from handler.defaults import DEFAULTS

_TOKEN = re.compile(r"\[(\w+)\]")
KEEP_WARM_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
# The stack's defaults (Pulumi.yaml): the mapping's batch size and concurrency, the timeout.
BATCH_SIZE: int = DEFAULTS["batchSize"]
MAX_CONCURRENCY: int = DEFAULTS["maxConcurrency"]
FUNCTION_TIMEOUT_S = float(DEFAULTS["timeoutSeconds"])
SETTINGS = {
    **METRICS,  # the metric lines written, as in a deployed stack
    "OPENAI_MAX_RETRIES": "0",
    "OPENAI_TIMEOUT_SECONDS": "10",
    "DAILY_LIMIT": "1000",
}
# What a person's chat never needs from AWS, whatever the design: the aim of the issue.
AIM_FUNCTION_REQUESTS = 6
OLD_DESIGN_REQUESTS = 16


@dataclass
class Sent:
    token: str
    psid: str
    mid: str
    posted: float  # time.monotonic() just before the webhook call
    answered: float  # after it returned
    status: int


class Timings:
    """Durations and sizes of the worker's invocations (the batches the poller hands it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.work: list[float] = []
        self.records: list[int] = []

    def wrap(self, handler: Any) -> Any:
        def timed(event: Any, context: Any) -> Any:
            start = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                with self.lock:
                    self.work.append((time.perf_counter() - start) * 1000)
                    self.records.append(len(event.get("Records") or []))

        return timed

    def clear(self) -> None:
        with self.lock:
            self.work.clear()
            self.records.clear()


def _typing_marks(psids: set[str]) -> Any:
    """Wraps the bot so each typing_on can be tied to the event being handled."""
    from handler.bot import Bot
    from handler.messenger import Messenger

    current = threading.local()
    marks: list[tuple[str, str, float, float]] = []  # event_id, psid, before, after
    lock = threading.Lock()
    original_handle, original_action = Bot.handle, Messenger.sender_action

    def handle(self: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        current.event_id = event.event_id
        try:
            return original_handle(self, event, *args, **kwargs)
        finally:
            current.event_id = None

    def sender_action(self: Any, psid: str, action: str, *args: Any, **kwargs: Any) -> Any:
        before = time.monotonic()
        try:
            return original_action(self, psid, action, *args, **kwargs)
        finally:
            if action == "typing_on" and psid in psids:
                with lock:
                    marks.append((getattr(current, "event_id", ""), psid, before, time.monotonic()))

    Bot.handle, Messenger.sender_action = handle, sender_action  # type: ignore[method-assign]

    def restore() -> None:
        Bot.handle, Messenger.sender_action = original_handle, original_action  # type: ignore[method-assign]

    return marks, restore


def responder(body: dict[str, Any]) -> str:
    from local.model import last_user_text

    return f"Answer to [{last_user_text(body).split(' ', 1)[0]}]: 42."


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    from handler import app

    people, flood = (20, 10) if quick else (100, 30)
    sequential = 10 if quick else 30
    seq_users = max(1, sequential // 5)  # so 4 in 5 messages are from returning users
    flooder = "6" + "0" * 15
    psids = (
        {f"4{u:015d}" for u in range(people)} | {flooder} | {f"5{u:015d}" for u in range(seq_users)}
    )
    timings = Timings()
    sink = CountingSink(keep=True)
    marks, restore = _typing_marks(psids)
    try:
        with (
            moto_server() as aws_url,
            record_aws() as wire,
            harness(
                aws_url,
                settings=SETTINGS,
                handler=timings.wrap(app.lambda_handler),
                batch_size=BATCH_SIZE,
                max_concurrency=MAX_CONCURRENCY,
                function_timeout=FUNCTION_TIMEOUT_S,
            ) as stand_ins,
            handler_logs_to(sink),
        ):
            graph, poller = stand_ins.graph, stand_ins.poller
            stand_ins.model.responder = responder

            # 1. First message in this process: the worker imports openai & co.
            progress("  e2e: first message (worker imports)")
            first = _send(app, "4" + "9" * 15, "w0 first?")
            graph.wait_for_texts(first.psid, 1, timeout=60)
            poller.wait_idle(timeout=60)
            first_worker_ms = timings.work[0]
            first_reply_ms = (_reply_at(graph, first) - first.posted) * 1000
            first_calls = wire.take()

            # 2. The burst: people at once, and one person's flood among them.
            progress(f"  e2e: {people} people x 1 message + a flood of {flood} from one, at once")
            sent: list[Sent] = []
            lock = threading.Lock()
            gate = threading.Barrier(people + 1)

            def person(u: int) -> None:
                gate.wait()
                one = _send(app, f"4{u:015d}", f"p{u:03d} what is {u} + 1?")
                with lock:
                    sent.append(one)

            def flooding() -> None:
                gate.wait()
                for k in range(flood):
                    one = _send(app, flooder, f"f{k:03d} and then {k}?")
                    with lock:
                        sent.append(one)

            timings.clear()
            invocations_before = len(poller.invocations)
            threads = [threading.Thread(target=person, args=(u,)) for u in range(people)]
            threads.append(threading.Thread(target=flooding))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            total = people + flood
            graph.wait_for(lambda: _replies_in(graph, sent) >= total, timeout=300)
            poller.wait_idle(timeout=120)
            time.sleep(0.2)  # anything extra (a duplicate) would arrive now
            burst_invocations = poller.invocations[invocations_before:]
            burst = _burst_figures(graph, sent, marks, burst_invocations, flooder)
            burst["worker_ms"] = summary(list(timings.work))
            burst["records_per_invocation"] = summary([float(n) for n in timings.records])
            burst["most_invocations_at_once"] = poller.most_at_once
            burst_calls = wire.take()
            burst["aws"] = _aws_figures(burst_calls, total, burst["wall_s"])

            # 3. One at a time: uncontended durations, requests and logs per message.
            progress(f"  e2e: {sequential} messages one at a time")
            timings.clear()
            before_bytes, before_lines = sink.bytes, len(sink.lines)
            seq: list[Sent] = []
            per_message: list[list[AwsCall]] = []
            for i in range(sequential):
                one = _send(app, f"5{i % seq_users:015d}", f"s{i:02d} tell me about {i}")
                graph.wait_for_texts(one.psid, i // seq_users + 1, timeout=30)
                poller.wait_idle(timeout=30)
                seq.append(one)
                per_message.append(wire.take())
            seq_lines = sink.lines[before_lines:]
            seq_bytes = sink.bytes - before_bytes
            seq_records = list(timings.records)
            seq_work = list(timings.work)
            sizes = _table_sizes(stand_ins)
            wire.take()  # the scan

            # 4. The keep-warm ping.
            keep_warm_ms = []
            before_bytes = sink.bytes
            for _ in range(50):
                start = time.perf_counter()
                app.lambda_handler(KEEP_WARM_EVENT, None)
                keep_warm_ms.append((time.perf_counter() - start) * 1000)
            keep_warm_log_bytes = (sink.bytes - before_bytes) / 50
            dead_letters = len(stand_ins.dead_letters())
    finally:
        restore()

    log_by_kind: dict[str, int] = defaultdict(int)
    lines_by_kind: dict[str, int] = defaultdict(int)
    for line in seq_lines:
        # The metric lines carry no event kind (they are written apart from the log lines).
        kind = "metrics" if is_metric_line(line) else json.loads(line).get("event_kind", "other")
        log_by_kind[kind] += len(line.encode()) + 1
        lines_by_kind[kind] += 1
    metric_lines = [line for line in seq_lines if is_metric_line(line)]
    seq_calls = [c for calls in per_message for c in calls]
    seq_function = [c for c in seq_calls if c.role == "function"]
    units = request_units(seq_function, sizes)
    typical = typical_exchange()
    new = [i for i in range(sequential) if i < seq_users]  # each user's first message
    returning = [i for i in range(sequential) if i >= seq_users]
    return {
        "people": people,
        "flood": flood,
        "batch_size": BATCH_SIZE,
        "max_concurrency": MAX_CONCURRENCY,
        "aim_function_requests": AIM_FUNCTION_REQUESTS,
        "old_design_requests": OLD_DESIGN_REQUESTS,
        "first_message": {
            "worker_ms": first_worker_ms,
            "reply_ms": first_reply_ms,
            "aws": dict(by_operation(first_calls, "function")),
        },
        "burst": burst,
        "burst_dynamodb": request_units([c for c in burst_calls if c.role == "function"], sizes),
        "sequential": {
            "messages": sequential,
            "users": seq_users,
            "webhook_ms": summary([(s.answered - s.posted) * 1000 for s in seq]),
            "worker_ms": summary(seq_work),
            "invocations": len(seq_work),
            "records_per_invocation": summary([float(n) for n in seq_records]),
            "reply_ms": summary([(_reply_at(graph, s) - s.posted) * 1000 for s in seq]),
            "aws": _aws_figures(seq_calls, sequential, None),
            "function_requests": {
                "new_user": _mean_requests(per_message, new),
                "returning_user": _mean_requests(per_message, returning),
                "new_user_operations": _mean_operations(per_message, new),
                "returning_user_operations": _mean_operations(per_message, returning),
            },
            "dynamodb": units,
            "dynamodb_per_message": {
                "wru": units["wru"] / sequential,
                "rru": units["rru"] / sequential,
                "requests": units["requests"] / sequential,
            },
            "typical_exchange": typical,
            "dynamodb_typical": request_units(seq_function, sizes, typical),
            "item_sizes": _sizes_by_kind(sizes),
            "log_bytes_per_message": {k: v / sequential for k, v in log_by_kind.items()},
            "log_lines_per_message": {k: v / sequential for k, v in lines_by_kind.items()},
            "log_bytes_total_per_message": seq_bytes / sequential,
            "metric_lines": _metric_figures(metric_lines, sequential),
        },
        "keep_warm": {"ms": summary(keep_warm_ms), "log_bytes": keep_warm_log_bytes},
        "dead_letters": dead_letters,
    }


def _metric_figures(lines: list[str], messages: int) -> dict[str, Any]:
    """The metric lines per answered message, by who wrote them: the webhook's (the one that
    counts ``MessagesReceived``), one per failure kind (``Kind``), the worker's (the rest)."""
    from handler.metrics import KIND_DIMENSION

    by_writer: dict[str, list[int]] = defaultdict(list)
    names: Counter[str] = Counter()
    for line in lines:
        document = json.loads(line)
        metrics = [m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
        names.update(metrics)
        if KIND_DIMENSION in document:
            writer = "failure"
        elif "MessagesReceived" in metrics:
            writer = "webhook"
        else:
            writer = "worker"
        by_writer[writer].append(len(line.encode()) + 1)
    return {
        "lines_per_message": len(lines) / messages,
        "bytes_per_message": sum(sum(b) for b in by_writer.values()) / messages,
        "by_writer": {
            writer: {"lines": len(b) / messages, "bytes_per_line": sum(b) / len(b)}
            for writer, b in sorted(by_writer.items())
        },
        "metrics_seen": sorted(names),
    }


def _aws_figures(calls: list[AwsCall], messages: int, wall_s: float | None) -> dict[str, Any]:
    """Requests by role and operation, per answered message; empty receives apart."""
    figures: dict[str, Any] = {"messages": messages}
    for role in ("function", "mapping", "bench"):
        counted = by_operation(calls, role)
        figures[role] = {name: n / messages for name, n in sorted(counted.items())}
    function = [c for c in calls if c.role == "function"]
    mapping = [c for c in calls if c.role == "mapping"]
    figures["function_per_message"] = len(function) / messages
    figures["mapping_per_message"] = sum(1 for c in mapping if not c.empty_receive) / messages
    figures["empty_receives"] = sum(1 for c in mapping if c.empty_receive)
    figures["sqs_per_message"] = (
        sum(1 for c in function + mapping if c.service == "sqs" and not c.empty_receive) / messages
    )
    figures["wire_requests"] = sum(c.attempts for c in calls)
    figures["calls"] = len(calls)
    figures["retried"] = sum(max(0, c.attempts - 1) for c in calls)
    figures["retried_calls"] = Counter(
        f"{c.role}: {c.name}" for c in calls for _ in range(max(0, c.attempts - 1))
    )
    figures["failed"] = Counter(c.name for c in function if not c.ok)
    figures["function_call_ms"] = {
        name: summary([c.ms for c in function if c.name == name])["median"]
        for name in sorted({c.name for c in function})
    }
    if wall_s:
        figures["moto_requests_per_s"] = len(calls) / wall_s
        figures["moto_dynamodb_per_s"] = sum(1 for c in calls if c.service == "dynamodb") / wall_s
    return figures


def _mean_requests(per_message: list[list[AwsCall]], indices: list[int]) -> float | None:
    if not indices:
        return None
    counts = [sum(1 for c in per_message[i] if c.role == "function") for i in indices]
    return sum(counts) / len(counts)


def _mean_operations(per_message: list[list[AwsCall]], indices: list[int]) -> dict[str, float]:
    total: Counter[str] = Counter()
    for i in indices:
        total.update(by_operation(per_message[i], "function"))
    return {name: n / len(indices) for name, n in sorted(total.items())} if indices else {}


def _send(app: Any, psid: str, text: str) -> Sent:
    mid = f"m_{uuid.uuid4().hex}"
    event = signed_post(webhook_body(psid, text, mid))
    posted = time.monotonic()
    response = app.lambda_handler(event, None)
    answered = time.monotonic()
    return Sent(text.split(" ", 1)[0], psid, mid, posted, answered, response["statusCode"])


def _reply_texts(graph: Any) -> list[tuple[str, str, float]]:
    return [
        (c.psid or "", c.body["message"].get("text", ""), c.at)
        for c in graph.calls
        if c.ok and c.kind == "message"
    ]


def _token_of(text: str) -> str | None:
    match = _TOKEN.search(text)
    return match.group(1) if match else None


def _replies_in(graph: Any, sent: list[Sent]) -> int:
    tokens = {s.token for s in sent}
    return sum(1 for _p, text, _at in _reply_texts(graph) if _token_of(text) in tokens)


def _reply_at(graph: Any, one: Sent) -> float:
    for psid, text, at in _reply_texts(graph):
        if psid == one.psid and _token_of(text) == one.token:
            return at
    raise LookupError(f"no reply for {one.token}")


def _burst_figures(
    graph: Any, sent: list[Sent], marks: list[Any], invocations: list[Any], flooder: str
) -> dict[str, Any]:
    texts = _reply_texts(graph)
    owner = {s.token: s.psid for s in sent}
    replies: dict[str, list[float]] = defaultdict(list)
    order: dict[str, list[str]] = defaultdict(list)  # psid -> reply tokens, as they arrived
    stray = 0
    welcomes: dict[str, int] = defaultdict(int)  # a new person's welcome, before the answer
    for psid, text, at in texts:
        token = _token_of(text)
        if token in owner and owner[token] == psid:
            replies[token].append(at)
            order[psid].append(token)
        elif text.startswith(replies_text.WELCOME_OPENING) and not order[psid]:
            welcomes[psid] += 1
        elif psid in owner.values():
            stray += 1
    stray += sum(n - 1 for n in welcomes.values() if n > 1)  # a second welcome is one too many
    exactly_once = all(len(replies[s.token]) == 1 for s in sent) and not stray
    in_order = all(
        order[psid] == [s.token for s in sorted(sent, key=lambda s: s.posted) if s.psid == psid]
        for psid in set(owner.values())
    )
    # typing_on: the simulator's arrival time of the call made while handling this event.
    typing = [
        c
        for c in graph.calls
        if c.ok and c.kind == "sender_action" and c.body.get("sender_action") == "typing_on"
    ]
    by_mid: dict[str, float] = {}
    used: set[int] = set()
    for event_id, psid, before, after in marks:
        for i, call in enumerate(typing):
            if i not in used and call.psid == psid and before <= call.at <= after:
                used.add(i)
                by_mid[event_id] = call.at
                break

    def to_typing(group: list[Sent]) -> list[float]:
        return [(by_mid[s.mid] - s.posted) * 1000 for s in group if s.mid in by_mid]

    def to_reply(group: list[Sent]) -> list[float]:
        return [(replies[s.token][0] - s.posted) * 1000 for s in group if replies[s.token]]

    crowd = [s for s in sent if s.psid != flooder]
    flood = sorted((s for s in sent if s.psid == flooder), key=lambda s: s.posted)
    start = min(s.posted for s in sent)
    end = max(max(v) for v in replies.values()) if replies else start
    webhooks_done = max(s.answered for s in sent)
    flood_done = [replies[s.token][0] for s in flood if replies[s.token]]
    return {
        "messages": len(sent),
        "all_200": all(s.status == 200 for s in sent),
        "replied": sum(1 for s in sent if replies[s.token]),
        "exactly_one_reply_each": exactly_once,
        "in_order_per_person": in_order,
        "duplicates": sum(max(0, len(replies[s.token]) - 1) for s in sent),
        "stray_texts": stray,
        "welcomed": len(welcomes),
        "wall_s": end - start,
        "messages_per_s": len(sent) / (end - start) if end > start else math.nan,
        "webhooks_per_s": len(sent) / (webhooks_done - start),
        "webhook_ms": summary([(s.answered - s.posted) * 1000 for s in sent]),
        "to_typing_on_ms": summary(to_typing(sent)),
        "typing_on_matched": len(to_typing(sent)),
        "to_reply_ms": summary(to_reply(sent)),
        "crowd_to_typing_on_ms": summary(to_typing(crowd)),
        "crowd_to_reply_ms": summary(to_reply(crowd)),
        "flood_to_reply_ms": summary(to_reply(flood)),
        # From the flood's first POST: its first reply, and its last (all answered).
        "flood_first_reply_ms": (flood_done[0] - flood[0].posted) * 1000 if flood_done else None,
        "flood_last_reply_ms": (max(flood_done) - flood[0].posted) * 1000 if flood_done else None,
        "flood_posted_s": (flood[-1].answered - flood[0].posted) if flood else 0.0,
        "invocations": len(invocations),
        "failed_invocations": sum(
            1 for i in invocations if i.outcome not in ("succeeded", "partial")
        ),
        "partial_invocations": sum(1 for i in invocations if i.outcome == "partial"),
    }


def _table_sizes(stand_ins: Any) -> dict[tuple[str, str], int]:
    sizes: dict[tuple[str, str], int] = {}
    paginator = stand_ins.dynamodb.get_paginator("scan")
    for page in paginator.paginate(TableName=stand_ins.table):
        for item in page["Items"]:
            sizes[(item["pk"]["S"], item["sk"]["S"])] = item_size(item)
    return sizes


def _sizes_by_kind(sizes: dict[tuple[str, str], int]) -> dict[str, dict[str, float]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for (pk, sk), size in sizes.items():
        grouped[item_kind({"pk": {"S": pk}, "sk": {"S": sk}})].append(size)
    return {
        k: {"items": len(v), "median_bytes": summary(v)["median"], "max_bytes": max(v)}
        for k, v in grouped.items()
    }
