"""What the reliability suite adds to ``tests/support/bridge.py``: faults the stand-ins do not
make (DynamoDB throttling, lost responses, a dying worker), Lambda's real retry timing, and
the bookkeeping that says what became of every message.
"""

from __future__ import annotations

import contextvars
import io
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff

from handler import app, clients, replies
from handler import logs as handler_logs
from local.model import last_user_text
from tests.support.bridge import FUNCTION, Bridge, messaging_text, webhook_body

ANSWER_PREFIX = "Answer to: "
# botocore's ``max_attempts`` counts retries, not tries: the handler's clients try 4 times.
BOTO3_TRIES = clients._AWS_CONFIG.retries["max_attempts"] + 1


def echo_answers(body: dict[str, Any]) -> str:
    """The fake model's answer names its question, so every answer can be traced back."""
    return ANSWER_PREFIX + last_user_text(body)


def answer_to(text: str) -> str:
    return ANSWER_PREFIX + text


# -- what became of the messages ----------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """What one person got, what the failure queue holds for them, and what they were charged."""

    answers: int  # the model's answers that reached them (a partly sent one counts once)
    apologies: int
    notices: int  # the bot's own texts: over the limit, "only text", command replies
    failure_records: int  # their events on the on-failure destination
    model_calls: int  # generation requests that carried one of their questions
    counted: int  # their questions counted, all days together

    def describe(self) -> str:
        return (
            f"{self.answers} answer(s), {self.apologies} apology(ies), {self.notices} notice(s), "
            f"{self.failure_records} on the failure queue; model asked {self.model_calls}x; "
            f"counted {self.counted}"
        )

    @property
    def accounted(self) -> int:
        """Messages that ended one of the three accepted ways."""
        return self.answers + self.apologies + self.failure_records


def counted(bridge: Bridge, psid: str) -> int:
    """The person's question counters summed over every day (a retry may cross midnight)."""
    items = bridge.dynamodb.query(
        TableName=bridge.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :day)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{psid}"}, ":day": {"S": "DAY#"}},
        ConsistentRead=True,
    )["Items"]
    return sum(int(item["count"]["N"]) for item in items)


def failure_events(bridge: Bridge) -> list[dict[str, Any]]:
    """Every webhook event inside the records on the failure queue."""
    return [e for r in bridge.failure_records() for e in r["requestPayload"].get("events", [])]


def is_answer(text: str) -> bool:
    return text.startswith(ANSWER_PREFIX)


def tally(bridge: Bridge, psid: str, *, answer: Callable[[str], bool] = is_answer) -> Tally:
    texts = bridge.texts_to(psid)
    answers = [t for t in texts if answer(t)]
    apologies = [t for t in texts if t == replies.APOLOGY]
    asked = sum(
        1
        for request in bridge.model.requests
        if psid_marker(psid) in str(request["messages"][-1].get("content"))
    )
    return Tally(
        answers=len(answers),
        apologies=len(apologies),
        notices=len(texts) - len(answers) - len(apologies),
        failure_records=sum(1 for e in failure_events(bridge) if e.get("psid") == psid),
        model_calls=asked,
        counted=counted(bridge, psid),
    )


def psid_marker(psid: str) -> str:
    """Questions in this suite carry their sender, so model requests can be attributed."""
    return f"[{psid}]"


def question(psid: str, text: str = "what is the answer?") -> str:
    return f"{psid_marker(psid)} {text}"


# -- Lambda's retry timing, and a worker that dies ------------------------------------------


class ContainerDied(BaseException):
    """Stands for the runtime going away mid-event (out of memory, killed at the timeout):
    a BaseException, so none of the handler's ``except Exception`` clean-up runs."""


_clock_offset: contextvars.ContextVar[timedelta] = contextvars.ContextVar(
    "clock_offset", default=timedelta(0)
)


class LambdaTiming:
    """Runs the function's attempts at the times Lambda would, as the worker's clock sees them.

    Lambda retries a failed asynchronous event after about one minute, then after two more
    (the same request id each time). The stand-in retries within milliseconds, so the worker's
    clock is moved on by that much for each retry: leases that would have run out by then have.
    Only for scenarios where the earlier attempt is really over (it failed or died).

    A minute is long enough for the attempts of these scenarios (milliseconds each) to end,
    and any other worker for the same person renews its leases meanwhile. So a retry first
    waits until no other attempt for the people it names is running: with its clock moved on
    and theirs not, it would take for run out a lease that is alive.
    """

    RETRY_OFFSETS = (timedelta(0), timedelta(minutes=1), timedelta(minutes=3))
    WAIT_FOR_OTHERS_SECONDS = 30.0

    def __init__(self, bridge: Bridge) -> None:
        self.attempts: Counter[str] = Counter()  # per request id, as Lambda keeps it on retries
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)
        self._running: Counter[str] = Counter()  # attempts running, per person
        self._ended: list[Callable[[int], None]] = []
        worker = app.runtime().worker
        worker.clock = lambda: datetime.now(UTC) + _clock_offset.get()
        bridge.invoke.register(FUNCTION, self._handler)

    def on_attempt_end(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(attempt_number)`` as each attempt ends, however it ends."""
        self._ended.append(callback)

    @staticmethod
    def _people(event: Any) -> set[str]:
        if not isinstance(event, dict):
            return set()
        named = [*event.get("drain", []), *(e.get("psid") for e in event.get("events", []))]
        return {str(p) for p in named if p}

    def _handler(self, event: Any, context: Any) -> Any:
        people = self._people(event)
        with self._quiet:
            number = self.attempts[context.aws_request_id]
            self.attempts[context.aws_request_id] += 1
            if number:
                self._quiet.wait_for(
                    lambda: not any(self._running[p] for p in people),
                    self.WAIT_FOR_OTHERS_SECONDS,
                )
            self._running.update(people)
        offset = self.RETRY_OFFSETS[min(number, len(self.RETRY_OFFSETS) - 1)]
        token = _clock_offset.set(offset)
        try:
            return app.lambda_handler(event, context)
        finally:
            _clock_offset.reset(token)
            with self._quiet:
                self._running.subtract(people)
                self._quiet.notify_all()
            for callback in self._ended:
                callback(number + 1)


class ConcurrencyMeter:
    """Counts the function's asynchronous attempts running at once, through the stand-in."""

    def __init__(self, bridge: Bridge) -> None:
        self.running = 0
        self.most = 0
        self.started = 0
        self._lock = threading.Lock()
        bridge.invoke.register(FUNCTION, self._handler)

    def _handler(self, event: Any, context: Any) -> Any:
        with self._lock:
            self.running += 1
            self.started += 1
            self.most = max(self.most, self.running)
        try:
            return app.lambda_handler(event, context)
        finally:
            with self._lock:
                self.running -= 1


# -- AWS faults at the boto3 level ----------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data

    def read(self, *_: Any) -> bytes:
        return self._data


WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
Match = Callable[[str, dict[str, Any]], bool]  # (operation, request body) -> applies?


def writes_quota(operation: str, body: dict[str, Any]) -> bool:
    """A write that touches a daily question counter (``sk`` ``DAY#...``), in any form."""
    return operation in WRITES and '"DAY#' in json.dumps(body)


@dataclass
class _Rule:
    kind: str  # "throttle" or "lose"
    match: Match
    times: int
    spare_last_try: bool = False  # a fault botocore's retries absorb


def _last_try(request: Any) -> bool:
    """botocore numbers a call's tries in ``amz-sdk-request: attempt=2; max=4``."""
    header = request.headers.get("amz-sdk-request", b"")
    text = header.decode() if isinstance(header, bytes) else str(header)
    fields = dict(part.strip().split("=", 1) for part in text.split(";") if "=" in part)
    return fields.get("attempt") is not None and fields.get("attempt") == fields.get("max")


def quick_aws_backoff(monkeypatch: Any, scale: float = 0.05) -> None:
    """Scale botocore's backoff waits down 20x; its retry decisions and attempt counts stay."""
    real_delay = ExponentialBackoff.delay_amount
    if getattr(real_delay, "scaled", False):
        return
    scaled = lambda self, context: real_delay(self, context) * scale  # noqa: E731
    scaled.scaled = True  # type: ignore[attr-defined]
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", scaled)


@dataclass
class AwsFaults:
    """Faults injected into one of the handler's own boto3 clients, before a request leaves.

    botocore's real retry logic runs on what comes back: a throttled request is retried with
    backoff (``BOTO3_TRIES`` tries in all, the handler's setting) and then raised.
    The throttling answer is DynamoDB's (ProvisionedThroughputExceededException).
    Only requests made while handling ``event_kind`` events are touched (the worker's, by
    default: the webhook posts to the same table with the same client); None touches all.
    """

    throttled: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _always: bool = False
    _window: threading.Event = field(default_factory=threading.Event)
    _window_trigger: Match | None = None
    event_kind: str | None = "work"

    @classmethod
    def install(
        cls, monkeypatch: Any, service: str = "dynamodb", event_kind: str | None = "work"
    ) -> AwsFaults:
        """Hook the handler's own client for ``service``; botocore's waits are scaled down."""
        faults = cls(event_kind=event_kind)
        clients.aws(service).meta.events.register(f"before-send.{service}", faults._before_send)
        quick_aws_backoff(monkeypatch)
        return faults

    def throttle(self, *operations: str, times: int = 1, absorbable: bool = False) -> None:
        """Throttle the next ``times`` requests of these operations (of any, if none named).

        ``absorbable``: never a call's last try, so botocore's retries always get through.
        """
        match: Match = lambda op, _body: not operations or op in operations  # noqa: E731
        with self._lock:
            self._rules.append(_Rule("throttle", match, times, spare_last_try=absorbable))

    def lose_response(self, when: Match, times: int = 1) -> None:
        """Let a matching request through, then lose its answer: botocore sees a read timeout
        (and, being botocore, sends the request again)."""
        with self._lock:
            self._rules.append(_Rule("lose", when, times))

    def throttle_always(self, on: bool = True) -> None:
        """Throttle every request until told otherwise: the table is unavailable."""
        self._always = on

    def throttle_after(self, trigger: Match) -> None:
        """Let the first request matching ``trigger`` through, then throttle every request
        until ``end_window()``."""
        self._window_trigger = trigger

    def end_window(self) -> None:
        self._window_trigger = None
        self._window.clear()

    def _take(self, operation: str, body: dict[str, Any], last_try: bool) -> str | None:
        with self._lock:
            for rule in self._rules:
                if rule.spare_last_try and last_try:
                    continue
                if rule.match(operation, body):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return rule.kind
        return None

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        kind = (handler_logs._context.get() or {}).get("event_kind")
        if self.event_kind is not None and kind != self.event_kind:
            return None
        try:
            raw = request.body.read() if isinstance(request.body, io.IOBase) else request.body
            if isinstance(request.body, io.IOBase):
                request.body.seek(0)
            body = json.loads(raw or b"{}")
        except (ValueError, AttributeError, OSError):
            body = {}
        if self._always or self._window.is_set():
            return self._throttled(request, operation)
        trigger = self._window_trigger
        if trigger is not None and trigger(operation, body):
            self._window.set()  # this request goes through; the ones after it do not
            return None
        fault = self._take(operation, body, _last_try(request))
        if fault == "throttle":
            return self._throttled(request, operation)
        if fault == "lose":
            self._send_and_lose(request)
            self.lost[operation] += 1
            raise ReadTimeoutError(endpoint_url=request.url)
        return None

    def _throttled(self, request: Any, operation: str) -> AWSResponse:
        self.throttled[operation] += 1
        payload = {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was "
            "exceeded. Consider increasing your provisioning level with the UpdateTable API.",
        }
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-RequestId": uuid.uuid4().hex.upper(),
        }
        return AWSResponse(request.url, 400, headers, _Body(json.dumps(payload).encode()))

    @staticmethod
    def _send_and_lose(request: Any) -> None:
        body = request.body
        if isinstance(body, io.IOBase):
            body = body.read()
        urllib3.request(
            request.method, request.url, body=body, headers=dict(request.headers.items())
        )


# -- sending ------------------------------------------------------------------------------


def quick_send_retries(bridge: Bridge) -> None:
    """Cut the Send API client's waits between its tries to 10 ms; it makes as many tries."""
    app.runtime().worker.messenger._backoff = 0.01


def say(bridge: Bridge, psid: str, text: str, mid: str | None = None) -> dict[str, Any]:
    """Deliver one message without waiting for the worker."""
    return bridge.deliver(webhook_body(messaging_text(psid, text, mid)))


def die_once(
    monkeypatch: Any, obj: object, method: str, when: Callable[..., bool] = lambda *a: True
) -> dict[str, int]:
    """The first call of ``obj.method`` (for which ``when(*args)`` holds) kills the worker."""
    real = getattr(obj, method)
    calls = {"died": 0, "calls": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["calls"] += 1
        if not calls["died"] and when(*args):
            calls["died"] += 1
            raise ContainerDied(f"died in {method}")
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, method, dying)
    return calls
