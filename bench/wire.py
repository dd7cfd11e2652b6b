"""AWS requests on the wire, counted by botocore event hooks on every client of this process,
and what DynamoDB bills for them.

While ``record_aws()`` is open, every boto3 client made in this process (the handler's, the
harness's, the poller's) gets three hooks: ``before-parameter-build`` keeps the request's
parameters (DynamoDB's keys and items, to price them), ``before-send`` counts each HTTP
request that leaves (retries included) and ``after-call`` (or ``after-call-error``) closes
the call with its status.

Each call has a role:

- ``function``: a client made by ``handler.clients``, the Lambda function's own;
- ``mapping``: a call from a thread of ``local.event_source.QueuePoller``: in AWS these are
  the event source mapping's requests (its ReceiveMessage and DeleteMessageBatch), billed
  to the queue's owner but not made by the function;
- ``bench``: anything else (the benchmark waiting for the queue to empty, setting up).
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.common import summary

POLLER_THREAD_PREFIX = "poller-"  # local.event_source names its threads so

# -- DynamoDB item sizes ----------------------------------------------------------------------


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


def item_kind(key: dict[str, Any]) -> str:
    """What an item is, from its key (``handler.schema``'s layout)."""
    from handler import schema

    pk, sk = key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")
    if pk.startswith(schema.EVENT_PREFIX):
        return "event"
    if sk.startswith(schema.DAY_PREFIX):
        return "counter"
    return {schema.PROFILE: "profile", schema.HISTORY: "history"}.get(sk, "other")


def _key_of(key: dict[str, Any]) -> tuple[str, str]:
    return key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")


# -- the calls --------------------------------------------------------------------------------


@dataclass
class Write:
    """One item a DynamoDB request writes (or tries to)."""

    verb: str  # Put | Update | Delete
    kind: str
    key: tuple[str, str]
    transactional: bool
    put_size: int | None = None  # Put: the new item's size
    reply_size: int = 0  # Update: bytes of the reply it records on the event's item
    removes_reply: bool = False  # Update: the finish, which takes the recorded reply away


@dataclass
class Read:
    kind: str
    key: tuple[str, str]
    size: int  # 0: no such item (still billed the minimum)
    consistent: bool


@dataclass
class AwsCall:
    role: str  # function | mapping | bench
    service: str
    operation: str
    thread: str
    started: float
    attempts: int = 0  # HTTP requests sent: 1, or more with botocore's retries
    status: int = 0
    ms: float = 0.0  # client-side: the server's answer time plus botocore's own work
    received: int | None = None  # ReceiveMessage: messages it returned
    entries: int | None = None  # the batch calls: entries sent
    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    query_bytes: int | None = None  # Query: bytes of the items returned
    consistent: bool = False
    _params: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def name(self) -> str:
        """``sqs ReceiveMessage`` and the like; an empty receive is told apart."""
        empty = " (empty)" if self.operation == "ReceiveMessage" and not self.received else ""
        return f"{self.service} {self.operation}{empty}"

    @property
    def empty_receive(self) -> bool:
        return self.operation == "ReceiveMessage" and not self.received


def _made_by_handler() -> bool:
    """Whether the client being created is one of ``handler.clients``' (the function's)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "handler.clients":
            return True
        frame = frame.f_back
    return False


class AwsRecorder:
    """Every AWS call of the clients it is attached to (see ``record_aws``)."""

    def __init__(self) -> None:
        self.calls: list[AwsCall] = []
        self._lock = threading.Lock()
        self._pending = threading.local()

    def attach(self, client: Any, function: bool) -> None:
        events = client.meta.events

        def before(params: dict[str, Any], model: Any, **_: Any) -> None:
            thread = threading.current_thread().name
            if function:
                role = "function"
            elif thread.startswith(POLLER_THREAD_PREFIX):
                role = "mapping"
            else:
                role = "bench"
            self._pending.call = AwsCall(
                role=role,
                service=model.service_model.service_name,
                operation=model.name,
                thread=thread,
                started=time.perf_counter(),
                _params=params,
            )

        def sent(**_: Any) -> None:
            call = getattr(self._pending, "call", None)
            if call is not None:
                call.attempts += 1

        def after(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
            call = getattr(self._pending, "call", None)
            if call is None or call.operation != model.name:
                return
            self._pending.call = None
            call.ms = (time.perf_counter() - call.started) * 1000
            call.status = http_response.status_code
            _describe(call, call._params, parsed)
            call._params = {}
            with self._lock:
                self.calls.append(call)

        def failed(**_: Any) -> None:  # no answer at all (a connection error)
            call = getattr(self._pending, "call", None)
            if call is None:
                return
            self._pending.call = None
            call.ms = (time.perf_counter() - call.started) * 1000
            call._params = {}
            with self._lock:
                self.calls.append(call)

        events.register("before-parameter-build", before)
        events.register("before-send", sent)
        events.register("after-call", after)
        events.register("after-call-error", failed)

    def take(self) -> list[AwsCall]:
        """The calls since the last ``take``."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


@contextmanager
def record_aws() -> Iterator[AwsRecorder]:
    """Attach a recorder to every botocore client created while this is open."""
    from botocore.client import ClientCreator

    recorder = AwsRecorder()
    original = ClientCreator.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        recorder.attach(client, _made_by_handler())
        return client

    ClientCreator.create_client = create_client  # type: ignore[method-assign]
    try:
        yield recorder
    finally:
        ClientCreator.create_client = original  # type: ignore[method-assign]


def _describe(call: AwsCall, params: dict[str, Any], parsed: dict[str, Any]) -> None:
    """What the call touched: SQS entries and messages, DynamoDB items."""
    op = call.operation
    if call.service == "sqs":
        if op == "ReceiveMessage":
            call.received = len(parsed.get("Messages") or [])
        elif "Entries" in params:
            call.entries = len(params["Entries"])
        return
    if call.service != "dynamodb":
        return
    call.consistent = bool(params.get("ConsistentRead"))
    if op in ("PutItem", "UpdateItem", "DeleteItem"):
        call.writes.append(_write(op.removesuffix("Item"), params, transactional=False))
    elif op == "TransactWriteItems":
        for entry in params.get("TransactItems", []):
            ((verb, request),) = entry.items()
            # A ConditionCheck (no pause runs) is billed like a transactional write of its
            # item: counted so, on the side of caution.
            call.writes.append(_write(verb, request, transactional=True))
    elif op == "BatchWriteItem":
        for requests in (params.get("RequestItems") or {}).values():
            for request in requests:
                if "PutRequest" in request:
                    call.writes.append(_write("Put", request["PutRequest"], False))
                else:
                    call.writes.append(_write("Delete", request["DeleteRequest"], False))
    elif op == "GetItem":
        item = parsed.get("Item") or {}
        key = params.get("Key", {})
        call.reads.append(Read(item_kind(key), _key_of(key), item_size(item), call.consistent))
    elif op == "BatchGetItem":
        found: dict[tuple[str, str], int] = {}
        for items in (parsed.get("Responses") or {}).values():
            for item in items:
                found[_key_of(item)] = item_size(item)
        for wanted in (params.get("RequestItems") or {}).values():
            consistent = bool(wanted.get("ConsistentRead"))
            for key in wanted.get("Keys", []):
                call.reads.append(
                    Read(item_kind(key), _key_of(key), found.get(_key_of(key), 0), consistent)
                )
    elif op in ("Query", "Scan"):
        call.query_bytes = sum(item_size(i) for i in parsed.get("Items") or [])


def _write(verb: str, request: dict[str, Any], transactional: bool) -> Write:
    key = request.get("Key") or request.get("Item") or {}
    values = request.get("ExpressionAttributeValues") or {}
    expression = request.get("UpdateExpression") or ""
    # The event's item holds the reply between "record" and "finish": the final item, read
    # from the table afterwards, no longer does.
    reply = len("reply") + attribute_size(values[":reply"]) if ":reply" in values else 0
    return Write(
        verb=verb,
        kind=item_kind(key),
        key=_key_of(key),
        transactional=transactional,
        put_size=item_size(request["Item"]) if verb == "Put" else None,
        reply_size=reply,
        removes_reply=bool(re.search(r"\bREMOVE\b.*\breply\b", expression)),
    )


# -- what the calls add up to -----------------------------------------------------------------


def by_operation(calls: list[AwsCall], role: str | None = None) -> Counter[str]:
    """Calls by ``service Operation``, empty receives told apart."""
    return Counter(c.name for c in calls if role is None or c.role == role)


def request_units(
    calls: list[AwsCall],
    sizes: dict[tuple[str, str], int],
    typical: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Write and read request units of the DynamoDB calls, by DynamoDB's on-demand rules.

    Writes: 1 WRU per started KB of the item, failed conditional writes included, and **2
    per KB for an item written in a transaction** (DynamoDB's price for
    TransactWriteItems). An update is charged on the larger of the item before and after it:
    the item as the table holds it at the end, plus the reply it holds from the write that
    records it until the finish that removes it; a put on the request's item. A write to a
    profile also writes the ``users_by_activity`` index (projection ALL; an ordinary write,
    not transactional): 1 WRU for a new user's entry, 2 WRU (delete + put) for a returning
    user's, because ``active_at`` (to the second) moves between a person's messages; this
    run sends faster than people do, so the rule, not the run's timing, decides. Reads: per
    item (BatchGetItem too), 1 RRU per started 4 KB strongly consistent, 0.5 eventually
    consistent, and the minimum for an item that is not there.

    ``typical`` re-prices the same requests for a typical exchange: ``history_bytes`` for
    the conversation's item (read and written), ``reply_bytes`` for the recorded reply.
    """
    wru = rru = 0.0
    wru_by_kind: Counter[str] = Counter()
    rru_by_kind: Counter[str] = Counter()
    writes_by_kind: Counter[str] = Counter()
    reads_by_kind: Counter[str] = Counter()
    holding: dict[tuple[str, str], int] = {}  # event items holding a recorded reply
    dynamo = [c for c in calls if c.service == "dynamodb"]
    for call in dynamo:
        for write in call.writes:
            if typical and write.kind == "history" and write.verb == "Put":
                size = typical["history_bytes"]
            else:
                size = write.put_size or sizes.get(write.key, 1)
            if write.reply_size:
                holding[write.key] = typical["reply_bytes"] if typical else write.reply_size
            size += holding.get(write.key, 0) if write.put_size is None else 0
            if write.removes_reply:
                holding.pop(write.key, None)
            units = math.ceil(max(size, 1) / 1024) * (2 if write.transactional else 1)
            wru += units
            wru_by_kind[write.kind] += units
            writes_by_kind[write.kind] += 1
            if write.kind == "profile" and call.ok and write.verb != "Delete":
                index = math.ceil(max(size, 1) / 1024) * (1 if write.verb == "Put" else 2)
                wru += index
                wru_by_kind["index"] += index
        for read in call.reads:
            size = typical["history_bytes"] if typical and read.kind == "history" else read.size
            units = max(1, math.ceil(size / 4096)) * (1.0 if read.consistent else 0.5)
            rru += units
            rru_by_kind[read.kind] += units
            reads_by_kind[read.kind] += 1
        if call.query_bytes is not None:
            units = max(1, math.ceil(call.query_bytes / 4096)) * (1.0 if call.consistent else 0.5)
            rru += units
            rru_by_kind["query"] += units
    return {
        "wru": wru,
        "rru": rru,
        "requests": len(dynamo),
        "wru_by_kind": dict(wru_by_kind),
        "rru_by_kind": dict(rru_by_kind),
        "writes_by_kind": dict(writes_by_kind),
        "reads_by_kind": dict(reads_by_kind),
        "by_operation": dict(by_operation(dynamo)),
        "call_ms": summary([c.ms for c in dynamo]),
        "total_call_ms": sum(c.ms for c in dynamo),
    }
