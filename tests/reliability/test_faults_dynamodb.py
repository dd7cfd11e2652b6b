"""DynamoDB throttles and loses answers: botocore retries, Lambda retries, and the count holds.

moto cannot throttle, so the faults are made in the handler's own boto3 client
(``before-send`` hook): botocore's real retry logic decides what happens next.
"""

from __future__ import annotations

import pytest

from tests.reliability.harness import (
    BOTO3_TRIES,
    AwsFaults,
    LambdaTiming,
    question,
    tally,
    writes_quota,
)
from tests.support.bridge import Bridge, messaging_text, webhook_body

AREA = "Faults: DynamoDB"
ALICE = "1000000000000001"


@pytest.fixture
def faults(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> AwsFaults:
    return AwsFaults.install(monkeypatch)


@pytest.mark.parametrize(
    ("operation", "times"),
    [("PutItem", 2), ("UpdateItem", 2), ("GetItem", 2), ("UpdateItem", BOTO3_TRIES)],
    ids=["claim-put", "update", "get", "update-every-try"],
)
def test_brief_throttling_is_absorbed_by_botocores_retries(
    bridge: Bridge, faults: AwsFaults, scenario, operation: str, times: int
):
    scenario.tried(
        f"ProvisionedThroughputExceeded on the next {times} {operation} requests",
        "answered once and counted once: botocore retries (Lambda does, once botocore's "
        f"{BOTO3_TRIES} tries are used up)",
    )
    faults.throttle(operation, times=times)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    retries = sum(len(i.errors) for i in bridge.invoke.invocations)
    scenario.saw(got.describe(), throttled=sum(faults.throttled.values()), lambda_retries=retries)
    assert (got.answers, got.apologies, got.failure_records) == (1, 0, 0)
    assert got.counted == 1
    assert sum(faults.throttled.values()) == times


def test_a_table_throttled_at_the_webhook_asks_facebook_to_deliver_again(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, scenario
):
    faults = AwsFaults.install(monkeypatch, event_kind="http")
    scenario.tried(
        "every DynamoDB request throttled while the webhook posts a message to the inbox; "
        "Facebook then delivers the same body again",
        "the first delivery answered 503 with nothing handed on; the second answered once, "
        "counted once",
    )
    body = webhook_body(messaging_text(ALICE, question(ALICE), mid="m_throttled"))
    faults.throttle_always()
    first = bridge.deliver(body)["statusCode"]
    bridge.settle()
    handed_on = len(bridge.invoke.invocations)
    faults.throttle_always(False)
    second = bridge.deliver(body)["statusCode"]
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(
        got.describe(), first=first, second=second, throttled=sum(faults.throttled.values())
    )
    assert (first, handed_on, second) == (503, 0, 200)
    assert (got.answers, got.apologies, got.failure_records, got.counted) == (1, 0, 0, 1)


def test_a_table_throttled_for_a_whole_attempt_is_answered_by_lambdas_retry(
    bridge: Bridge, faults: AwsFaults, scenario
):
    timing = LambdaTiming(bridge)
    timing.on_attempt_end(lambda attempt: faults.throttle_always(False))
    scenario.tried(
        "every DynamoDB request throttled until the first attempt has failed",
        "Lambda's retry (a minute later) answers once; counted once",
    )
    faults.throttle_always()
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), attempts=sum(timing.attempts.values()))
    assert (got.answers, got.failure_records, got.counted) == (1, 0, 1)


def test_a_table_throttled_for_good_leaves_the_event_on_the_failure_queue(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        "every DynamoDB request throttled, on every attempt",
        "no answer, nothing counted, one record on the failure queue",
    )
    faults.throttle_always()
    bridge.say(ALICE, question(ALICE))
    faults.throttle_always(False)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), throttled=sum(faults.throttled.values()))
    assert (got.answers, got.apologies, got.failure_records) == (0, 0, 1)
    assert got.counted == 0 and got.model_calls == 0


def test_throttling_that_starts_once_the_question_is_counted_costs_one_question(
    bridge: Bridge, faults: AwsFaults, scenario
):
    """The hard case: the counter was written, and every write after it fails, the clean-up
    (give the question back, release the claim) included. Lambda's retries come a minute and
    three minutes later, as in AWS."""
    timing = LambdaTiming(bridge)
    timing.on_attempt_end(lambda attempt: faults.end_window())
    scenario.tried(
        "every DynamoDB request throttled from the one after the quota counter's write "
        "until that attempt ends (the clean-up fails too)",
        "a later attempt answers once; counted exactly once",
    )
    faults.throttle_after(writes_quota)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), attempts=sum(timing.attempts.values()))
    assert (got.answers, got.apologies, got.failure_records) == (1, 0, 0)
    assert got.counted == 1


def test_a_lost_answer_to_the_quota_write_does_not_count_the_question_twice(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        "DynamoDB applies the quota counter's write but its answer is lost (read timeout); "
        "botocore sends the write again",
        "answered once; counted exactly once",
    )
    faults.lose_response(writes_quota)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), lost_answers=sum(faults.lost.values()))
    assert sum(faults.lost.values()) == 1
    assert (got.answers, got.apologies, got.failure_records) == (1, 0, 0)
    assert got.counted == 1


def claims_the_event(operation: str, body: dict) -> bool:
    """The claim: a conditional PutItem on the event's ``EVENT#`` item."""
    return operation == "PutItem" and body.get("Item", {}).get("pk", {}).get("S", "").startswith(
        "EVENT#"
    )


def test_a_lost_answer_to_the_claim_does_not_lose_the_message(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        "DynamoDB applies the claim (the conditional put of the event's item) but its answer "
        "is lost (read timeout); botocore sends the put again, which finds the claim there",
        "the attempt knows the claim for its own: answered once, counted once",
    )
    faults.lose_response(claims_the_event)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), lost_answers=sum(faults.lost.values()))
    assert sum(faults.lost.values()) == 1
    assert (got.answers, got.apologies, got.failure_records) == (1, 0, 0)
    assert got.counted == 1
