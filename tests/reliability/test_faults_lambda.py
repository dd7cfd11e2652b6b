"""Lambda's side: the webhook's hand-off fails, or the worker dies and Lambda retries it."""

from __future__ import annotations

import copy
import threading

import pytest

from handler import app, replies
from tests.reliability.harness import (
    BOTO3_TRIES,
    AwsFaults,
    LambdaTiming,
    die_once,
    question,
    quick_aws_backoff,
    quick_send_retries,
    say,
    tally,
)
from tests.support.bridge import FUNCTION, Bridge, messaging_text, webhook_body

AREA = "Faults: Lambda hand-off and worker"
ALICE = "1000000000000001"
BOB = "1000000000000002"
CAROL = "1000000000000003"


def lambda_retries(bridge: Bridge) -> int:
    return sum(len(i.errors) for i in bridge.invoke.invocations)


def test_a_hand_off_that_fails_once_is_retried_by_boto3(bridge: Bridge, scenario, monkeypatch):
    quick_aws_backoff(monkeypatch)
    scenario.tried("the Invoke API answers 500 once", "webhook 200; answered once")
    bridge.invoke.fail_next(500, times=1)
    response = say(bridge, ALICE, question(ALICE))
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(f"webhook {response['statusCode']}; {got.describe()}")
    assert response["statusCode"] == 200
    assert (got.answers, got.counted) == (1, 1)
    assert len(bridge.invoke.rejections) == 1 and len(bridge.invoke.invocations) == 1


def test_a_throttled_hand_off_asks_facebook_to_deliver_again(bridge: Bridge, scenario, monkeypatch):
    quick_aws_backoff(monkeypatch)
    scenario.tried(
        f"the Invoke API answers 429 TooManyRequests to all {BOTO3_TRIES} of boto3's tries",
        "webhook 503 and nothing answered (the message only waits in its inbox), so Facebook "
        "delivers again; that delivery answered once",
    )
    body = webhook_body(messaging_text(ALICE, question(ALICE), mid="m_throttled"))
    bridge.invoke.fail_next(429, times=BOTO3_TRIES)
    refused = bridge.deliver(body)
    bridge.settle()
    nothing_yet = (bridge.texts_to(ALICE), [i["pk"]["S"] for i in bridge.items()])
    again = bridge.deliver(body)  # Facebook's redelivery: the same bytes
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(
        f"webhook {refused['statusCode']} then {again['statusCode']}; {got.describe()}",
        rejected_invokes=len(bridge.invoke.rejections),
    )
    assert refused["statusCode"] == 503 and nothing_yet == ([], [f"INBOX#{ALICE}"])
    assert again["statusCode"] == 200
    assert (got.answers, got.counted) == (1, 1)


def test_an_invoke_whose_answer_is_lost_is_sent_twice_and_answered_once(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge(retry_delay=1.0)  # Lambda retries after the first attempt is over
    faults = AwsFaults.install(monkeypatch, service="lambda", event_kind="http")
    scenario.tried(
        "Lambda queues the event but the Invoke answer is lost (read timeout); boto3 sends it "
        "again, so the event is queued twice",
        "webhook 200; two worker invocations; one answer; counted once",
    )
    faults.lose_response(lambda operation, body: operation == "Invoke")
    response = say(bridge, ALICE, question(ALICE))
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(
        f"webhook {response['statusCode']}; {got.describe()}",
        invocations=len(bridge.invoke.invocations),
    )
    assert response["statusCode"] == 200
    assert len(bridge.invoke.invocations) == 2
    assert (got.answers, got.counted, got.model_calls) == (1, 1, 1)


def test_a_batch_redelivered_after_a_failed_hand_off_is_answered_once_per_message(
    bridge: Bridge, scenario, monkeypatch
):
    quick_aws_backoff(monkeypatch)
    scenario.tried(
        "a delivery of 3 people's messages; the Invoke API answers 500 to every try",
        "webhook 503; Facebook's redelivery of the same body: each person answered once",
    )
    people = (ALICE, BOB, CAROL)
    body = webhook_body(*(messaging_text(p, question(p)) for p in people))
    bridge.invoke.fail_next(500, times=BOTO3_TRIES)
    first = bridge.deliver(body)
    second = bridge.deliver(body)
    bridge.settle()
    tallies = [tally(bridge, p) for p in people]
    scenario.saw(
        f"webhook {first['statusCode']} then {second['statusCode']}; "
        + "; ".join(t.describe() for t in tallies)
    )
    assert (first["statusCode"], second["statusCode"]) == (503, 200)
    assert [(t.answers, t.counted) for t in tallies] == [(1, 1)] * 3


DEATHS_AFTER_REPLY = {
    "in-save-history": ("save_history", lambda *args: True),
    "in-mark-done": ("mark_event", lambda event_id, state: state == "done"),
}


@pytest.mark.parametrize("where", DEATHS_AFTER_REPLY.values(), ids=DEATHS_AFTER_REPLY.keys())
def test_a_worker_that_dies_after_replying_is_not_answered_twice(
    bridge: Bridge, scenario, monkeypatch, where
):
    method, when = where
    timing = LambdaTiming(bridge)
    died = die_once(monkeypatch, app.runtime().worker.store, method, when)
    scenario.tried(
        f"the worker process dies (no clean-up runs) in store.{method}, after the reply was "
        "sent; Lambda retries a minute later",
        "no second reply; counted once; nothing on the failure queue",
    )
    say(bridge, ALICE, question(ALICE))
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), attempts=sum(timing.attempts.values()))
    assert died["died"] == 1 and sum(timing.attempts.values()) == 2
    assert (got.answers, got.failure_records, got.counted, got.model_calls) == (1, 0, 1, 1)


def test_one_queued_event_delivered_twice_at_once_is_answered_once(make_bridge, scenario):
    """AWS: "it's possible for [a function] to receive the same event from Lambda multiple
    times because the queue itself is eventually consistent". Both deliveries carry the
    event's request id (it is the queued event's, returned by the Invoke call), as a retry does.
    """
    bridge = make_bridge()
    bridge.model.latency = 0.5  # the first delivery is still answering when the second runs
    twins: list[threading.Thread] = []

    def delivered_twice(event, context):
        if not twins:
            twin = threading.Thread(target=app.lambda_handler, args=(copy.deepcopy(event), context))
            twins.append(twin)
            twin.start()
        return app.lambda_handler(event, context)

    bridge.invoke.register(FUNCTION, delivered_twice)
    scenario.tried(
        "Lambda runs one queued event twice at the same time (same request id), while the "
        "model takes 0.5 s",
        "one answer, one model call, counted once",
    )
    say(bridge, ALICE, question(ALICE))
    bridge.settle()
    twins[0].join(30)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe())
    assert (got.answers, got.model_calls, got.counted) == (1, 1, 1)


OWN_MESSAGES = {
    "apology": ("the model answers 500", replies.APOLOGY),
    "limit-notice": ("the person is over the daily limit", "You've used your"),
}


@pytest.mark.parametrize("case", OWN_MESSAGES.values(), ids=OWN_MESSAGES.keys())
def test_a_worker_that_dies_after_its_own_message_does_not_send_it_again(
    make_bridge, scenario, monkeypatch, case
):
    why, message = case
    bridge = make_bridge(DAILY_LIMIT="1")
    if message == replies.APOLOGY:
        bridge.model.fail_next(500, times=10)
    else:
        bridge.say(ALICE, question(ALICE, "the one question of the day"))
    before = len(bridge.texts_to(ALICE))
    timing = LambdaTiming(bridge)
    die_once(monkeypatch, app.runtime().worker.store, "mark_event", lambda _id, s: s == "done")
    scenario.tried(
        f"{why}; the worker process dies right after sending its {message[:20]!r}... "
        "(before marking the event done); Lambda retries it",
        "the message is not sent a second time, nor followed by an answer",
    )
    say(bridge, ALICE, question(ALICE))
    bridge.settle()
    got = bridge.texts_to(ALICE)[before:]
    scenario.saw(
        f"{len(got)} message(s) after the death: {[t[:24] for t in got]}",
        attempts=sum(timing.attempts.values()),
    )
    assert sum(timing.attempts.values()) == 2  # it did die and was retried
    assert len(got) == 1 and got[0].startswith(message)


DEATHS_BEFORE_REPLY = {
    "in-touch-user": ("store", "touch_user"),  # claimed, not yet counted
    "in-load-history": ("store", "load_history"),  # counted
    "in-model-call": ("worker", "ask_model"),  # counted, typing shown
}


@pytest.mark.parametrize("where", DEATHS_BEFORE_REPLY.values(), ids=DEATHS_BEFORE_REPLY.keys())
def test_a_worker_that_dies_before_replying_is_answered_by_lambdas_retry(
    bridge: Bridge, scenario, monkeypatch, where
):
    owner, method = where
    worker = app.runtime().worker
    timing = LambdaTiming(bridge)
    die_once(monkeypatch, worker.store if owner == "store" else worker, method)
    scenario.tried(
        f"the worker process dies (no clean-up runs) in {owner}.{method}, before any reply; "
        "Lambda retries a minute later, then two minutes after that",
        "one answer from a retry; counted once; nothing on the failure queue",
    )
    say(bridge, ALICE, question(ALICE))
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), attempts=sum(timing.attempts.values()))
    assert (got.answers, got.apologies, got.failure_records) == (1, 0, 0)
    assert got.counted == 1


def test_one_failing_event_does_not_get_the_rest_of_its_batch_answered_twice(
    bridge: Bridge, scenario
):
    quick_send_retries(bridge)
    scenario.tried(
        "a delivery with Alice's and Bob's messages; the Send API fails every try for Alice "
        "in the first attempt, so Lambda retries the whole batch",
        "Bob answered once (not again on the retry); Alice answered once by the retry",
    )
    bridge.graph.fail_next(500, 2, times=4, only="message", psid=ALICE)
    body = webhook_body(messaging_text(ALICE, question(ALICE)), messaging_text(BOB, question(BOB)))
    bridge.deliver(body)
    bridge.settle()
    alice, bob = tally(bridge, ALICE), tally(bridge, BOB)
    scenario.saw(
        f"Alice: {alice.describe()}; Bob: {bob.describe()}", lambda_retries=lambda_retries(bridge)
    )
    assert lambda_retries(bridge) == 1
    assert (alice.answers, alice.counted) == (1, 1)
    assert (bob.answers, bob.counted, bob.model_calls) == (1, 1, 1)
