"""The queue side: which records a batch reports failed, and when SQS may deliver them again."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from handler.batch import (
    MAX_BACKOFF_SECONDS,
    MIN_RECORD_SECONDS,
    SAFETY_SECONDS,
    Limits,
    backoff_seconds,
    process,
)
from handler.bot import Attempt, RetryLater
from handler.events import Inbound

ALICE, BOB, CAROL = "1000000000000001", "1000000000000002", "1000000000000003"
LIMITS = Limits(max_receives=5, retry_delay_seconds=10)


def record(psid: str, n: int, receives: int = 1, body: str | None = None) -> dict[str, Any]:
    event = Inbound(f"{psid}-{n}", psid, "page", 1_800_000_000_000 + n, "text", f"q{n}")
    return {
        "messageId": f"id-{psid}-{n}",
        "receiptHandle": f"rh-{psid}-{n}",
        "body": body if body is not None else json.dumps(event.to_dict()),
        "attributes": {
            "ApproximateReceiveCount": str(receives),
            "MessageGroupId": psid,
            "SentTimestamp": "1800000000000",
        },
        "eventSource": "aws:sqs",
    }


class Handler:
    """Records what it was asked; fails the event ids it is told to, as it is told to."""

    def __init__(self, failures: dict[str, BaseException] | None = None) -> None:
        self.failures = failures or {}
        self.handled: list[str] = []
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()

    def __call__(self, event: Inbound, attempt: Attempt) -> str:
        with self._lock:
            self.handled.append(event.event_id)
            self.attempts.append(attempt)
        if event.event_id in self.failures:
            raise self.failures[event.event_id]
        return "answered"


class Visibility:
    def __init__(self) -> None:
        self.changes: list[tuple[str, int]] = []

    def __call__(self, changes: list[tuple[str, int]]) -> None:
        self.changes += changes


def run(records: list[dict[str, Any]], handler: Handler, remaining_ms: int = 60_000) -> tuple:
    visibility = Visibility()
    response = process(records, handler, remaining_ms, LIMITS, visibility)
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    return failed, dict(visibility.changes)


def test_the_backoff_grows_threefold_and_is_capped():
    assert [backoff_seconds(n, 10) for n in range(1, 5)] == [10, 30, 90, 270]
    assert backoff_seconds(9, 10) == MAX_BACKOFF_SECONDS
    assert backoff_seconds(3, 0) == 0


def test_a_clean_batch_reports_nothing_and_changes_nothing():
    failed, changes = run([record(ALICE, 1), record(BOB, 1)], Handler())
    assert (failed, changes) == ([], {})


def test_a_failure_holds_back_only_the_later_records_of_the_same_person():
    records = [record(ALICE, 1), record(BOB, 1), record(ALICE, 2), record(ALICE, 3), record(BOB, 2)]
    handler = Handler({f"{ALICE}-2": RetryLater("send:graph_unavailable")})
    failed, changes = run(records, handler)
    assert failed == [f"id-{ALICE}-2", f"id-{ALICE}-3"]
    assert f"{ALICE}-3" not in handler.handled  # never tried out of order
    assert {f"{BOB}-1", f"{BOB}-2"} <= set(handler.handled)
    assert changes == {f"rh-{ALICE}-2": 10, f"rh-{ALICE}-3": 0}  # the rest wait behind it


def test_each_person_is_answered_in_order():
    records = [record(ALICE, n) for n in range(1, 6)]
    handler = Handler()
    run(records, handler)
    assert handler.handled == [f"{ALICE}-{n}" for n in range(1, 6)]


def test_the_wait_grows_with_each_receive_and_honours_a_longer_retry_after():
    third = record(ALICE, 1, receives=3)
    assert run([third], Handler({f"{ALICE}-1": RetryLater("x")}))[1] == {f"rh-{ALICE}-1": 90}
    asked = Handler({f"{ALICE}-1": RetryLater("model:rate_limited", after=200.5)})
    assert run([record(ALICE, 1)], asked)[1] == {f"rh-{ALICE}-1": 201}


def test_the_last_receive_fails_at_once_and_the_records_behind_it_are_answered_now():
    # Received with the failing record each time, they have used up their receives too:
    # reported failed, they would follow it to the dead-letter queue untried.
    last = record(ALICE, 1, receives=LIMITS.max_receives)
    behind = record(ALICE, 2, receives=LIMITS.max_receives)
    handler = Handler({f"{ALICE}-1": RetryLater("send:graph_unavailable")})
    failed, changes = run([last, behind], handler)
    assert failed == [f"id-{ALICE}-1"]
    assert changes == {f"rh-{ALICE}-1": 0}
    assert handler.handled == [f"{ALICE}-1", f"{ALICE}-2"]
    assert handler.attempts[0].last is True


def test_an_unexpected_error_is_backed_off_like_a_retry():
    handler = Handler({f"{ALICE}-1": KeyError("bug")})
    assert run([record(ALICE, 1)], handler) == ([f"id-{ALICE}-1"], {f"rh-{ALICE}-1": 10})


def test_a_crash_fails_the_whole_batch_as_lambda_does():
    class Died(BaseException):
        pass

    with pytest.raises(Died):
        run([record(ALICE, 1), record(BOB, 1)], Handler({f"{BOB}-1": Died()}))


def test_a_body_that_is_not_an_event_is_logged_and_let_go():
    records = [record(ALICE, 1, body="not json"), record(ALICE, 2)]
    handler = Handler()
    assert run(records, handler) == ([], {})
    assert handler.handled == [f"{ALICE}-2"]


def test_records_that_no_longer_fit_in_the_invocation_go_back_at_once():
    remaining = int((MIN_RECORD_SECONDS + SAFETY_SECONDS + 0.5) * 1000)

    class Slow(Handler):
        def __call__(self, event: Inbound, attempt: Attempt) -> str:
            time.sleep(0.6)  # leaves less than MIN_RECORD_SECONDS
            return super().__call__(event, attempt)

    handler = Slow()
    failed, changes = run([record(ALICE, 1), record(ALICE, 2)], handler, remaining)
    assert handler.handled == [f"{ALICE}-1"]
    assert (failed, changes) == ([f"id-{ALICE}-2"], {f"rh-{ALICE}-2": 0})


def test_people_are_answered_in_parallel():
    started = threading.Barrier(3, timeout=5)

    class Together(Handler):
        def __call__(self, event: Inbound, attempt: Attempt) -> str:
            started.wait()  # all three at once, or a BrokenBarrierError
            return super().__call__(event, attempt)

    assert run([record(p, 1) for p in (ALICE, BOB, CAROL)], Together()) == ([], {})


def test_every_attempt_knows_its_receive_deadline_and_lease():
    handler = Handler()
    before = time.time_ns() // 1_000_000
    run([record(ALICE, 1, receives=2)], handler, remaining_ms=30_000)
    attempt = handler.attempts[0]
    assert attempt.receive == 2 and not attempt.last
    assert attempt.queued_ms == 1_800_000_000_000
    assert before + 29_000 < attempt.lease_until_ms <= time.time_ns() // 1_000_000 + 30_000
    assert 0 < attempt.deadline - time.monotonic() <= 30 - SAFETY_SECONDS
    assert len({a.owner for a in handler.attempts}) == 1


def test_a_failed_visibility_change_still_reports_the_failures():
    def broken(changes: list[tuple[str, int]]) -> None:
        raise RuntimeError("SQS unreachable")

    handler = Handler({f"{ALICE}-1": RetryLater("x")})
    response = process([record(ALICE, 1)], handler, 60_000, LIMITS, broken)
    assert response == {"batchItemFailures": [{"itemIdentifier": f"id-{ALICE}-1"}]}
