"""QueuePoller, the stand-in for Lambda's SQS event source mapping, with tiny handlers.

Against moto's server in a child process (``python -m local.aws``, with the FIFO fix), on
FIFO queues made as the stack makes them. Visibility timeouts are a second or two, so a
message that fails comes back quickly.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local.aws import create_queues
from local.event_source import QueuePoller
from local.runtime import LambdaContext
from tests.support.processes import ChildServer, free_port

Respond = Callable[[list[dict[str, Any]], int], Any]  # (records, call number) -> response


@dataclass
class Queues:
    sqs: Any
    url: str
    dead: str
    arn: str

    def send(self, group: str, body: str) -> str:
        return self.sqs.send_message(
            QueueUrl=self.url,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=uuid.uuid4().hex,
        )["MessageId"]

    def depth(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def make_queues(endpoint: str, *, visibility_timeout: int = 1, max_receives: int = 5) -> Queues:
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    name = f"poller-{uuid.uuid4().hex[:10]}"
    url, dead = create_queues(
        sqs, name, visibility_timeout=visibility_timeout, max_receives=max_receives
    )
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Queues(sqs, url, dead, arn)


@pytest.fixture
def queues(moto_server: ChildServer, aws_env: None) -> Queues:
    return make_queues(moto_server.url)


@dataclass
class Call:
    records: list[dict[str, Any]]
    context: LambdaContext
    started: float
    ended: float = 0.0


def all_done(records: list[dict[str, Any]], number: int) -> Any:
    return None


@dataclass
class Recorder:
    """A handler that records every batch and answers what ``respond`` says (None: all done).

    ``respond`` may raise or sleep; ``running``/``most_running`` count invocations at once,
    and ``overlaps`` notes any message group handed over while one of its batches was running.
    """

    respond: Respond = all_done
    calls: list[Call] = field(default_factory=list)
    running: int = 0
    most_running: int = 0
    overlaps: list[str] = field(default_factory=list)
    _groups: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> Any:
        records = event["Records"]
        groups = {r["attributes"]["MessageGroupId"] for r in records}
        call = Call(records, context, time.monotonic())
        with self._lock:
            self.calls.append(call)
            number = len(self.calls)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.overlaps += sorted(groups & self._groups)
            self._groups |= groups
        try:
            return self.respond(records, number)
        finally:
            with self._lock:
                self.running -= 1
                self._groups -= groups
                call.ended = time.monotonic()

    def bodies(self) -> list[list[str]]:
        with self._lock:
            return [[r["body"] for r in call.records] for call in self.calls]

    def seen(self) -> list[str]:
        return [body for bodies in self.bodies() for body in bodies]


@pytest.fixture
def run_poller(queues: Queues) -> Iterator[Callable[..., QueuePoller]]:
    """``run_poller(handler, on=queues, batch_size=..., ...)``: a started poller on ``on``
    (default: the ``queues`` fixture's), stopped at the end."""
    started: list[QueuePoller] = []

    def run(handler: Any, on: Queues | None = None, **options: Any) -> QueuePoller:
        target = on or queues
        poller = QueuePoller(target.sqs, target.url, handler, **options).start()
        started.append(poller)
        return poller

    yield run
    for poller in started:
        poller.stop()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def failures(*records: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}


# -- delivery --------------------------------------------------------------------------------


def test_a_batch_is_delivered_in_lambdas_record_shape(queues: Queues, run_poller) -> None:
    ids = [queues.send("alice", "a1"), queues.send("alice", "a2"), queues.send("bob", "b1")]
    recorder = Recorder()
    poller = run_poller(recorder, max_concurrency=1, function_name="fn-local", timeout_seconds=7)
    poller.wait_idle(10)

    [call] = recorder.calls  # one receive took all three: one invocation
    assert [r["body"] for r in call.records] == ["a1", "a2", "b1"]
    assert [r["messageId"] for r in call.records] == ids
    record = call.records[0]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.arn and queues.arn.endswith(".fifo")
    assert record["awsRegion"] == "us-east-1" and record["receiptHandle"]
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["MessageGroupId"] == "alice"
    assert attributes["MessageDeduplicationId"] and attributes["SentTimestamp"].isdigit()
    assert call.records[2]["attributes"]["MessageGroupId"] == "bob"
    context = call.context
    assert context.function_name == "fn-local"
    assert context.invoked_function_arn.endswith(":function:fn-local")
    assert 0 < context.get_remaining_time_in_millis() <= 7000
    [invocation] = poller.invocations
    assert invocation.outcome == "succeeded" and invocation.bodies == ["a1", "a2", "b1"]
    assert queues.depth() == 0  # all deleted


def test_records_not_reported_failed_are_deleted_and_the_failed_ones_come_back(
    queues: Queues, run_poller
) -> None:
    queues.send("alice", "a1")
    failed_id = queues.send("bob", "b1")

    def respond(records: list[dict[str, Any]], number: int) -> Any:
        if number == 1:
            return failures(*(r for r in records if r["body"] == "b1"))
        return {"batchItemFailures": []}

    recorder = Recorder(respond)
    poller = run_poller(recorder, max_concurrency=1)
    wait_until(lambda: len(recorder.calls) >= 2)
    poller.wait_idle(10)

    assert recorder.bodies() == [["a1", "b1"], ["b1"]]
    again = recorder.calls[1].records[0]
    assert again["messageId"] == failed_id
    assert again["attributes"]["ApproximateReceiveCount"] == "2"
    assert recorder.calls[1].started - recorder.calls[0].ended >= 0.8  # the visibility timeout
    first, second = poller.invocations
    assert (first.outcome, first.failed_ids) == ("partial", [failed_id])
    assert second.outcome == "succeeded"
    assert queues.depth() == 0


def test_an_exception_fails_the_whole_batch(queues: Queues, run_poller) -> None:
    queues.send("alice", "a1")
    queues.send("bob", "b1")

    def respond(records: list[dict[str, Any]], number: int) -> Any:
        if number == 1:
            raise RuntimeError("boom")
        return None

    recorder = Recorder(respond)
    poller = run_poller(recorder, max_concurrency=1)
    wait_until(lambda: sorted(recorder.seen()) == ["a1", "a1", "b1", "b1"])
    poller.wait_idle(10)

    first = poller.invocations[0]
    assert first.outcome == "failed" and isinstance(first.error, RuntimeError)
    again = [r for call in recorder.calls[1:] for r in call.records]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in again} == {"2"}
    assert recorder.calls[1].started - recorder.calls[0].ended >= 0.8
    assert queues.depth() == 0


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        {"batchItemFailures": [{"id": "no itemIdentifier"}]},
        {"batchItemFailures": "all of them"},
        "done",
    ],
    ids=["unknown-id", "no-identifier", "not-a-list", "not-an-object"],
)
def test_an_invalid_response_fails_the_whole_batch(
    queues: Queues, run_poller, response: Any
) -> None:
    queues.send("alice", "a1")
    queues.send("bob", "b1")
    recorder = Recorder(lambda records, number: response if number == 1 else None)
    poller = run_poller(recorder, max_concurrency=1)
    wait_until(lambda: sorted(recorder.seen()) == ["a1", "a1", "b1", "b1"])
    poller.wait_idle(10)

    assert poller.invocations[0].outcome == "invalid_response"
    again = [r for call in recorder.calls[1:] for r in call.records]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in again} == {"2"}


def test_a_timeout_fails_the_whole_batch_and_its_late_answer_is_ignored(
    queues: Queues, run_poller
) -> None:
    """Two messages of one group time out together: they come back, in order (moto's fix)."""
    queues.send("alice", "a1")
    queues.send("alice", "a2")

    def respond(records: list[dict[str, Any]], number: int) -> Any:
        if number == 1:
            time.sleep(0.6)  # past the 0.3 s timeout; then says "all done", too late
        return None

    recorder = Recorder(respond)
    poller = run_poller(recorder, max_concurrency=2, timeout_seconds=0.3)
    wait_until(lambda: recorder.seen().count("a2") >= 2)
    poller.wait_idle(10)

    assert recorder.bodies()[0] == ["a1", "a2"]
    assert poller.invocations[0].outcome == "timed_out"
    assert recorder.seen()[2:] == ["a1", "a2"]  # the earlier message first, as SQS does
    again = [r for call in recorder.calls[1:] for r in call.records]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in again} == {"2"}
    assert {i.outcome for i in poller.invocations[1:]} == {"succeeded"}


# -- concurrency and order -----------------------------------------------------------------------


def test_max_concurrency_is_respected(queues: Queues, run_poller) -> None:
    for n in range(8):
        queues.send(f"person-{n}", f"m{n}")

    def slow(records: list[dict[str, Any]], number: int) -> Any:
        time.sleep(0.25)

    recorder = Recorder(slow)
    started = time.monotonic()
    poller = run_poller(recorder, batch_size=1, max_concurrency=3)
    poller.wait_idle(15)

    assert sorted(recorder.seen()) == [f"m{n}" for n in range(8)]
    assert recorder.most_running == 3 and poller.most_at_once == 3
    assert time.monotonic() - started >= 3 * 0.25  # 8 batches, 3 at a time


def test_one_group_runs_one_at_a_time_and_in_order_across_a_failure_and_backoff(
    moto_server: ChildServer, run_poller
) -> None:
    """As the worker does: at a person's first failure, report it and the person's later
    records, back the failed one off with ChangeMessageVisibility, let the later ones go at
    once. SQS keeps them behind it; other people go on meanwhile."""
    queues = make_queues(moto_server.url, visibility_timeout=20)  # only the backoff brings back
    for n in range(1, 5):
        queues.send("alice", f"a{n}")
    for n in range(1, 4):
        queues.send(f"person-{n}", f"p{n}")
    handled: list[str] = []
    failed_once: set[str] = set()
    lock = threading.Lock()

    def respond(records: list[dict[str, Any]], number: int) -> Any:
        by_group: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_group.setdefault(record["attributes"]["MessageGroupId"], []).append(record)
        failed: list[dict[str, Any]] = []
        for members in by_group.values():
            for index, record in enumerate(members):
                time.sleep(0.05)
                if record["body"] == "a2" and "a2" not in failed_once:
                    failed_once.add("a2")
                    queues.sqs.change_message_visibility(
                        QueueUrl=queues.url,
                        ReceiptHandle=record["receiptHandle"],
                        VisibilityTimeout=1,
                    )
                    for later in members[index + 1 :]:
                        queues.sqs.change_message_visibility(
                            QueueUrl=queues.url,
                            ReceiptHandle=later["receiptHandle"],
                            VisibilityTimeout=0,
                        )
                    failed += members[index:]
                    break
                with lock:
                    handled.append(record["body"])
        return failures(*failed)

    recorder = Recorder(respond)
    started = time.monotonic()
    poller = run_poller(recorder, on=queues, batch_size=3, max_concurrency=3)
    wait_until(lambda: "a4" in handled, timeout=15)
    poller.wait_idle(10)

    assert [b for b in handled if b.startswith("a")] == ["a1", "a2", "a3", "a4"]
    assert sorted(b for b in handled if b.startswith("p")) == ["p1", "p2", "p3"]
    assert handled.index("p3") < handled.index("a2")  # others went on during the backoff
    assert recorder.overlaps == []  # no group was ever in two invocations at once
    assert time.monotonic() - started < 10  # the 1 s backoff, not the 20 s visibility timeout
    [partial] = [i for i in poller.invocations if i.outcome == "partial"]
    failed_bodies = [r["body"] for r in partial.records if r["messageId"] in partial.failed_ids]
    assert failed_bodies == ["a2", "a3"]  # the failed one and the person's later one


def test_after_max_receives_the_message_is_on_the_dead_letter_queue(
    moto_server: ChildServer, run_poller
) -> None:
    queues = make_queues(moto_server.url, visibility_timeout=1, max_receives=2)
    queues.send("alice", "doomed")
    queues.send("bob", "fine")

    def respond(records: list[dict[str, Any]], number: int) -> Any:
        return failures(*(r for r in records if r["body"] == "doomed"))

    recorder = Recorder(respond)
    poller = run_poller(recorder, on=queues, max_concurrency=2)
    wait_until(lambda: queues.depth(queues.dead) == 1, timeout=15)
    poller.wait_idle(10)

    assert recorder.seen().count("doomed") == 2  # maxReceiveCount receives, then SQS moves it
    assert recorder.seen().count("fine") == 1
    [dead] = queues.sqs.receive_message(
        QueueUrl=queues.dead, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    assert dead["Body"] == "doomed" and dead["Attributes"]["MessageGroupId"] == "alice"
    assert queues.depth() == 0


def test_pause_holds_new_batches_until_resumed(queues: Queues, run_poller) -> None:
    recorder = Recorder()
    poller = run_poller(recorder, max_concurrency=2)
    poller.pause()
    time.sleep(0.1)
    queues.send("alice", "held")
    time.sleep(0.3)
    assert recorder.calls == [] and poller.queue_depth() == (1, 0)
    poller.resume()
    poller.wait_idle(10)
    assert recorder.seen() == ["held"]


# -- moto's FIFO order -------------------------------------------------------------------------


def receive_after_timeout(endpoint: str) -> list[str]:
    """Two messages of a group received together time out together: which comes first?"""
    queues = make_queues(endpoint, visibility_timeout=1)
    queues.send("alice", "first")
    queues.send("alice", "second")
    taken = queues.sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in taken] == ["first", "second"]
    time.sleep(1.3)  # both visible again, neither deleted
    again = queues.sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10)
    return [m["Body"] for m in again.get("Messages", [])]


def test_moto_needs_the_fifo_fix_for_in_flight_messages_that_time_out_together(
    moto_server: ChildServer, aws_env: None
) -> None:
    # moto's own server: the later message overtakes the earlier one, which SQS never does.
    port = free_port()
    plain = ChildServer(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], None, port, 30
    )
    try:
        unfixed = receive_after_timeout(plain.url)
    finally:
        plain.stop()
    assert unfixed == ["second"], (
        f"moto delivered {unfixed}: if moto now keeps FIFO order by itself, "
        "local.aws.fix_moto_sqs may go"
    )
    # python -m local.aws, with local.aws.fix_moto_sqs: the group's order holds.
    assert receive_after_timeout(moto_server.url)[0] == "first"


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\ufffe", "\uffff"])
def test_the_queue_refuses_a_body_sqs_refuses(queues: Queues, character: str) -> None:
    with pytest.raises(ClientError) as refused:
        queues.send("alice", f"a{character}b")
    assert refused.value.response["Error"]["Code"] == "InvalidMessageContents"
    queues.send("alice", "tab\t, newline\n, DEL\x7f, U+FFFD\ufffd, astral \U0010ffff: all fine")
    assert queues.depth() == 1


def test_records_carry_the_body_unchanged(queues: Queues, run_poller) -> None:
    body = json.dumps({"text": "Grüße 👋", "n": 1}, ensure_ascii=False)
    queues.send("alice", body)
    recorder = Recorder()
    run_poller(recorder).wait_idle(10)
    [[seen]] = recorder.bodies()
    assert seen == body and json.loads(seen)["text"] == "Grüße 👋"
