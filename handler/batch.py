"""The queue's side of the worker: SQS records in, Lambda's partial batch response out.

Lambda's event source mapping hands the function a batch from the FIFO queue, each record
one event, grouped by person (the message group). People are answered in parallel, each
person's records in order. When a record fails, it and every later record **of the same
person** are reported failed (``batchItemFailures``), so that person's order holds while
other people go on; Lambda deletes the rest.

A failed record is backed off by setting its visibility: 10 s, 30 s, 90 s... (a setting),
so a Send API outage is not burnt through in a second. The person's later records are made
visible again at once: SQS still holds them behind the failed one. A crash or timeout
leaves the whole batch to come back after the queue's visibility timeout. After the
redrive policy's receives, SQS moves a record to the dead-letter queue, and the person's
later messages go on.

aws-lambda-powertools' ``SqsFifoPartialProcessor(skip_group_on_error=True)`` has the
group semantics but neither the backoff nor the parallel groups, and adds ~26 ms of imports
and 7 MB to the archive (docs/BENCHMARKS.md): this module is the ~100 lines instead.
"""

from __future__ import annotations

import contextvars
import json
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from . import metrics
from .bot import Attempt, RetryLater
from .events import Inbound
from .logs import log, log_context

# SQS refuses a visibility timeout over 12 hours; long before that a person has given up.
MAX_BACKOFF_SECONDS = 900
BACKOFF_FACTOR = 3
# A person's next record is started only with this much of the invocation left.
MIN_RECORD_SECONDS = 15.0
# Work stops this long before Lambda's own timeout, to report the batch.
SAFETY_SECONDS = 2.0
MAX_PARALLEL_PEOPLE = 10  # a FIFO batch holds at most 10 records

Handle = Callable[[Inbound, Attempt], str]
ChangeVisibility = Callable[[list[tuple[str, int]]], None]  # (receipt handle, seconds)


@dataclass(frozen=True)
class Record:
    message_id: str
    receipt_handle: str
    body: str
    group: str
    receive_count: int
    sent_ms: int


def parse_record(raw: dict[str, Any]) -> Record:
    attributes = raw.get("attributes") or {}
    return Record(
        message_id=str(raw.get("messageId", "")),
        receipt_handle=str(raw.get("receiptHandle", "")),
        body=str(raw.get("body", "")),
        group=str(attributes.get("MessageGroupId", "")),
        receive_count=_int(attributes.get("ApproximateReceiveCount"), 1),
        sent_ms=_int(attributes.get("SentTimestamp"), 0),
    )


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def backoff_seconds(receive_count: int, base: int) -> int:
    """The wait before the next receive of a record that failed on its ``receive_count``th."""
    return min(MAX_BACKOFF_SECONDS, base * BACKOFF_FACTOR ** max(0, receive_count - 1))


def failure_kind(error: Exception) -> str:
    """An unexpected error's kind for the metrics: AWS's (DynamoDB, SQS) or our own."""
    return "store" if type(error).__module__.startswith("botocore") else "crash"


def by_person(records: Sequence[Record]) -> dict[str, list[Record]]:
    """Records by message group, each group in the batch's order."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.group, []).append(record)
    return groups


@dataclass(frozen=True)
class Failure:
    record: Record
    visible_in: int  # seconds until SQS may deliver it again


@dataclass(frozen=True)
class Limits:
    max_receives: int
    retry_delay_seconds: int


def run_group(
    records: Sequence[Record], handle: Handle, deadline: float, lease_until_ms: int, limits: Limits
) -> list[Failure]:
    """One person's records, in order; at the first failure the rest wait their turn, unless
    the failure was the record's last receive: it goes to the dead-letter queue, and the
    records behind it (received with it each time, so their receives are used up too) are
    answered now rather than follow it there."""
    parked: list[Failure] = []
    for index, record in enumerate(records):
        if index and deadline - time.monotonic() < MIN_RECORD_SECONDS:
            log.info("batch.deferred", records=len(records) - index)
            return [*parked, *(Failure(r, 0) for r in records[index:])]
        try:
            event = Inbound.from_dict(json.loads(record.body))
        except ValueError as error:  # not ours: nothing could ever answer it
            log.error("record.malformed", message_id=record.message_id, why=str(error)[:100])
            continue
        attempt = Attempt(
            owner=uuid.uuid4().hex,
            deadline=deadline,
            lease_until_ms=lease_until_ms,
            receive=record.receive_count,
            last=record.receive_count >= limits.max_receives,
            queued_ms=record.sent_ms,
        )
        try:
            handle(event, attempt)
            continue
        except RetryLater as retry:
            wanted, why = retry.after or 0.0, retry.reason
        except Exception as error:
            log.exception("record.failed", message_id=record.message_id)
            metrics.add("Failed", kind=failure_kind(error))
            wanted, why = 0.0, type(error).__name__
        if attempt.last:
            delay = 0  # to the dead-letter queue at once: the person's next messages go on
        else:
            delay = max(backoff_seconds(record.receive_count, limits.retry_delay_seconds), wanted)
            delay = min(MAX_BACKOFF_SECONDS, int(delay + 0.999))
        log.warning(
            "record.retry",
            message_id=record.message_id,
            psid=record.group,
            receive=record.receive_count,
            last=attempt.last,
            why=why,
            visible_in=delay,
        )
        if attempt.last:
            parked.append(Failure(record, delay))
            continue
        metrics.add("Retries")
        return [*parked, Failure(record, delay), *(Failure(r, 0) for r in records[index + 1 :])]
    return parked


def process(
    raw_records: Sequence[dict[str, Any]],
    handle: Handle,
    remaining_ms: int,
    limits: Limits,
    change_visibility: ChangeVisibility,
) -> dict[str, Any]:
    """Lambda's partial batch response for one batch of FIFO records."""
    records = [parse_record(r) for r in raw_records]
    deadline = time.monotonic() + remaining_ms / 1000 - SAFETY_SECONDS
    lease_until_ms = time.time_ns() // 1_000_000 + remaining_ms
    groups = by_person(records)
    failures: list[Failure] = []
    with ThreadPoolExecutor(min(len(groups), MAX_PARALLEL_PEOPLE) or 1) as pool:
        futures = [
            pool.submit(
                contextvars.copy_context().run,
                _in_context,
                group,
                members,
                handle,
                deadline,
                lease_until_ms,
                limits,
            )
            for group, members in groups.items()
        ]
        wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None:  # a crash (not an Exception): Lambda retries the whole batch
            raise error
        failures.extend(future.result())
    if failures:
        try:
            change_visibility([(f.record.receipt_handle, f.visible_in) for f in failures])
        except Exception:  # they come back after the queue's visibility timeout instead
            log.exception("batch.visibility_failed", records=len(failures))
    log.info("batch.done", records=len(records), people=len(groups), failed=len(failures))
    return {"batchItemFailures": [{"itemIdentifier": f.record.message_id} for f in failures]}


def _in_context(
    group: str,
    records: Sequence[Record],
    handle: Handle,
    deadline: float,
    lease_until_ms: int,
    limits: Limits,
) -> list[Failure]:
    with log_context(psid=group):
        return run_group(records, handle, deadline, lease_until_ms, limits)


class Visibility:
    """``ChangeMessageVisibilityBatch`` on the queue the records came from."""

    def __init__(self, client: Any, queue_url: str | None) -> None:
        self._sqs = client
        self._url = queue_url

    def __call__(self, changes: list[tuple[str, int]]) -> None:
        if not self._url:
            raise RuntimeError("QUEUE_URL is not set")
        for start in range(0, len(changes), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for i, (handle, seconds) in enumerate(changes[start : start + 10])
            ]
            response = self._sqs.change_message_visibility_batch(
                QueueUrl=self._url, Entries=entries
            )
            if response.get("Failed"):
                log.warning("batch.visibility_refused", records=len(response["Failed"]))
