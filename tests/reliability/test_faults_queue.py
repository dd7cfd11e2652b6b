"""The queue and Lambda's side: the webhook's hand-off to SQS fails or is repeated, the worker
dies or times out, a message keeps failing, SQS will not back a message off."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

import pytest

from handler import handoff
from handler.events import parse_webhook
from local.graph import graph_error
from tests.reliability.conftest import DYING, KNOWN
from tests.reliability.harness import (
    ANSWER_PREFIX,
    BOTO3_TRIES,
    WEBHOOK_TRIES,
    AwsFaults,
    LambdaRuntime,
    answer_to,
    batch_counts,
    claims_event,
    dead_letters,
    die_after_graph_answers,
    outcomes,
    question,
    quick_send_retries,
    receives,
    records_sent,
    say,
    tally,
    writes_quota,
)
from tests.support.bridge import Bridge, messaging_text, webhook_body

AREA = "Faults: the queue and Lambda"
ALICE = "1000000000000001"
BOB = "1000000000000002"
CAROL = "1000000000000003"


def queued_messages(bridge: Bridge) -> int:
    """Distinct SQS messages the poller has handed to the function so far."""
    return len({r["messageId"] for i in bridge.poller.invocations for r in i.records})


def long_answer(bubbles: int) -> tuple[str, list[str]]:
    """An answer that Messenger gets as ``bubbles`` bubbles of about 1,200 characters."""
    words = "All work and no play makes a dull answer. " * 28
    parts = [f"Part {n}. {words.strip()}" for n in range(bubbles)]
    return "\n\n".join(parts), parts


def bubble_story(bridge: Bridge, psid: str) -> str:
    """What reached the person, bubble by bubble (``1, 2, 2, 3``), and what it cost."""
    labels = []
    for text in bridge.texts_to(psid):
        head = text.removeprefix(ANSWER_PREFIX).split(".", 1)[0]
        labels.append(str(int(head[5:]) + 1) if head[5:].isdigit() else repr(text[:30]))
    got = tally(bridge, psid)
    return (
        f"bubbles delivered: {', '.join(labels)}; "
        f"model asked {got.model_calls}x, answered {got.billed}; counted {got.counted}; "
        f"{got.dead_letters} on the DLQ"
    )


# -- the hand-off: SendMessageBatch ------------------------------------------------------------


def test_a_briefly_throttled_hand_off_is_retried_by_botocore(bridge: Bridge, scenario, monkeypatch):
    faults = AwsFaults.install(monkeypatch, "sqs", event_kind="http")
    scenario.tried(
        f"SQS throttles the first {WEBHOOK_TRIES - 1} of the webhook's {WEBHOOK_TRIES} tries of "
        "SendMessageBatch (RequestThrottled)",
        "botocore's retries get it queued: webhook 200; answered once, counted once",
    )
    faults.throttle("SendMessageBatch", times=WEBHOOK_TRIES - 1)
    response = say(bridge, ALICE, question(ALICE))
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(f"webhook {response['statusCode']}; {got.describe()}", throttled=faults.total)
    assert response["statusCode"] == 200
    assert faults.throttled["SendMessageBatch"] == WEBHOOK_TRIES - 1
    assert got.ended_once() and got.answers == 1


def test_a_hand_off_throttled_on_every_try_asks_facebook_to_deliver_again(
    bridge: Bridge, scenario, monkeypatch
):
    faults = AwsFaults.install(monkeypatch, "sqs", event_kind="http")
    scenario.tried(
        f"SQS throttles all {WEBHOOK_TRIES} of botocore's tries of SendMessageBatch; Facebook "
        "then delivers the same body again, as it does after a 5xx",
        "the first delivery answered 503 with nothing queued; the redelivery 200 and "
        "answered once, counted once",
    )
    body = webhook_body(messaging_text(ALICE, question(ALICE), mid="m_throttled"))
    faults.throttle("SendMessageBatch", times=WEBHOOK_TRIES)
    refused = bridge.deliver(body)["statusCode"]
    bridge.settle()
    nothing_yet = (len(bridge.poller.invocations), bridge.texts_to(ALICE))
    again = bridge.deliver(body)["statusCode"]
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(f"webhook {refused} then {again}; {got.describe()}", throttled=faults.total)
    assert (refused, again) == (503, 200) and nothing_yet == (0, [])
    assert got.ended_once() and got.answers == 1


def test_a_failing_hand_off_of_a_batched_delivery_is_answered_once_per_message_on_redelivery(
    bridge: Bridge, scenario, monkeypatch
):
    faults = AwsFaults.install(monkeypatch, "sqs", event_kind="http")
    people = (ALICE, BOB, CAROL)
    scenario.tried(
        "a delivery of 3 people's messages; SQS answers 500 InternalError to every try of "
        "SendMessageBatch; Facebook delivers the same body again",
        "webhook 503 then 200; each person answered once, counted once",
    )
    body = webhook_body(*(messaging_text(p, question(p)) for p in people))
    faults.fail("SendMessageBatch", times=WEBHOOK_TRIES)
    first = bridge.deliver(body)["statusCode"]
    second = bridge.deliver(body)["statusCode"]
    bridge.settle()
    tallies = [tally(bridge, p) for p in people]
    scenario.saw(
        f"webhook {first} then {second}; " + "; ".join(t.describe() for t in tallies),
        failed_requests=faults.total,
    )
    assert (first, second) == (503, 200)
    assert all(t.ended_once() and t.answers == 1 for t in tallies)


def test_a_hand_off_refused_in_part_is_answered_once_per_message_on_redelivery(
    bridge: Bridge, scenario, monkeypatch
):
    faults = AwsFaults.install(monkeypatch, "sqs", event_kind="http")
    people = (ALICE, BOB, CAROL)
    scenario.tried(
        "a delivery of 3 people's messages; SendMessageBatch queues Alice's and Carol's but "
        "lists Bob's as failed (HTTP 200, InternalError in Failed); Facebook delivers the "
        "same body again",
        "webhook 503 then 200; the repeats of what was queued are dropped (SQS's "
        "deduplication id, else the event's item): each person answered once, counted once",
    )
    body = webhook_body(*(messaging_text(p, question(p)) for p in people))
    faults.refuse_entries({"1"})
    bridge.poller.pause()  # Facebook's redelivery comes before the worker got to them
    first = bridge.deliver(body)["statusCode"]
    second = bridge.deliver(body)["statusCode"]
    bridge.poller.resume()
    bridge.settle()
    tallies = [tally(bridge, p) for p in people]
    scenario.saw(
        f"webhook {first} then {second}; SQS handed the function {queued_messages(bridge)} "
        "message(s); " + "; ".join(t.describe() for t in tallies)
    )
    assert (first, second) == (503, 200)
    assert queued_messages(bridge) == 3  # SQS kept one copy of each
    assert all(t.ended_once() and t.answers == 1 for t in tallies)


def test_a_lost_answer_to_send_message_batch_is_sent_again_and_sqs_keeps_one(
    bridge: Bridge, scenario, monkeypatch
):
    faults = AwsFaults.install(monkeypatch, "sqs", event_kind="http")
    scenario.tried(
        "SQS queues the webhook's SendMessageBatch but its answer is lost (read timeout); "
        "botocore sends it again",
        "webhook 200; SQS drops the repeat (same deduplication id): one message queued, one "
        "answer, counted once",
    )
    faults.lose_response(lambda operation, body: operation == "SendMessageBatch")
    bridge.poller.pause()  # both copies reach SQS before anything is received
    response = say(bridge, ALICE, question(ALICE))
    depth = bridge.poller.queue_depth()
    bridge.poller.resume()
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(
        f"webhook {response['statusCode']}; queue held {depth[0]} message(s); {got.describe()}",
        lost_answers=sum(faults.lost.values()),
    )
    assert response["statusCode"] == 200 and sum(faults.lost.values()) == 1
    assert depth == (1, 0) and queued_messages(bridge) == 1
    assert got.ended_once() and got.answers == 1


def test_a_redelivery_after_sqs_deduplication_window_gets_nothing_more(bridge: Bridge, scenario):
    scenario.tried(
        "an answered message queued again with another deduplication id, as Facebook's "
        "redelivery after SQS's five-minute window is",
        "the event's item knows it was answered: nothing sent, nothing asked, counted once",
    )
    delivery = webhook_body(messaging_text(ALICE, question(ALICE), mid="m_again"))
    bridge.deliver(delivery)
    bridge.settle()
    [event] = parse_webhook(delivery)
    bridge.sqs.send_message(
        QueueUrl=bridge.harness.queue_url,
        MessageBody=handoff.body(event),
        MessageGroupId=ALICE,
        MessageDeduplicationId="after-the-window",
    )
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), queued=queued_messages(bridge))
    assert queued_messages(bridge) == 2
    assert got.ended_once() and got.answers == 1 and got.model_calls == 1


# -- a worker that dies, or is ended at its timeout ------------------------------------------


def test_a_worker_that_dies_before_its_claim_is_answered_on_the_next_receive(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge(queue={"visibility_timeout": 3})
    faults = AwsFaults.install(monkeypatch)
    scenario.tried(
        "the container dies as the event's claim is about to leave for DynamoDB (nothing "
        "stored); the batch fails and comes back after the visibility timeout (3 s)",
        "the next receive answers once; counted once; nothing on the DLQ",
    )
    faults.die_before(claims_event)
    say(bridge, ALICE, question(ALICE))
    bridge.settle(60)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), **batch_counts(bridge))
    assert faults.died["UpdateItem"] == 1 and outcomes(bridge)["failed"] == 1
    assert got.ended_once() and got.answers == 1 and got.model_calls == 1


DEATHS_AFTER_A_WRITE = {
    "after-the-claim": (
        claims_event,
        "the event's claim reached DynamoDB (held until the invocation's deadline)",
        1,
    ),
    "after-the-answer-was-recorded": (
        writes_quota,
        "the model's answer was recorded and counted, before any bubble was sent",
        1,
    ),
}


@pytest.mark.parametrize("where", DEATHS_AFTER_A_WRITE.values(), ids=DEATHS_AFTER_A_WRITE.keys())
def test_a_worker_that_dies_after_a_write_is_answered_once_after_its_lease(
    make_bridge, scenario, monkeypatch, where
):
    when, what, model_calls = where
    bridge = make_bridge(queue=DYING)
    faults = AwsFaults.install(monkeypatch)
    scenario.tried(
        f"the container dies once {what}; function timeout {DYING['function_timeout']} s, "
        f"visibility timeout {DYING['visibility_timeout']} s",
        "the next receive (after the dead attempt's lease) answers once, without asking "
        "the model again; counted once; nothing on the DLQ",
    )
    faults.die_after(when)
    say(bridge, ALICE, question(ALICE))
    bridge.settle(90)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), **batch_counts(bridge))
    assert sum(faults.died.values()) == 1 and outcomes(bridge)["failed"] == 1
    assert got.ended_once() and got.answers == 1
    assert got.model_calls == model_calls


def test_a_worker_that_dies_mid_answer_sends_only_the_remaining_bubbles(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge(queue=DYING, OPENAI_MAX_TOKENS="4000")
    text, parts = long_answer(3)
    bridge.model.responder = lambda body: ANSWER_PREFIX + text
    faults = AwsFaults.install(monkeypatch)
    scenario.tried(
        "a 3-bubble answer; the container dies right after the first bubble was sent and "
        "recorded as sent",
        "the next receive sends bubbles 2 and 3 only: each bubble once, in order; the model "
        "asked once; counted once",
    )
    faults.die_after(records_sent)
    say(bridge, ALICE, question(ALICE))
    bridge.settle(90)
    bubbles = bridge.texts_to(ALICE)
    got = tally(bridge, ALICE)
    scenario.saw(bubble_story(bridge, ALICE), **batch_counts(bridge))
    assert faults.died["UpdateItem"] == 1
    assert bubbles == [ANSWER_PREFIX + parts[0], parts[1], parts[2]]
    assert got.model_calls == 1 and got.counted == 1 == got.billed and got.dead_letters == 0


WORST_CASES = {"in-a-3-bubble-answer": (3, 2), "in-a-1-bubble-answer": (1, 1)}


@pytest.mark.parametrize("case", WORST_CASES.values(), ids=WORST_CASES.keys())
def test_a_worker_that_dies_between_graphs_200_and_its_write_repeats_one_bubble_only(
    make_bridge, scenario, case
):
    # (ALICE has written before: the bubbles counted are the answer's, no welcome first.)
    size, dies_after = case
    bridge = make_bridge(known=KNOWN, queue=DYING, OPENAI_MAX_TOKENS="4000")
    text, parts = long_answer(size)
    bridge.model.responder = lambda body: ANSWER_PREFIX + text
    parts[0] = ANSWER_PREFIX + parts[0]
    died = die_after_graph_answers(ALICE, dies_after)
    scenario.tried(
        f"a {size}-bubble answer; the container dies right after the Send API answered 200 "
        f"to bubble {dies_after}, before that was written down",
        f"the documented worst case and nothing worse: bubble {dies_after} arrives twice, "
        "every other bubble once, in order; never a second answer from the model; counted "
        "once; nothing on the DLQ",
    )
    say(bridge, ALICE, question(ALICE))
    bridge.settle(90)
    bubbles = bridge.texts_to(ALICE)
    got = tally(bridge, ALICE)
    expected = [*parts[:dies_after], parts[dies_after - 1], *parts[dies_after:]]
    scenario.saw(bubble_story(bridge, ALICE), **batch_counts(bridge))
    assert died["died"] == 1
    assert bubbles == expected
    assert got.model_calls == 1 and got.counted == 1 == got.billed and got.dead_letters == 0


def test_an_invocation_that_times_out_is_answered_once_after_the_visibility_timeout(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge(queue=DYING)
    LambdaRuntime(bridge)
    faults = AwsFaults.install(monkeypatch)
    scenario.tried(
        "after the claim, DynamoDB takes the worker's BatchGetItem and never answers: "
        "botocore waits its 5 s read timeout and tries again until Lambda ends the "
        f"invocation at its {DYING['function_timeout']} s timeout",
        "the message comes back after the visibility timeout; answered once, counted once; "
        "nothing on the DLQ",
    )
    faults.hang(lambda operation, body: operation == "BatchGetItem", times=10)
    say(bridge, ALICE, question(ALICE))
    bridge.settle(90)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), **batch_counts(bridge), hung=faults.total)
    assert outcomes(bridge)["timed_out"] == 1
    assert got.ended_once() and got.answers == 1 and got.model_calls == 1


# -- messages that keep failing ---------------------------------------------------------------


def fail_sends_of(bridge: Bridge, word: str) -> None:
    """The Send API answers 500 to every message whose text carries ``word``."""
    real = bridge.graph.handle

    def handle(request: Any) -> Any:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = {}
        if word in str(body.get("message", {}).get("text", "")):
            return graph_error(500, 2, "An unexpected error has occurred.")
        return real(request)

    bridge.graph.handle = handle  # type: ignore[method-assign]


def test_a_poison_message_reaches_the_dlq_while_the_persons_later_messages_are_answered(
    bridge: Bridge, scenario
):
    quick_send_retries(bridge)
    fail_sends_of(bridge, "poison")
    scenario.tried(
        "the Send API refuses every bubble of one message (500) on every receive; the "
        "person's next two messages arrive while it is being retried; Bob writes meanwhile",
        "the poison message on the DLQ after 3 receives (answered by the model once, so "
        "counted once); the next two answered after it, in order; Bob answered once",
    )
    say(bridge, ALICE, question(ALICE, "poison"))
    bridge.poller.wait_for(lambda: receives(bridge, "poison"), timeout=10)
    for text in ("after one", "after two"):
        say(bridge, ALICE, question(ALICE, text))
    say(bridge, BOB, question(BOB))
    bridge.settle(60)
    got, bob = tally(bridge, ALICE), tally(bridge, BOB)
    answers = [t for t in bridge.texts_to(ALICE) if t.startswith(ANSWER_PREFIX)]
    scenario.saw(
        f"Alice: {got.describe()}; Bob: {bob.describe()}",
        receives_of_the_poison=len(receives(bridge, "poison")),
    )
    assert [e["text"] for e in dead_letters(bridge)] == [question(ALICE, "poison")]
    assert answers == [answer_to(question(ALICE, t)) for t in ("after one", "after two")]
    assert got.ended_once(3) and bob.ended_once() and bob.answers == 1


def test_a_poison_message_delivered_with_the_next_ones_does_not_take_them_to_the_dlq(
    bridge: Bridge, scenario
):
    quick_send_retries(bridge)
    fail_sends_of(bridge, "poison")
    scenario.tried(
        "one delivery with three of Alice's messages, the first of which the Send API "
        "refuses on every receive (500); the three reach the queue, and the worker, together",
        "the first on the DLQ after 3 receives; the two after it answered, in order",
    )
    texts = ("poison", "after one", "after two")
    body = webhook_body(*(messaging_text(ALICE, question(ALICE, t)) for t in texts))
    bridge.deliver(body)
    bridge.settle(60)
    got = tally(bridge, ALICE)
    parked = [e["text"].removeprefix(question(ALICE, "")) for e in dead_letters(bridge)]
    scenario.saw(f"{got.describe()}; on the DLQ: {parked}")
    assert parked == ["poison"]
    assert got.ended_once(3) and got.answers == 2


def test_a_message_that_kills_the_worker_every_time_reaches_the_dlq_and_the_rest_go_on(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge(queue={"visibility_timeout": 3})
    faults = AwsFaults.install(monkeypatch)
    poison = "m_kills_the_worker"
    scenario.tried(
        "the container dies every time it handles one of Alice's messages (as its claim "
        "leaves); her next message arrives after its first receive; visibility timeout 3 s",
        "SQS moves the poison message to the DLQ after its 3 receives; the next message is "
        "answered once; nothing counted for the poison",
    )
    faults.die_before(lambda op, body: claims_event(op, body) and poison in json.dumps(body), 10)
    say(bridge, ALICE, question(ALICE, "poison"), mid=poison)
    bridge.poller.wait_for(lambda: receives(bridge, "poison"), timeout=10)
    say(bridge, ALICE, question(ALICE, "after it"))
    bridge.settle(90)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), deaths=faults.died["UpdateItem"])
    assert faults.died["UpdateItem"] == 3
    assert [e["event_id"] for e in dead_letters(bridge)] == [poison]
    assert bridge.texts_to(ALICE) == [answer_to(question(ALICE, "after it"))]
    assert got.ended_once(2)


# -- backing off -----------------------------------------------------------------------------


def test_failed_receives_are_backed_off_and_the_last_goes_to_the_dlq_at_once(make_bridge, scenario):
    bridge = make_bridge(queue={"retry_delay_seconds": 1})
    quick_send_retries(bridge)
    bridge.graph.fail_next(503, 2, times=1000, only="message", psid=ALICE)
    scenario.tried(
        "the Send API down (503) for Alice on every receive; retry delay 1 s",
        "receives spaced by the backoff (1 s, then 3 s: ChangeMessageVisibility); the "
        "third (last) failure sent to the DLQ at once; the model asked once; counted once",
    )
    started = time.monotonic()
    say(bridge, ALICE, question(ALICE))
    bridge.settle(60)
    parked_after = time.monotonic() - started
    starts = receives(bridge, question(ALICE))
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(starts)]
    got = tally(bridge, ALICE)
    scenario.saw(f"gaps between receives {gaps} s; {got.describe()}", seconds=round(parked_after))
    assert len(starts) == 3 and gaps[0] >= 0.9 and gaps[1] >= 2.9
    assert parked_after < starts[-1] - starts[0] + 15  # not another visibility timeout (22 s)
    assert got.ended_once() and got.dead_letters == 1 and got.model_calls == 1


def test_a_failing_change_message_visibility_brings_messages_back_after_the_visibility_timeout(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge(known=KNOWN, queue={"visibility_timeout": 4})
    quick_send_retries(bridge)
    faults = AwsFaults.install(monkeypatch, "sqs")
    faults.fail("ChangeMessageVisibilityBatch", times=BOTO3_TRIES)
    bridge.graph.fail_next(503, 2, times=3, only="message", psid=ALICE)
    scenario.tried(
        "the Send API down for Alice's first receive; SQS answers 500 to every try of the "
        "worker's ChangeMessageVisibilityBatch that should make it visible again at once",
        "the batch still reports the record failed; it comes back after the queue's "
        "visibility timeout (4 s) instead, and is answered once; counted once",
    )
    say(bridge, ALICE, question(ALICE))
    bridge.settle(60)
    starts = receives(bridge, question(ALICE))
    got = tally(bridge, ALICE)
    gap = round(starts[1] - starts[0], 1) if len(starts) > 1 else None
    scenario.saw(f"second receive {gap} s after the first; {got.describe()}", failed=faults.total)
    assert faults.failed["ChangeMessageVisibilityBatch"] == BOTO3_TRIES
    assert len(starts) == 2 and gap is not None and gap >= 3.5
    assert got.ended_once() and got.answers == 1 and got.model_calls == 1


def test_one_persons_failure_does_not_get_the_others_in_the_batch_answered_twice(
    make_bridge, scenario
):
    bridge = make_bridge(known=KNOWN)
    quick_send_retries(bridge)
    scenario.tried(
        "a delivery with Alice's and Bob's messages, handed to the function in one batch; "
        "the Send API fails every try for Alice in the first receive",
        "the partial batch response names Alice's record only: Bob answered once (not "
        "again), Alice once by the next receive",
    )
    bridge.graph.fail_next(500, 2, times=3, only="message", psid=ALICE)
    bridge.poller.pause()
    bridge.deliver(
        webhook_body(messaging_text(ALICE, question(ALICE)), messaging_text(BOB, question(BOB)))
    )
    bridge.poller.resume()
    bridge.settle()
    alice, bob = tally(bridge, ALICE), tally(bridge, BOB)
    first = bridge.poller.invocations[0]
    scenario.saw(
        f"first batch: {len(first.records)} records, {len(first.failed_ids)} reported failed; "
        f"Alice: {alice.describe()}; Bob: {bob.describe()}"
    )
    assert len(first.records) == 2 and len(first.failed_ids) == 1
    assert alice.ended_once() and alice.answers == 1
    assert bob.ended_once() and bob.answers == 1 and bob.model_calls == 1


def test_a_crash_in_a_batch_does_not_get_the_others_in_it_answered_twice(
    make_bridge, scenario, monkeypatch
):
    bridge = make_bridge(queue={"visibility_timeout": 3})
    faults = AwsFaults.install(monkeypatch)
    scenario.tried(
        "a delivery with Alice's and Bob's messages in one batch; the container dies once as "
        "Alice's claim leaves, so Lambda fails the whole batch",
        "Bob's record comes back too, and the event's item drops it: Bob answered once; "
        "Alice once by the next receive",
    )
    faults.die_before(lambda op, body: claims_event(op, body) and "m_alice" in json.dumps(body))
    bridge.poller.pause()
    bridge.deliver(
        webhook_body(
            messaging_text(ALICE, question(ALICE), mid="m_alice"),
            messaging_text(BOB, question(BOB), mid="m_bob"),
        )
    )
    bridge.poller.resume()
    bridge.settle(60)
    alice, bob = tally(bridge, ALICE), tally(bridge, BOB)
    scenario.saw(f"Alice: {alice.describe()}; Bob: {bob.describe()}", **batch_counts(bridge))
    assert outcomes(bridge)["failed"] == 1
    assert alice.ended_once() and alice.answers == 1
    assert bob.ended_once() and bob.answers == 1 and bob.model_calls == 1


def test_the_poller_is_idle_only_when_no_message_is_left(scenario, monkeypatch):
    import boto3
    from moto.sqs.models import Queue

    from local.aws import REGION, EmbeddedAWS, create_queues
    from local.event_source import QueuePoller

    scenario.tried(
        "a message received and backed off for 1 s (a retry due), no invocation running; the "
        "poller asks whether the queue is idle, and moto takes 1.2 s between its count of the "
        "visible messages and its count of those in flight",
        "not idle: the message is still to be handled",
    )
    aws = EmbeddedAWS().start()
    try:
        sqs = boto3.client(
            "sqs",
            endpoint_url=aws.url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        queue, _ = create_queues(
            sqs, f"idle-{uuid.uuid4().hex[:8]}", visibility_timeout=30, max_receives=5
        )
        poller = QueuePoller(sqs, queue, lambda event, context: None)  # not started
        sqs.send_message(
            QueueUrl=queue, MessageBody="#0", MessageGroupId=ALICE, MessageDeduplicationId="d0"
        )
        sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=1)
        real = Queue.approximate_number_of_messages
        calls = {"n": 0}

        def slow_count(self):
            visible = real.fget(self)
            calls["n"] += 1
            # moto 5.2 works out every attribute three times per name asked for and reports
            # the third: the visibility runs out after that count, before the next one.
            if calls["n"] == 3:
                time.sleep(1.2)
            return visible

        monkeypatch.setattr(Queue, "approximate_number_of_messages", property(slow_count))
        idle = poller.idle()
    finally:
        aws.stop()
    scenario.saw(f"idle() said {idle}")
    assert idle is False
