"""DynamoDB throttles, loses answers and leaves keys unprocessed: botocore retries, the queue
retries, and each message still ends once, counted once.

moto cannot throttle, so the faults are made in the handler's own boto3 client (a
``before-send`` hook): botocore's real retry logic decides what happens next.
"""

from __future__ import annotations

import pytest

from tests.reliability.harness import (
    BOTO3_TRIES,
    AwsFaults,
    Match,
    batch_counts,
    claims_event,
    finishes_event,
    question,
    receives,
    releases_event,
    say,
    tally,
    writes_quota,
)
from tests.support.bridge import Bridge

AREA = "Faults: DynamoDB"
ALICE = "1000000000000001"


def batch_get(operation: str, body: dict) -> bool:
    return operation == "BatchGetItem"


STEPS: dict[str, tuple[str, Match]] = {
    "claim": ("the claim (UpdateItem)", claims_event),
    "batch-get": ("the snapshot (BatchGetItem)", batch_get),
    "transaction": ("the answer's record and count (TransactWriteItems)", writes_quota),
    "finish": ("the finish (TransactWriteItems)", finishes_event),
}


@pytest.fixture
def faults(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> AwsFaults:
    return AwsFaults.install(monkeypatch)


@pytest.mark.parametrize("step", STEPS.values(), ids=STEPS.keys())
def test_brief_throttling_is_absorbed_by_botocores_retries(
    bridge: Bridge, faults: AwsFaults, scenario, step
):
    what, when = step
    scenario.tried(
        f"ProvisionedThroughputExceeded on the first {BOTO3_TRIES - 1} tries of {what}",
        "botocore's last try gets through: answered once in the first receive, counted once",
    )
    faults.throttle(times=BOTO3_TRIES - 1, when=when)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), throttled=faults.total, receives=len(receives(bridge, ALICE)))
    assert faults.total == BOTO3_TRIES - 1
    assert got.ended_once() and got.answers == 1
    assert len(receives(bridge, ALICE)) == 1


WHOLE_RECEIVE = {
    "claim": (claims_event, 1, 0),
    "batch-get": (batch_get, 1, 0),
    "transaction": (writes_quota, 2, 0),
}


@pytest.mark.parametrize("step", WHOLE_RECEIVE.values(), ids=WHOLE_RECEIVE.keys())
def test_throttling_for_a_whole_receive_is_answered_by_the_next(
    bridge: Bridge, faults: AwsFaults, scenario, step
):
    when, model_calls, _ = step
    what = next(w for w, m in STEPS.values() if m is when)
    scenario.tried(
        f"every one of botocore's {BOTO3_TRIES} tries of {what} throttled in the first receive",
        "the attempt lets go of the event (its lease released) and the next receive answers "
        "once; counted once"
        + (
            "; the model asked again (its first answer was never recorded, so not counted)"
            if model_calls == 2
            else ""
        ),
    )
    faults.throttle(times=BOTO3_TRIES, when=when)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), throttled=faults.total, receives=len(receives(bridge, ALICE)))
    assert faults.total == BOTO3_TRIES and len(receives(bridge, ALICE)) == 2
    assert got.ended_once() and got.answers == 1 and got.model_calls == model_calls


def test_keys_left_unprocessed_by_batch_get_item_are_asked_for_again(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        "BatchGetItem answers 200 with every key unprocessed, twice (DynamoDB does under load)",
        "the worker asks for them again within the receive: answered once, counted once",
    )
    faults.unprocessed_keys(times=2)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert got.ended_once() and got.answers == 1 and len(receives(bridge, ALICE)) == 1


def test_keys_left_unprocessed_for_a_whole_receive_are_read_by_the_next(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        "BatchGetItem leaves every key unprocessed on all 5 of the worker's asks",
        "the attempt gives up and lets go; the next receive answers once, counted once",
    )
    faults.unprocessed_keys(times=5)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert got.ended_once() and got.answers == 1 and len(receives(bridge, ALICE)) == 2


def test_a_finish_throttled_once_is_tried_again_before_anything_is_resent(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        f"all {BOTO3_TRIES} tries of the finish throttled, once the answer was sent",
        "the finish's own second try writes it: one answer, no bubble sent twice, one "
        "receive; counted once",
    )
    faults.throttle(times=BOTO3_TRIES, when=finishes_event)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert got.ended_once() and got.answers == 1 and len(receives(bridge, ALICE)) == 1


def test_a_finish_that_keeps_failing_repeats_the_last_bubble_once(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        f"both tries of the finish throttled ({2 * BOTO3_TRIES} requests) once the answer was "
        "sent; the release of the lease goes through",
        "the documented worst case: the next receive sends the recorded answer's last (here "
        "only) bubble again, once; never a new answer from the model; counted once",
    )
    faults.throttle(times=2 * BOTO3_TRIES, when=finishes_event)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert (got.answers, got.repeated, got.model_calls) == (1, 1, 1)
    assert got.counted == got.billed == 1 and got.dead_letters == 0


def test_throttling_for_the_rest_of_the_attempt_once_the_answer_is_sent_costs_one_bubble_at_most(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge(queue={"function_timeout": 20, "retry_delay_seconds": 1})
    faults = AwsFaults.install(monkeypatch)
    scenario.tried(
        "the finish, its second try and the release of the lease all throttled (every try) "
        "once the answer was sent; retry delay 1 s, function timeout 20 s",
        "the answer once and at most one repeated bubble, counted once; not on the DLQ",
    )
    faults.throttle(times=2 * BOTO3_TRIES, when=finishes_event)
    faults.throttle(times=BOTO3_TRIES, when=releases_event)
    say(bridge, ALICE, question(ALICE))
    bridge.settle(60)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert got.dead_letters == 0
    assert got.answers == 1 and got.repeated <= 1 and got.counted == got.billed == 1


def test_a_table_throttled_for_two_receives_is_answered_by_the_third(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge()
    faults = AwsFaults.install(monkeypatch)
    handler = bridge.poller.handler

    def table_back_for_the_third_receive(event, context):
        if int(event["Records"][0]["attributes"]["ApproximateReceiveCount"]) >= 3:
            faults.throttle_always(False)
        return handler(event, context)

    bridge.poller.handler = table_back_for_the_third_receive
    scenario.tried(
        "every DynamoDB request of the worker throttled during the first two receives",
        "the webhook is not affected (it only queues); the third receive answers once; "
        "counted once; nothing on the DLQ",
    )
    faults.throttle_always()
    response = say(bridge, ALICE, question(ALICE))
    bridge.settle(60)
    got = tally(bridge, ALICE)
    scenario.saw(
        f"webhook {response['statusCode']}; {got.describe()}",
        throttled=faults.total,
        receives=len(receives(bridge, ALICE)),
    )
    assert response["statusCode"] == 200 and len(receives(bridge, ALICE)) == 3
    assert got.ended_once() and got.answers == 1


def test_a_table_throttled_for_good_leaves_the_event_on_the_dlq(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        "every DynamoDB request of the worker throttled, on every receive",
        "no answer, no model call, nothing counted; the event on the DLQ after its 3 receives",
    )
    faults.throttle_always()
    bridge.say(ALICE, question(ALICE))
    faults.throttle_always(False)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), throttled=faults.total, **batch_counts(bridge))
    assert got.ended_once() and got.dead_letters == 1
    assert (got.model_calls, got.counted) == (0, 0)


LOST = {
    "claim": (claims_event, "the claim (the conditional UpdateItem of the event's item)"),
    "transaction": (writes_quota, "the transaction that records the answer and counts it"),
    "finish": (finishes_event, "the finish"),
}


@pytest.mark.parametrize("step", LOST.values(), ids=LOST.keys())
def test_a_lost_answer_from_dynamodb_does_not_lose_or_repeat_anything(
    make_bridge, scenario, monkeypatch, step
):
    when, what = step
    # DynamoDB Local: AWS's engine honours the transaction's idempotency token as DynamoDB
    # does (moto does not: see the next scenario).
    bridge = make_bridge(engine="dynamodb-local")
    faults = AwsFaults.install(monkeypatch)
    scenario.tried(
        f"DynamoDB applies {what} but its answer is lost (read timeout); botocore sends it again",
        "the repeat finds the write already there (its own claim; the transaction's "
        "idempotency token; its own finish): answered once, counted once, in one receive",
    )
    faults.lose_response(when)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), lost=sum(faults.lost.values()))
    assert sum(faults.lost.values()) == 1
    assert got.ended_once() and got.answers == 1 and len(receives(bridge, ALICE)) == 1


def test_a_lost_answer_to_the_count_is_recovered_in_the_same_receive_without_idempotency_tokens(
    bridge: Bridge, faults: AwsFaults, scenario
):
    scenario.tried(
        "on moto, which ignores ClientRequestToken: the transaction that records the answer "
        "and counts it is applied, its answer lost; botocore's repeat fails its condition "
        "(already counted)",
        "the worker sees its own count and records the reply without counting again: "
        "answered once, counted once, in one receive",
    )
    faults.lose_response(writes_quota)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert got.ended_once() and got.answers == 1
    assert len(receives(bridge, ALICE)) == 1
