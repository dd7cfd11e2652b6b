"""A stand-in for Lambda's SQS event source mapping, polling a FIFO queue on moto.

It does what the mapping does, as AWS documents it:

- pollers receive up to ``batch_size`` messages (FIFO: SQS gives one group's messages to one
  receiver at a time) and invoke the function synchronously with them as ``Records``;
- at most ``max_concurrency`` invocations run at once (``ScalingConfig.MaximumConcurrency``);
- with ``ReportBatchItemFailures`` the records in ``batchItemFailures`` stay, the others are
  deleted; an error, a timeout or an invalid response fails the whole batch (nothing is
  deleted: it comes back after the queue's visibility timeout);
- a message received ``maxReceiveCount`` times goes to the dead-letter queue (SQS does it,
  on the receive after the last);
- without ``ReportBatchItemFailures`` (``report_batch_item_failures=False``) the function's
  answer is not read: a batch that returns is deleted whole;
- ``wait_seconds`` long-polls (``WaitTimeSeconds``) as Lambda's pollers do, instead of
  polling an empty queue every ``EMPTY_POLL_SLEEP``.

Python cannot kill a thread: an invocation past its timeout is treated as failed and its
thread runs on to the end, its late answer ignored. The deploy simulation kills processes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from local.runtime import ACCOUNT, REGION, lambda_context

Handler = Callable[[Any, Any], Any]
EMPTY_POLL_SLEEP = 0.02  # seconds between polls of an empty queue
IDLE_RECHECK_SECONDS = 0.2

log = logging.getLogger(__name__)


@dataclass
class Invocation:
    """One batch handed to the function, and how it ended."""

    records: list[dict[str, Any]]
    started: float  # time.monotonic()
    outcome: str = "running"  # succeeded | partial | failed | timed_out | invalid_response
    failed_ids: list[str] = field(default_factory=list)
    error: BaseException | None = None
    finished: float | None = None

    @property
    def bodies(self) -> list[str]:
        return [r["body"] for r in self.records]


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as Lambda hands it to the function (``event["Records"][i]``)."""
    attributes = dict(message.get("Attributes", {}))
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def failed_ids(response: Any, records: list[dict[str, Any]]) -> list[str] | None:
    """The records the function reported failed; None when Lambda would fail them all."""
    if response is None:
        return []
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    known = {r["messageId"] for r in records}
    ids = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in known:
            return None
        ids.append(identifier)
    return ids


class QueuePoller:
    """Feeds a handler from a FIFO queue as Lambda's event source mapping does."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        function_name: str = "messenger-bridge-local",
        batch_size: int = 10,
        max_concurrency: int = 5,
        timeout_seconds: float = 60.0,
        report_batch_item_failures: bool = True,
        wait_seconds: int = 0,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.timeout_seconds = timeout_seconds
        self.report_batch_item_failures = report_batch_item_failures
        self.wait_seconds = wait_seconds
        self.queue_arn = self._sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.invocations: list[Invocation] = []
        self.most_at_once = 0
        self._running = 0
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        for index in range(self.max_concurrency):
            thread = threading.Thread(target=self._poll, name=f"poller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def pause(self) -> None:
        """Stop taking new batches (those running finish): messages wait in the queue."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests look at ------------------------------------------------------------------

    def queue_depth(self) -> tuple[int, int]:
        """(visible, in flight) messages, as SQS counts them."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def idle(self) -> bool:
        """No invocation running and no message left, twice in a row: SQS (and moto) count
        the visible and the in-flight messages one after the other, so a message whose
        visibility runs out in between is counted in neither."""
        for reading in range(2):
            if reading:
                time.sleep(IDLE_RECHECK_SECONDS)
            with self._lock:
                if self._running:
                    return False
            if self.queue_depth() != (0, 0):
                return False
        return True

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every message is handled (deleted or on the dead-letter queue)."""
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue not idle after {timeout} s: {self.queue_depth()}")
            time.sleep(0.05)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met")
            time.sleep(0.02)

    # -- the mapping -------------------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stop.is_set():
            if self._paused.is_set():
                time.sleep(EMPTY_POLL_SLEEP)
                continue
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=self.wait_seconds,
                    AttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:  # the server stopping under us, say: try again
                if not self._stop.is_set():
                    log.exception("receive failed")
                time.sleep(0.2)
                continue
            if not messages:
                time.sleep(EMPTY_POLL_SLEEP)
                continue
            self._invoke([lambda_record(m, self.queue_arn) for m in messages])

    def _invoke(self, records: list[dict[str, Any]]) -> None:
        invocation = Invocation(records, time.monotonic())
        with self._lock:
            self.invocations.append(invocation)
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        result: dict[str, Any] = {}
        done = threading.Event()
        context = lambda_context(self.function_name, self.timeout_seconds)

        def run() -> None:
            try:
                result["response"] = self.handler({"Records": records}, context)
            except BaseException as error:  # a crash too: the batch fails, nothing more
                result["error"] = error
            finally:
                done.set()

        thread = threading.Thread(target=run, name="invocation", daemon=True)
        thread.start()
        finished = done.wait(self.timeout_seconds)
        try:
            self._settle(invocation, finished, result)
        finally:
            with self._lock:
                self._running -= 1
                invocation.finished = time.monotonic()
                self._lock.notify_all()

    def _settle(self, invocation: Invocation, finished: bool, result: dict[str, Any]) -> None:
        records = invocation.records
        if not finished:
            invocation.outcome = "timed_out"
            return
        if "error" in result:
            invocation.outcome, invocation.error = "failed", result["error"]
            return
        # Without ReportBatchItemFailures Lambda does not read the answer: the batch succeeded.
        response = result.get("response") if self.report_batch_item_failures else None
        ids = failed_ids(response, records)
        if ids is None:
            invocation.outcome = "invalid_response"
            return
        invocation.failed_ids = ids
        invocation.outcome = "partial" if ids else "succeeded"
        done = [r for r in records if r["messageId"] not in ids]
        for start in range(0, len(done), 10):
            try:
                self._sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
                        for i, r in enumerate(done[start : start + 10])
                    ],
                )
            except Exception:  # as Lambda does: they come back after the visibility timeout
                log.exception("delete failed: the batch's messages will come back")
                invocation.outcome = "delete_failed"


__all__ = ["ACCOUNT", "Invocation", "QueuePoller", "failed_ids", "lambda_record"]
