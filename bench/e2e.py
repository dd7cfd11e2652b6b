"""End to end through the local stack: many users, several messages each, all at once.

Everything is real HTTP on loopback: moto (DynamoDB + SSM, a child process), the Messenger
simulator (Send API), a fake OpenAI server answering at once (``latency=0``) and the Invoke
stand-in running ``handler.app.lambda_handler`` for the asynchronous worker, in threads of
this process. Each user is a thread posting its signed deliveries back to back.

Measured per message: the webhook's own time (POST -> 200), webhook -> ``typing_on`` and
webhook -> reply, both as received by the simulator (its ``at``, ``time.monotonic()``, the
clock the POST start is read from). Every message must get exactly one reply.

Then a sequential phase (one message at a time, each waited for) gives uncontended
durations of the webhook and worker invocations, the DynamoDB requests the worker makes
(counted by an event hook on its boto3 client, with item sizes from the table) and the log
bytes written, which is what ``bench.cost`` prices.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    FUNCTION,
    OPENAI_KEY,
    PAGE_TOKEN,
    CountingSink,
    handler_env,
    local_aws,
    no_nagle_in_stand_ins,
    signed_post,
    summary,
    webhook_body,
)
from bench.warm import environment, handler_logs_to

_TOKEN = re.compile(r"\[(\w+)\]")
KEEP_WARM_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


# -- DynamoDB request units ---------------------------------------------------------------


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value as DynamoDB sizes it (names are added by the caller)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode("utf-8"))
    if kind == "N":
        digits = raw.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: v}) for v in raw)
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in raw)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in raw.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def _item_kind(key: dict[str, Any]) -> str:
    pk, sk = key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")
    if pk.startswith("EVENT#"):
        return "event"
    if pk.startswith("INBOX#"):
        return "inbox_lease" if sk == "LOCK" else "inbox"
    if sk.startswith("DAY#"):
        return "counter"
    return {"PROFILE": "profile", "HISTORY": "history"}.get(sk, "other")


@dataclass
class DynamoCall:
    operation: str
    kind: str
    key: tuple[str, str]
    put_size: int | None = None  # PutItem: the new item's size
    batch_units: int | None = None  # BatchWriteItem: the write units of its items
    consistent: bool = False
    new_user: bool = False  # a profile write that created the profile
    failed: bool = False
    started: float = 0.0
    ms: float = 0.0  # client-side duration: moto's answer time plus botocore's own work


@dataclass
class DynamoCounter:
    """Every DynamoDB request of one boto3 client, from its event hooks."""

    calls: list[DynamoCall] = field(default_factory=list)
    _pending: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        key = params.get("Key") or params.get("Item") or {}
        batch = [
            request["PutRequest"]["Item"]
            for requests in (params.get("RequestItems") or {}).values()
            for request in requests
            if "PutRequest" in request
        ]
        if batch:
            key = batch[0]
        elif model.name == "Query":  # the partition it reads
            key = {"pk": (params.get("ExpressionAttributeValues") or {}).get(":pk", {})}
        call = DynamoCall(
            operation=model.name,
            kind=_item_kind(key),
            key=(key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")),
            put_size=item_size(params["Item"]) if model.name == "PutItem" else None,
            batch_units=sum(math.ceil(item_size(i) / 1024) for i in batch) if batch else None,
            consistent=bool(params.get("ConsistentRead")),
            started=time.perf_counter(),
        )
        self._pending.call = call

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        call = getattr(self._pending, "call", None)
        if call is None:
            return
        self._pending.call = None
        call.ms = (time.perf_counter() - call.started) * 1000
        call.failed = http_response.status_code >= 300
        if call.kind == "profile" and model.name == "UpdateItem":
            call.new_user = "active_at" not in (parsed.get("Attributes") or {})
        with self._lock:
            self.calls.append(call)

    def take(self) -> list[DynamoCall]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


def request_units(calls: list[DynamoCall], sizes: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Write and read request units of ``calls``, by DynamoDB's on-demand rules.

    Writes: 1 WRU per started KB of the item (the final item size from the table for
    updates, the request's item for puts), failed conditional writes included; a write to a
    profile also writes the ``users_by_activity`` index (projection ALL): 1 WRU for a new
    user's entry, 2 WRU (delete + put) for a returning user's, because ``active_at`` (to the
    second) moves between a person's messages; this run sends faster than people do, so the
    rule, not the run's timing, decides. Reads: 0.5 RRU per started 4 KB eventually
    consistent, 1 RRU strongly consistent.
    """
    wru = rru = 0.0
    by_operation: Counter[str] = Counter()
    for call in calls:
        by_operation[f"{call.operation} {call.kind}"] += 1
        size = call.put_size or sizes.get(call.key, 1)
        if call.operation == "BatchWriteItem":
            wru += call.batch_units or 0
        elif call.operation in ("PutItem", "UpdateItem", "DeleteItem"):
            units = math.ceil(max(size, 1) / 1024)
            wru += units
            if call.kind == "profile" and not call.failed:
                wru += units * (1 if call.new_user else 2)
        elif call.operation == "GetItem":
            rru += math.ceil(max(size, 1) / 4096) * (1.0 if call.consistent else 0.5)
        elif call.operation == "Query":  # the inbox's oldest message: one small item
            rru += 1.0 if call.consistent else 0.5
    return {
        "wru": wru,
        "rru": rru,
        "requests": len(calls),
        "by_operation": dict(by_operation),
        "call_ms": summary([c.ms for c in calls]),
        "total_call_ms": sum(c.ms for c in calls),
    }


# -- the run ------------------------------------------------------------------------------


@dataclass
class Sent:
    token: str
    psid: str
    posted: float  # time.monotonic() just before the webhook call
    answered: float  # after it returned
    status: int


class Timings:
    """Durations of the invocations the stand-in runs, by event kind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.work: list[float] = []

    def wrap(self, handler: Any) -> Any:
        def timed(event: Any, context: Any) -> Any:
            start = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                with self.lock:
                    self.work.append((time.perf_counter() - start) * 1000)

        return timed


def _typing_marks(psids: set[str]) -> Any:
    """Wraps the worker so each typing_on can be tied to the event being handled."""
    from handler.messenger import Messenger
    from handler.worker import Worker

    current = threading.local()
    marks: list[tuple[str, str, float, float]] = []  # event_id, psid, before, after
    lock = threading.Lock()
    original_handle, original_action = Worker.handle, Messenger.sender_action

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

    Worker.handle, Messenger.sender_action = handle, sender_action  # type: ignore[method-assign]

    def restore() -> None:
        Worker.handle, Messenger.sender_action = original_handle, original_action  # type: ignore[method-assign]

    return marks, restore


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    from handler import app, clients
    from local.graph import MessengerSimulator
    from local.invoke import LambdaInvokeStandIn
    from local.model import FakeOpenAI, last_user_text

    users, per_user = (10, 3) if quick else (20, 5)
    sequential = 10 if quick else 30

    def responder(body: dict[str, Any]) -> str:
        return f"Answer to [{last_user_text(body).split(' ', 1)[0]}]: 42."

    with local_aws(True) as aws, no_nagle_in_stand_ins() as patched_nagle:
        graph = MessengerSimulator(access_token=PAGE_TOKEN).start()
        model = FakeOpenAI(responder, api_key=OPENAI_KEY, latency=0.0).start()
        timings = Timings()
        invoke = LambdaInvokeStandIn({FUNCTION: timings.wrap(app.lambda_handler)}, retry_delay=0.05)
        invoke.start()
        sink = CountingSink(keep=True)
        env = handler_env(
            aws,
            invoke.url,
            GRAPH_API_URL=graph.graph_api_url,
            OPENAI_BASE_URL=model.base_url,
            OPENAI_MAX_RETRIES="0",
            OPENAI_TIMEOUT_SECONDS="10",
            DAILY_LIMIT="1000",
        )
        psids = {f"4{u:015d}" for u in range(users)} | {f"5{u:015d}" for u in range(sequential)}
        marks, restore = _typing_marks(psids)
        try:
            with environment(env), handler_logs_to(sink):
                app.reset()
                counter = DynamoCounter()
                counter.attach(clients.aws("dynamodb"))

                # 1. First message in this process: the worker imports openai & co.
                progress("  e2e: first message (worker imports)")
                first = _send(app, "4" + "9" * 15, "w0 first?")
                graph.wait_for_texts(first.psid, 1, timeout=60)
                invoke.wait_idle(timeout=60)
                first_worker_ms = timings.work[0]
                first_reply_ms = (_reply_at(graph, first) - first.posted) * 1000
                counter.take()

                # 2. The burst.
                progress(f"  e2e: {users} users x {per_user} messages at once")
                sent: list[Sent] = []
                lock = threading.Lock()
                gate = threading.Barrier(users)

                def user(u: int) -> None:
                    psid = f"4{u:015d}"
                    gate.wait()
                    for k in range(per_user):
                        one = _send(app, psid, f"u{u:02d}m{k} what is {u} + {k}?")
                        with lock:
                            sent.append(one)

                timings.work.clear()
                threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                total = users * per_user
                graph.wait_for(lambda: _replies_in(graph, sent) >= total, timeout=180)
                invoke.wait_idle(timeout=120)
                time.sleep(0.2)  # anything extra (a duplicate) would arrive now
                burst = _burst_figures(graph, sent, marks, invoke)
                burst["worker_ms"] = summary(list(timings.work))
                burst_db = counter.take()
                burst["dynamodb_requests_per_s"] = len(burst_db) / burst["wall_s"]

                # 3. One at a time: uncontended durations, requests and logs per message.
                progress(f"  e2e: {sequential} messages one at a time")
                timings.work.clear()
                before_bytes, before_lines = sink.bytes, len(sink.lines)
                seq: list[Sent] = []
                seq_users = max(1, sequential // 5)  # so 4 in 5 messages are from returning users
                for i in range(sequential):
                    one = _send(app, f"5{i % seq_users:015d}", f"s{i:02d} tell me about {i}")
                    graph.wait_for_texts(one.psid, i // seq_users + 1, timeout=30)
                    invoke.wait_idle(timeout=30)
                    seq.append(one)
                seq_calls = counter.take()
                seq_lines = sink.lines[before_lines:]
                seq_bytes = sink.bytes - before_bytes
                sizes = _table_sizes(aws)

                # 4. The keep-warm ping.
                keep_warm_ms = []
                before_bytes = sink.bytes
                for _ in range(50):
                    start = time.perf_counter()
                    app.lambda_handler(KEEP_WARM_EVENT, None)
                    keep_warm_ms.append((time.perf_counter() - start) * 1000)
                keep_warm_log_bytes = (sink.bytes - before_bytes) / 50
                app.reset()
        finally:
            restore()
            invoke.stop()
            model.stop()
            graph.stop()

    log_by_kind: dict[str, int] = defaultdict(int)
    lines_by_kind: dict[str, int] = defaultdict(int)
    for line in seq_lines:
        kind = json.loads(line).get("event_kind", "other")
        log_by_kind[kind] += len(line.encode()) + 1
        lines_by_kind[kind] += 1
    return {
        "users": users,
        "messages_per_user": per_user,
        "stand_in_nagle_patched": patched_nagle,
        "first_message": {"worker_ms": first_worker_ms, "reply_ms": first_reply_ms},
        "burst": burst,
        "burst_dynamodb": request_units(burst_db, sizes),
        "sequential": {
            "messages": sequential,
            "users": seq_users,
            "webhook_ms": summary([(s.answered - s.posted) * 1000 for s in seq]),
            "worker_ms": summary(list(timings.work)),
            "reply_ms": summary([(_reply_at(graph, s) - s.posted) * 1000 for s in seq]),
            "dynamodb": request_units(seq_calls, sizes),
            "dynamodb_per_message": {
                k: v / sequential
                for k, v in request_units(seq_calls, sizes).items()
                if k in ("wru", "rru", "requests")
            },
            "item_sizes": _sizes_by_kind(sizes),
            "log_bytes_per_message": {k: v / sequential for k, v in log_by_kind.items()},
            "log_lines_per_message": {k: v / sequential for k, v in lines_by_kind.items()},
            "log_bytes_total_per_message": seq_bytes / sequential,
        },
        "keep_warm": {"ms": summary(keep_warm_ms), "log_bytes": keep_warm_log_bytes},
    }


def _send(app: Any, psid: str, text: str) -> Sent:
    event = signed_post(webhook_body(psid, text))
    posted = time.monotonic()
    response = app.lambda_handler(event, None)
    answered = time.monotonic()
    return Sent(text.split(" ", 1)[0], psid, posted, answered, response["statusCode"])


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


def _burst_figures(graph: Any, sent: list[Sent], marks: list[Any], invoke: Any) -> dict[str, Any]:
    texts = _reply_texts(graph)
    owner = {s.token: s.psid for s in sent}
    replies: dict[str, list[float]] = defaultdict(list)
    stray = 0
    for psid, text, at in texts:
        token = _token_of(text)
        if token in owner and owner[token] == psid:
            replies[token].append(at)
        elif psid in owner.values():
            stray += 1
    exactly_once = all(len(replies[s.token]) == 1 for s in sent) and not stray
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
    mids = _mids_of(invoke)
    to_typing = [
        (by_mid[mids[s.token]] - s.posted) * 1000 for s in sent if mids.get(s.token) in by_mid
    ]
    to_reply = [(replies[s.token][0] - s.posted) * 1000 for s in sent if replies[s.token]]
    start = min(s.posted for s in sent)
    end = max(max(v) for v in replies.values()) if replies else start
    webhooks_done = max(s.answered for s in sent)
    return {
        "messages": len(sent),
        "all_200": all(s.status == 200 for s in sent),
        "replied": sum(1 for s in sent if replies[s.token]),
        "exactly_one_reply_each": exactly_once,
        "duplicates": sum(max(0, len(replies[s.token]) - 1) for s in sent),
        "stray_texts": stray,
        "wall_s": end - start,
        "messages_per_s": len(sent) / (end - start) if end > start else math.nan,
        "webhooks_per_s": len(sent) / (webhooks_done - start),
        "webhook_ms": summary([(s.answered - s.posted) * 1000 for s in sent]),
        "to_typing_on_ms": summary(to_typing),
        "typing_on_matched": len(to_typing),
        "to_reply_ms": summary(to_reply),
        "failed_invocations": sum(1 for i in invoke.invocations if i.outcome == "failed"),
        "retried_invocations": sum(1 for i in invoke.invocations if i.attempts > 1),
    }


def _mids_of(invoke: Any) -> dict[str, str]:
    """Message token -> event id (the mid), from the work events the stand-in received."""
    found: dict[str, str] = {}
    for invocation in invoke.invocations:
        for event in (invocation.event or {}).get("events", []):
            token = str(event.get("text", "")).split(" ", 1)[0]
            found[token] = event["event_id"]
    return found


def _table_sizes(aws: Any) -> dict[tuple[str, str], int]:
    import boto3

    client = boto3.client("dynamodb", endpoint_url=aws.url, region_name="us-east-1")
    sizes: dict[tuple[str, str], int] = {}
    for page in client.get_paginator("scan").paginate(TableName=aws.table):
        for item in page["Items"]:
            sizes[(item["pk"]["S"], item["sk"]["S"])] = item_size(item)
    return sizes


def _sizes_by_kind(sizes: dict[tuple[str, str], int]) -> dict[str, dict[str, float]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for (pk, sk), size in sizes.items():
        grouped[_item_kind({"pk": {"S": pk}, "sk": {"S": sk}})].append(size)
    return {
        k: {"items": len(v), "median_bytes": summary(v)["median"], "max_bytes": max(v)}
        for k, v in grouped.items()
    }
