"""Many people and many messages at once, on DynamoDB Local (atomic conditional writes, as in
AWS): races on one message and on one quota, order per person, and faults under load."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import boto3
import pytest

from tests.reliability.conftest import KNOWN
from tests.reliability.harness import (
    ANSWER_PREFIX,
    AwsFaults,
    answer_to,
    dead_letters,
    outcomes,
    question,
    quick_send_retries,
    say,
    tally,
)
from tests.support.bridge import Bridge, messaging_text, webhook_body

AREA = "Load and races"
ALICE = "1000000000000001"


def people(count: int) -> list[str]:
    return [f"40000000000{n:05d}" for n in range(count)]


def jittery_model(bridge: Bridge, most: float = 0.03, seed: int = 7) -> None:
    """Answers that take 0 to ``most`` seconds, so concurrent work really overlaps."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def answer(body: dict) -> str:
        with lock:
            pause = rng.uniform(0, most)
        time.sleep(pause)
        return answer_to(body["messages"][-1]["content"])

    bridge.model.responder = answer


def test_concurrent_deliveries_of_one_message_are_answered_once(make_bridge, scenario):
    bridge = make_bridge(engine="dynamodb-local")
    deliveries = 12
    scenario.tried(
        f"the same signed delivery (one message id) POSTed {deliveries} times at once, as "
        "Facebook's retries can arrive",
        "every POST 200; one answer, one model call, counted once (SQS keeps one copy while "
        "it holds it; the event's item drops any later one)",
    )
    body = webhook_body(messaging_text(ALICE, question(ALICE), mid="m_storm"))
    barrier = threading.Barrier(deliveries)

    def deliver(_: int) -> int:
        barrier.wait()
        return bridge.deliver(body)["statusCode"]

    with ThreadPoolExecutor(deliveries) as pool:
        statuses = list(pool.map(deliver, range(deliveries)))
    bridge.settle(60)
    got = tally(bridge, ALICE)
    copies = sum(len(i.records) for i in bridge.poller.invocations)
    scenario.saw(got.describe(), deliveries=deliveries, copies_received=copies)
    assert statuses == [200] * deliveries
    assert got.ended_once() and (got.answers, got.model_calls) == (1, 1)


def test_concurrent_questions_at_the_limit_get_exactly_the_last_question(make_bridge, scenario):
    bridge = make_bridge(engine="dynamodb-local", known=KNOWN, DAILY_LIMIT="3")
    at_once = 10
    bridge.say(ALICE, question(ALICE, "one"))
    bridge.say(ALICE, question(ALICE, "two"))
    scenario.tried(
        f"a person with 2 of 3 questions used sends {at_once} different questions at once "
        "(separate deliveries, at the same moment)",
        f"the message group puts them in one order: exactly one more answer (to the first "
        f"queued) and {at_once - 1} over-the-limit notices; counted 3",
    )
    barrier = threading.Barrier(at_once)

    def send(n: int) -> int:
        barrier.wait()
        return say(bridge, ALICE, question(ALICE, f"race {n}"))["statusCode"]

    with ThreadPoolExecutor(at_once) as pool:
        statuses = list(pool.map(send, range(at_once)))
    bridge.settle(60)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), sent_at_once=at_once)
    assert statuses == [200] * at_once
    assert (got.answers, got.notices, got.counted) == (3, at_once - 1, 3)
    assert got.model_calls == 3


OVER_LIMIT = "<over the limit>"


def normalized(texts: list[str]) -> list[str]:
    """Answers as they are; the over-the-limit notice (which names a time) as one token."""
    return [OVER_LIMIT if t.startswith("You've used your") else t for t in texts]


@dataclass
class PersonResult:
    """What one person got, against what they should have got (first answers, then no)."""

    psid: str
    got: list[str]  # normalized
    expected: list[str]

    @property
    def answers(self) -> list[str]:
        return [t for t in self.got if t.startswith(ANSWER_PREFIX)]

    @property
    def lost(self) -> int:
        """Messages that got neither an answer nor a notice."""
        return max(0, len(self.expected) - len(set(self.answers)) - self.got.count(OVER_LIMIT))

    @property
    def duplicated(self) -> int:
        return len(self.answers) - len(set(self.answers))

    @property
    def answered_out_of_turn(self) -> int:
        """Answers to messages that came after the last one the limit allowed."""
        return sum(1 for a in set(self.answers) if a not in self.expected)

    @property
    def in_order(self) -> bool:
        return self.got == self.expected


def test_many_people_writing_at_once_get_their_answers_in_order_and_counted_exactly(
    make_bridge, scenario, slow
):
    count, per_person, limit = (30, 12, 8) if slow else (8, 6, 4)
    bridge = make_bridge(engine="dynamodb-local", DAILY_LIMIT=str(limit))
    jittery_model(bridge)
    psids = people(count)
    scenario.tried(
        f"{count} people write at once, each {per_person} messages one after the other "
        f"(each sent once the webhook answered the previous one, as Messenger delivers); "
        f"daily limit {limit}; answers take 0-30 ms",
        f"each person: answers to their first {limit} messages in the order sent, then "
        f"{per_person - limit} over-the-limit notices; each question seeing the exchange "
        f"before it; nothing lost or duplicated; counted {limit} each",
    )
    statuses: list[int] = []

    def write(psid: str) -> None:
        for n in range(per_person):
            statuses.append(say(bridge, psid, question(psid, f"#{n}"))["statusCode"])

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(write, psids))
    bridge.settle(600)
    seconds = time.monotonic() - started
    results = [
        PersonResult(
            psid,
            normalized(bridge.texts_to(psid)),
            [answer_to(question(psid, f"#{n}")) for n in range(limit)]
            + [OVER_LIMIT] * (per_person - limit),
        )
        for psid in psids
    ]
    counted_ok = sum(
        1 for r in results if tally(bridge, r.psid).counted == limit == tally(bridge, r.psid).billed
    )
    answered = sum(len(r.answers) for r in results)
    forgetful = questions_without_the_one_before(bridge.model.requests)
    scenario.saw(
        f"{sum(1 for r in results if r.in_order)} of {count} people got exactly the expected "
        f"sequence; quotas exact for {counted_ok}",
        messages=len(statuses),
        answered=answered,
        lost=sum(r.lost for r in results),
        duplicated=sum(r.duplicated for r in results),
        answered_out_of_turn=sum(r.answered_out_of_turn for r in results),
        people_out_of_order=sum(1 for r in results if not r.in_order),
        questions_asked_without_the_previous_exchange=forgetful,
        on_the_dlq=len(dead_letters(bridge)),
        most_invocations_at_once=bridge.poller.most_at_once,
        seconds=round(seconds),
    )
    assert statuses == [200] * count * per_person
    assert sum(r.lost for r in results) == sum(r.duplicated for r in results) == 0
    assert counted_ok == count
    assert [r.psid for r in results if not r.in_order] == []  # order, and the right answers
    assert forgetful == 0  # each question saw the exchange before it (conversation memory)
    assert dead_letters(bridge) == []


def questions_without_the_one_before(requests: list[dict]) -> int:
    """Model requests for question #n (n > 0) whose context lacks question #n-1."""
    missing = 0
    for request in requests:
        asked = str(request["messages"][-1]["content"])
        marker, _, number = asked.rpartition("#")
        if number.isdigit() and int(number) > 0:
            before = f"{marker}#{int(number) - 1}"
            if not any(m.get("content") == before for m in request["messages"][:-1]):
                missing += 1
    return missing


def test_under_faults_every_message_still_ends_one_right_way(
    make_bridge, scenario, slow, monkeypatch
):
    count, per_person = (20, 10) if slow else (6, 5)
    bridge = make_bridge(engine="dynamodb-local", DAILY_LIMIT="1000")
    quick_send_retries(bridge)
    jittery_model(bridge, most=0.02)
    dynamo = AwsFaults.install(monkeypatch)
    sqs = AwsFaults.install(monkeypatch, "sqs", event_kind=None)
    psids = people(count)
    rng = random.Random(11)
    injected: dict[str, int] = {}
    stop = threading.Event()

    def chaos() -> None:
        """Every 40 ms, one fault for whoever comes next: a model 500, the Send API down for
        a whole send, a reset connection, a burst of DynamoDB or SQS throttling that
        botocore's retries ride out."""
        while not stop.wait(0.04):
            kind = rng.choice(["model", "graph", "reset", "dynamo", "sqs", "none", "none"])
            injected[kind] = injected.get(kind, 0) + 1
            if kind == "model":
                bridge.model.fail_next(500)
            elif kind == "graph":
                bridge.graph.fail_next(503, 2, times=3, only="message")
            elif kind == "reset":
                bridge.graph.reset_connection_next(only="message")
            elif kind == "dynamo":  # the longer ones: Faults: DynamoDB
                dynamo.throttle(times=rng.randint(1, 5), absorbable=True)
            elif kind == "sqs":
                sqs.throttle(times=rng.randint(1, 3), absorbable=True)

    scenario.tried(
        f"{count} people write {per_person} messages each at once while faults are thrown "
        "in every 40 ms: model 500s, the Send API down for a whole send, reset connections, "
        "DynamoDB and SQS throttling bursts that botocore's retries ride out (longer ones: "
        "see the fault areas)",
        "every message: exactly one answer (or one whose connection broke, never resent), or "
        "one apology, or one record on the DLQ; no bubble twice; counted = what the model "
        "answered, per person",
    )
    monkey = threading.Thread(target=chaos, daemon=True)
    monkey.start()

    def write(psid: str) -> None:
        for n in range(per_person):
            say(bridge, psid, question(psid, f"#{n}"))

    try:
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(write, psids))
        bridge.settle(600)
    finally:
        stop.set()
        monkey.join()
    bridge.settle(600)
    wrong: list[str] = []
    totals = {"answers": 0, "maybe": 0, "apologies": 0, "dead_letters": 0}
    for psid in psids:
        got = tally(bridge, psid)
        for key in totals:
            totals[key] += getattr(got, key)
        if not got.ended_once(per_person):
            wrong.append(f"{psid}: {got.describe()}")
    scenario.saw(
        f"{count - len(wrong)} of {count} people fully accounted for"
        + (f"; first problem: {wrong[0]}" if wrong else ""),
        messages=count * per_person,
        **totals,
        faults_thrown=sum(v for k, v in injected.items() if k != "none"),
        requests_throttled=sum(dynamo.throttled.values()) + sum(sqs.throttled.values()),
    )
    assert wrong == []


@pytest.mark.slow
def test_a_long_day_of_many_people_keeps_every_count_exact(make_bridge, scenario):
    count, per_person, limit = 60, 12, 10
    bridge = make_bridge(engine="dynamodb-local", DAILY_LIMIT=str(limit))
    jittery_model(bridge, most=0.01)
    psids = people(count)
    scenario.tried(
        f"{count} people x {per_person} messages, 16 people writing at any moment, each "
        f"person's messages sent back to back; at most {bridge.poller.max_concurrency} "
        "invocations at once (on 2 CPUs DynamoDB Local may then answer after botocore's 5 s "
        "read timeout, which botocore retries)",
        f"answers = min(messages, {limit}) per person, in order, counted exactly; nothing "
        "lost, answered twice or left on the DLQ",
    )

    def write(psid: str) -> None:
        for n in range(per_person):
            say(bridge, psid, question(psid, f"#{n}"))

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, psids))
    bridge.settle(900)
    bad = []
    for psid in psids:
        got = tally(bridge, psid)
        answers = [t for t in bridge.texts_to(psid) if t.startswith(ANSWER_PREFIX)]
        expected = [answer_to(question(psid, f"#{n}")) for n in range(limit)]
        exact = (got.answers, got.counted, got.notices) == (limit, limit, per_person - limit)
        if not (exact and answers == expected and got.ended_once(limit)):
            bad.append(psid)
    scenario.saw(
        f"{count - len(set(bad))} of {count} people exact",
        messages=count * per_person,
        answered=sum(tally(bridge, p).answers for p in psids),
        batches=len(bridge.poller.invocations),
        batches_not_clean=sum(v for k, v in outcomes(bridge).items() if k != "succeeded"),
        on_the_dlq=len(dead_letters(bridge)),
        seconds=round(time.monotonic() - started),
    )
    assert bad == []


def test_the_queue_stand_in_gives_a_message_group_to_one_receiver_at_a_time(scenario, monkeypatch):
    from moto.sqs.models import Message

    from local.aws import REGION, EmbeddedAWS, create_queues

    real = Message.mark_received

    def slow_mark(self, *args, **kwargs):
        time.sleep(0.2)  # the window between deciding to hand a message out and marking it
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Message, "mark_received", slow_mark)
    scenario.tried(
        "two ReceiveMessage calls at the same moment on the FIFO queue (local/aws.py's moto) "
        "holding three messages of one person's group; the window inside ReceiveMessage "
        "widened to 0.2 s",
        "as SQS: one receiver gets the group's first message, the other nothing until it is "
        "deleted or visible again",
    )
    aws = EmbeddedAWS().start()
    try:

        def client():
            return boto3.client(
                "sqs",
                endpoint_url=aws.url,
                region_name=REGION,
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )

        sqs = client()
        queue, _ = create_queues(
            sqs, f"race-{uuid.uuid4().hex[:8]}", visibility_timeout=30, max_receives=5
        )
        for n in range(3):
            sqs.send_message(
                QueueUrl=queue,
                MessageBody=f"#{n}",
                MessageGroupId=ALICE,
                MessageDeduplicationId=f"d{n}",
            )
        receivers = [client(), client()]
        barrier = threading.Barrier(len(receivers))
        got: list[list[str]] = [[] for _ in receivers]

        def receive(index: int) -> None:
            barrier.wait()
            messages = (
                receivers[index]
                .receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=30)
                .get("Messages", [])
            )
            got[index] = [m["Body"] for m in messages]

        threads = [threading.Thread(target=receive, args=(i,)) for i in range(len(receivers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        aws.stop()
    scenario.saw(f"the receivers got {got}")
    assert sorted(got) == [[], ["#0"]]
