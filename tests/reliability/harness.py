"""What the reliability suite adds to ``tests/support/bridge.py``: faults the stand-ins do not
make (AWS throttling, lost answers, a dying or hanging worker), and the bookkeeping that says
what became of every message.

Faults are made where real ones happen: in the stand-ins' answers (the Messenger simulator,
the fake OpenAI server), in the handler's own boto3 clients (``AwsFaults``, a ``before-send``
hook: botocore's real retry logic decides what happens next) and in its own HTTP session (a
``requests`` response hook), and in the Lambda runtime (``ContainerDied``, a
``BaseException`` that no ``except Exception`` in the handler sees, as when the process is
killed). No handler code has a branch for tests.
"""

from __future__ import annotations

import contextvars
import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import urllib3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff

from handler import app, clients, replies, schema
from handler import logs as handler_logs
from local._http import Response
from local.model import last_user_text
from tests.support.bridge import Bridge, messaging_text, webhook_body

ANSWER_PREFIX = "Answer to: "
ANSWER_QUOTES = 200  # characters of the question an answer repeats
# botocore's ``max_attempts`` counts retries, not tries: the handler's clients try 4 times.
BOTO3_TRIES = clients._AWS_CONFIG.retries["max_attempts"] + 1
WEBHOOK_TRIES = clients._WEBHOOK_CONFIG.retries["max_attempts"] + 1  # the webhook's own calls
SEND_TRIES = 3  # the Send API client's tries per message (handler/messenger.py)
UNREACHABLE_CODES = {551, 10}  # Graph: the person cannot be messaged (for good)


def echo_answers(body: dict[str, Any]) -> str:
    """The fake model's answer names its question, so every answer can be traced back."""
    return answer_to(last_user_text(body))


def answer_to(text: str) -> str:
    return ANSWER_PREFIX + text[:ANSWER_QUOTES]


def is_answer(text: str) -> bool:
    return text.startswith(ANSWER_PREFIX)


def psid_marker(psid: str) -> str:
    """Questions in this suite carry their sender, so model requests can be attributed."""
    return f"[{psid}]"


def question(psid: str, text: str = "what is the answer?") -> str:
    return f"{psid_marker(psid)} {text}"


# -- what the model answered ------------------------------------------------------------------


class ModelLedger:
    """Which questions the fake OpenAI server answered with a chat completion (HTTP 200 and a
    choice: billed), read from the stand-in's own answers as they leave it."""

    def __init__(self, bridge: Bridge) -> None:
        self.billed: list[str] = []  # the last user text of each billed request
        self._lock = threading.Lock()
        model = bridge.model
        real = model.handle

        def handle(request: Any) -> Any:
            answer = real(request)
            if isinstance(answer, Response) and answer.status == 200:
                self._note(request, answer)
            return answer

        model.handle = handle  # type: ignore[method-assign]

    def _note(self, request: Any, answer: Response) -> None:
        try:
            body, sent = request.json(), json.loads(answer.body)
        except ValueError:
            return
        if (
            isinstance(sent, dict)
            and sent.get("object") == "chat.completion"
            and sent.get("choices")
        ):
            with self._lock:
                self.billed.append(last_user_text(body))

    def questions_of(self, psid: str) -> list[str]:
        with self._lock:
            return [q for q in self.billed if psid_marker(psid) in q]


def ledger(bridge: Bridge) -> ModelLedger:
    found = getattr(bridge, "ledger", None)
    if found is None:
        found = ModelLedger(bridge)
        bridge.ledger = found  # type: ignore[attr-defined]
    return found


# -- the dead-letter queue --------------------------------------------------------------------


def dead_letters(bridge: Bridge) -> list[dict[str, Any]]:
    """Every event moved to the dead-letter queue so far (the owner reads and removes them, as
    ``admin`` does, so that each is counted once and none hides another of its group)."""
    seen: list[dict[str, Any]] = getattr(bridge, "dead_seen", None) or []
    bridge.dead_seen = seen  # type: ignore[attr-defined]
    sqs, url = bridge.sqs, bridge.harness.dead_letter_url
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return list(seen)
        for message in messages:
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


# -- what became of one person's messages ------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """What one person got, what the dead-letter queue holds for them, what they were charged."""

    answers: int  # distinct answers that reached them (a long one counts once)
    repeated: int  # answer bubbles that reached them more than once
    maybe: int  # answers or apologies sent whose connection broke: Graph may have them
    apologies: int
    notes: int  # "I'm having trouble reaching the model" (said once, not an ending)
    notices: int  # the bot's own texts: over the limit, "only text", command replies
    unreachable: int  # sends Graph refused for good (551, outside the window)
    dead_letters: int  # their events on the dead-letter queue
    model_calls: int  # generation requests that carried one of their questions
    billed: int  # distinct questions of theirs the model answered (200, a completion)
    counted: int  # their questions counted, all days together

    def describe(self) -> str:
        extra = [
            f"{n} {what}"
            for n, what in (
                (self.repeated, "repeated bubble(s)"),
                (self.maybe, "answer(s) or apology(ies) maybe delivered (connection broke)"),
                (self.unreachable, "refused for good by Graph"),
                (self.notes, "trouble note(s)"),
            )
            if n
        ]
        return (
            f"{self.answers} answer(s), {self.apologies} apology(ies), "
            f"{self.notices} notice(s), {self.dead_letters} on the DLQ"
            + "".join(f", {e}" for e in extra)
            + f"; model asked {self.model_calls}x, answered {self.billed}; "
            f"counted {self.counted}"
        )

    @property
    def endings(self) -> int:
        """Messages that ended one of the accepted ways (unreachable: nobody to answer)."""
        return self.answers + self.maybe + self.apologies + self.dead_letters + self.unreachable

    def ended_once(self, messages: int = 1) -> bool:
        """The invariant: each message ended exactly one way, nothing twice, and the count is
        what the model answered."""
        return self.endings == messages and self.repeated == 0 and self.counted == self.billed


def counted(bridge: Bridge, psid: str) -> int:
    """The person's question counters summed over every day (a retry may cross midnight)."""
    items = bridge.dynamodb.query(
        TableName=bridge.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :day)",
        ExpressionAttributeValues={
            ":pk": {"S": schema.user_pk(psid)},
            ":day": {"S": schema.DAY_PREFIX},
        },
        ConsistentRead=True,
    )["Items"]
    return sum(int(item["count"]["N"]) for item in items)


def _error_code(call: Any) -> int | None:
    error = (call.response or {}).get("error") if isinstance(call.response, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def tally(bridge: Bridge, psid: str, *, answer: Callable[[str], bool] = is_answer) -> Tally:
    calls = [c for c in bridge.graph.calls if c.psid == psid]
    texts = [
        c.body["message"]["text"]
        for c in calls
        if c.ok and c.kind == "message" and isinstance(c.body["message"].get("text"), str)
    ]
    delivered = [t for t in texts if answer(t)]
    broken = [  # sent, and the connection broke before Graph answered: never sent again
        str(c.body["message"].get("text")) for c in calls if c.status == 0 and c.kind == "message"
    ]
    broken_answers = {t for t in broken if answer(t)} - set(delivered)
    apologies = [t for t in texts if t in (replies.APOLOGY, replies.QUOTA_APOLOGY)]
    notes = [t for t in texts if t == replies.MODEL_TROUBLE]
    asked = sum(
        1
        for request in bridge.model.requests
        if psid_marker(psid) in str(request["messages"][-1].get("content"))
    )
    return Tally(
        answers=len(set(delivered)),
        repeated=len(delivered) - len(set(delivered)),
        maybe=len(broken_answers) + broken.count(replies.APOLOGY),
        apologies=len(apologies),
        notes=len(notes),
        notices=len(texts) - len(delivered) - len(apologies) - len(notes),
        unreachable=sum(1 for c in calls if _error_code(c) in UNREACHABLE_CODES),
        dead_letters=sum(1 for e in dead_letters(bridge) if e.get("psid") == psid),
        model_calls=asked,
        billed=len(set(ledger(bridge).questions_of(psid))),
        counted=counted(bridge, psid),
    )


# -- the queue and Lambda's side ----------------------------------------------------------------


class ContainerDied(BaseException):
    """Stands for the runtime going away mid-event (out of memory, killed at the timeout):
    a BaseException, so none of the handler's ``except Exception`` clean-up runs."""


# When the invocation that runs this code ends (time.monotonic()), as Lambda's context says.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "invocation_deadline", default=None
)


class LambdaRuntime:
    """Wraps the function the poller invokes, as Lambda's runtime does: it knows each
    invocation's deadline (for faults that last until Lambda ends the invocation) and what each
    invocation's records were."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._handler = bridge.poller.handler
        bridge.poller.handler = self

    def __call__(self, event: Any, context: Any) -> Any:
        deadline = getattr(context, "deadline", None)
        token = _deadline.set(deadline)
        try:
            return self._handler(event, context)
        finally:
            _deadline.reset(token)


def receives(bridge: Bridge, text: str) -> list[float]:
    """When each invocation that carried a record with ``text`` started (time.monotonic())."""
    return [i.started for i in bridge.poller.invocations if any(text in b for b in i.bodies)]


def outcomes(bridge: Bridge) -> Counter[str]:
    """How the poller's invocations ended: succeeded, partial, failed, timed_out..."""
    return Counter(i.outcome for i in bridge.poller.invocations)


def batch_counts(bridge: Bridge) -> dict[str, int]:
    """The invocations, and those that did not end cleanly, for a report row's counts."""
    ended = outcomes(bridge)
    counts = {"batches": sum(ended.values())}
    for outcome in ("partial", "failed", "timed_out", "invalid_response"):
        if ended[outcome]:
            counts[f"batches_{outcome.replace('_', ' ')}"] = ended[outcome]
    return counts


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


def _text(body: dict[str, Any]) -> str:
    return json.dumps(body)


def writes_quota(operation: str, body: dict[str, Any]) -> bool:
    """The transaction that records the answer and counts the question (``DAY#`` counter)."""
    return operation == "TransactWriteItems" and f'"{schema.DAY_PREFIX}' in _text(body)


def claims_event(operation: str, body: dict[str, Any]) -> bool:
    """The claim: the conditional UpdateItem that takes an event's item for an attempt."""
    return operation == "UpdateItem" and "attribute_not_exists(#pk)" in str(
        body.get("ConditionExpression")
    )


def finishes_event(operation: str, body: dict[str, Any]) -> bool:
    """The finish: the event's item set done, with the conversation and the user's activity."""
    return operation == "TransactWriteItems" and '":done"' in _text(body)


def releases_event(operation: str, body: dict[str, Any]) -> bool:
    """The release of a failed attempt's lease (``last_error`` recorded)."""
    return operation == "UpdateItem" and "last_error" in str(body.get("UpdateExpression"))


def records_sent(operation: str, body: dict[str, Any]) -> bool:
    """The write that records how many bubbles of a recorded reply the Send API confirmed."""
    return operation == "UpdateItem" and str(body.get("UpdateExpression")).startswith("SET sent")


def any_write(operation: str, body: dict[str, Any]) -> bool:
    return operation in WRITES


@dataclass
class _Rule:
    kind: str  # throttle | fail | lose | die_before | die_after | hang | unprocessed | refuse
    match: Match
    times: int
    spare_last_try: bool = False  # a fault botocore's retries absorb
    arg: Any = None


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


# The services' own words for throttling and for an internal error, in their JSON protocols
# (SQS speaks JSON with the query protocol's codes in ``x-amzn-query-error``).
_THROTTLE = {
    "dynamodb": (
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
        None,
    ),
    "sqs": ("com.amazonaws.sqs#ThrottlingException", "Rate exceeded", "RequestThrottled;Sender"),
}
_INTERNAL = {
    "dynamodb": ("com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal error", None),
    "sqs": (
        "com.amazonaws.sqs#InternalError",
        "We encountered an internal error. Please try again.",
        "InternalError;Receiver",
    ),
}


@dataclass
class AwsFaults:
    """Faults injected into one of the handler's own boto3 clients, before a request leaves.

    botocore's real retry logic runs on what comes back: a throttled request is retried with
    backoff (``BOTO3_TRIES`` tries in all, the handler's setting) and then raised. Only
    requests made while handling ``event_kind`` events are touched (``"queue"``, the
    worker's, by default; ``"http"`` for the webhook's); None touches all.
    """

    service: str = "dynamodb"
    event_kind: str | None = "queue"
    throttled: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    died: Counter[str] = field(default_factory=Counter)
    hung: Counter[str] = field(default_factory=Counter)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _always: bool = False
    _window: threading.Event = field(default_factory=threading.Event)
    _window_trigger: Match | None = None

    @classmethod
    def install(
        cls, monkeypatch: Any, service: str = "dynamodb", event_kind: str | None = "queue"
    ) -> AwsFaults:
        """Hook the handler's own client for ``service``; botocore's waits are scaled down."""
        faults = cls(service=service, event_kind=event_kind)
        for client in (clients.aws(service), clients.webhook_aws(service)):
            client.meta.events.register(f"before-send.{service}", faults._before_send)
        quick_aws_backoff(monkeypatch)
        return faults

    # -- what to do ------------------------------------------------------------------------

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    @staticmethod
    def _named(operations: tuple[str, ...], when: Match | None) -> Match:
        def match(operation: str, body: dict[str, Any]) -> bool:
            if operations and operation not in operations:
                return False
            return when is None or when(operation, body)

        return match

    def throttle(
        self, *operations: str, times: int = 1, absorbable: bool = False, when: Match | None = None
    ) -> None:
        """Throttle the next ``times`` requests of these operations (of any, if none named).

        ``absorbable``: never a call's last try, so botocore's retries always get through.
        """
        self._add(_Rule("throttle", self._named(operations, when), times, absorbable))

    def fail(self, *operations: str, times: int = 1, when: Match | None = None) -> None:
        """Answer the next ``times`` requests with HTTP 500 (an internal error)."""
        self._add(_Rule("fail", self._named(operations, when), times))

    def lose_response(self, when: Match, times: int = 1) -> None:
        """Let a matching request through, then lose its answer: botocore sees a read timeout
        (and, being botocore, sends the request again)."""
        self._add(_Rule("lose", when, times))

    def die_before(self, when: Match, times: int = 1) -> None:
        """The container dies as a matching request is about to leave (it never does)."""
        self._add(_Rule("die_before", when, times))

    def die_after(self, when: Match, times: int = 1) -> None:
        """A matching request reaches AWS and is applied; the container dies before the
        answer is read."""
        self._add(_Rule("die_after", when, times))

    def hang(self, when: Match, times: int = 1, read_timeout: float = 5.0) -> None:
        """AWS takes a matching request and never answers: botocore waits its read timeout
        (the handler's 5 s) and tries again; when the invocation's time is up, Lambda ends it
        (a ``ContainerDied``: Python cannot kill the thread) and the fault is over. Needs
        ``LambdaRuntime`` for the invocation's deadline."""
        self._add(_Rule("hang", when, times, arg=read_timeout))

    def unprocessed_keys(self, times: int = 1) -> None:
        """BatchGetItem answers 200 with every key unprocessed, as DynamoDB does under load."""
        self._add(_Rule("unprocessed", self._named(("BatchGetItem",), None), times))

    def refuse_entries(self, ids: set[str], code: str = "InternalError", times: int = 1) -> None:
        """SendMessageBatch queues every entry but those whose ``Id`` is in ``ids``, which
        its answer lists as failed (HTTP 200 with ``Failed`` entries)."""
        self._add(_Rule("refuse", self._named(("SendMessageBatch",), None), times, arg=(ids, code)))

    def throttle_always(self, on: bool = True) -> None:
        """Throttle every request until told otherwise: the service is unavailable."""
        self._always = on

    def throttle_after(self, trigger: Match) -> None:
        """Let the first request matching ``trigger`` through, then throttle every request
        until ``end_window()``."""
        self._window_trigger = trigger

    def end_window(self) -> None:
        self._window_trigger = None
        self._window.clear()

    @property
    def total(self) -> int:
        return sum(
            sum(c.values()) for c in (self.throttled, self.failed, self.lost, self.died, self.hung)
        )

    # -- the hook --------------------------------------------------------------------------

    def _take(self, operation: str, body: dict[str, Any], last_try: bool) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.spare_last_try and last_try:
                    continue
                if rule.match(operation, body):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        kind = (handler_logs._context.get() or {}).get("event_kind")
        if self.event_kind is not None and kind != self.event_kind:
            return None
        body = _request_json(request)
        if self._always or self._window.is_set():
            return self._error(request, operation, _THROTTLE, self.throttled)
        trigger = self._window_trigger
        if trigger is not None and trigger(operation, body):
            self._window.set()  # this request goes through; the ones after it do not
            return None
        rule = self._take(operation, body, _last_try(request))
        if rule is None:
            return None
        if rule.kind == "throttle":
            return self._error(request, operation, _THROTTLE, self.throttled)
        if rule.kind == "fail":
            return self._error(request, operation, _INTERNAL, self.failed, status=500)
        if rule.kind == "lose":
            _send(request)
            self.lost[operation] += 1
            raise ReadTimeoutError(endpoint_url=request.url)
        if rule.kind == "die_before":
            self.died[operation] += 1
            raise ContainerDied(f"died before {operation} left")
        if rule.kind == "die_after":
            _send(request)
            self.died[operation] += 1
            raise ContainerDied(f"died after {operation} was applied")
        if rule.kind == "hang":
            self.hung[operation] += 1
            return self._hang(request, rule)
        if rule.kind == "unprocessed":
            keys = body.get("RequestItems", {})
            return json_answer(request, 200, {"Responses": {}, "UnprocessedKeys": keys})
        if rule.kind == "refuse":
            return self._refuse(request, body, *rule.arg)
        raise AssertionError(rule.kind)

    def _error(
        self,
        request: Any,
        operation: str,
        table: dict[str, tuple[str, str, str | None]],
        counter: Counter[str],
        status: int = 400,
    ) -> AWSResponse:
        counter[operation] += 1
        error_type, message, query_error = table[self.service]
        headers = {"x-amzn-query-error": query_error} if query_error else {}
        return json_answer(request, status, {"__type": error_type, "message": message}, headers)

    def _hang(self, request: Any, rule: _Rule) -> AWSResponse:
        deadline = _deadline.get()
        if deadline is None or time.monotonic() + rule.arg < deadline:
            time.sleep(rule.arg)
            raise ReadTimeoutError(endpoint_url=request.url)
        # Lambda ends the invocation at its deadline: the poller sees the timeout first, then
        # this thread goes as the process would (the fault ends with it).
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.5)
        raise ContainerDied("Lambda ended the invocation at its timeout")

    @staticmethod
    def _refuse(request: Any, body: dict[str, Any], ids: set[str], code: str) -> AWSResponse:
        entries = body.get("Entries", [])
        kept = [e for e in entries if e["Id"] not in ids]
        answer: dict[str, Any] = {"Successful": [], "Failed": []}
        if kept:
            sent = json.loads(_send(request, {**body, "Entries": kept}))
            answer["Successful"] = sent.get("Successful", [])
        answer["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": code, "Message": "Internal error"}
            for e in entries
            if e["Id"] in ids
        ]
        return json_answer(request, 200, answer)


def _request_json(request: Any) -> dict[str, Any]:
    try:
        raw = request.body.read() if isinstance(request.body, io.IOBase) else request.body
        if isinstance(request.body, io.IOBase):
            request.body.seek(0)
        body = json.loads(raw or b"{}")
    except (ValueError, AttributeError, OSError):
        return {}
    return body if isinstance(body, dict) else {}


def _send(request: Any, body: dict[str, Any] | None = None) -> bytes:
    """Send the request (or ``body`` in its place) to the service as it is; its answer."""
    data = request.body
    if isinstance(data, io.IOBase):
        data = data.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    if body is not None:
        data = json.dumps(body).encode()
    answer = urllib3.request(request.method, request.url, body=data, headers=headers)
    return answer.data


def json_answer(
    request: Any, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> AWSResponse:
    all_headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "x-amzn-RequestId": uuid.uuid4().hex.upper(),
        **(headers or {}),
    }
    return AWSResponse(request.url, status, all_headers, _Body(json.dumps(payload).encode()))


# -- Graph: the handler's own HTTP session ---------------------------------------------------


def die_after_graph_answers(
    psid: str, nth: int, only: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, int]:
    """The container dies right after the Send API answered 200 to the ``nth`` message to
    ``psid`` (counted from now): Graph has the bubble; nothing after it ran."""
    seen = {"messages": 0, "died": 0}

    def hook(response: Any, **_: Any) -> Any:
        try:
            sent = json.loads(response.request.body or b"{}")
        except (ValueError, TypeError):
            return response
        if "message" not in sent or str(sent.get("recipient", {}).get("id")) != psid:
            return response
        if only is not None and not only(sent["message"]):
            return response
        seen["messages"] += 1
        if response.status_code == 200 and seen["messages"] == nth and not seen["died"]:
            seen["died"] += 1
            raise ContainerDied("died after Graph's 200, before recording it")
        return response

    clients.http_session().hooks["response"].append(hook)
    return seen


def quick_send_retries(bridge: Bridge) -> None:
    """Cut the Send API client's waits between its tries to 10 ms; it makes as many tries."""
    app.runtime().bot.messenger._backoff = 0.01


# -- sending ------------------------------------------------------------------------------


def say(bridge: Bridge, psid: str, text: str, mid: str | None = None) -> dict[str, Any]:
    """Deliver one message without waiting for the worker."""
    return bridge.deliver(webhook_body(messaging_text(psid, text, mid)))


def fresh_ms(offset: int = 0) -> int:
    return int(time.time() * 1000) + offset
