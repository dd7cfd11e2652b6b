"""Many people and many messages at once, on DynamoDB Local (atomic conditional writes, as in
AWS): races on one message and on one quota, order per person, and faults under load."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.reliability.harness import (
    ANSWER_PREFIX,
    AwsFaults,
    LambdaTiming,
    answer_to,
    failure_events,
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
        return ANSWER_PREFIX + body["messages"][-1]["content"]

    bridge.model.responder = answer


def test_concurrent_deliveries_of_one_message_are_answered_once(make_bridge, scenario):
    bridge = make_bridge(engine="dynamodb-local", retry_delay=1.0)
    deliveries = 12
    scenario.tried(
        f"the same signed delivery (one message id) POSTed {deliveries} times at once, as "
        "Facebook's retries can arrive",
        "every POST 200; one answer, one model call, counted once",
    )
    body = webhook_body(messaging_text(ALICE, question(ALICE), mid="m_storm"))
    barrier = threading.Barrier(deliveries)

    def deliver(_: int) -> int:
        barrier.wait()
        return bridge.deliver(body)["statusCode"]

    with ThreadPoolExecutor(deliveries) as pool:
        statuses = list(pool.map(deliver, range(deliveries)))
    bridge.invoke.wait_idle(timeout=60)
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), deliveries=deliveries, worker_runs=len(bridge.invoke.invocations))
    assert statuses == [200] * deliveries
    assert (got.answers, got.model_calls, got.counted, got.failure_records) == (1, 1, 1, 0)


def test_concurrent_questions_at_the_limit_get_exactly_the_last_question(make_bridge, scenario):
    bridge = make_bridge(engine="dynamodb-local", DAILY_LIMIT="3")
    at_once = 10
    bridge.say(ALICE, question(ALICE, "one"))
    bridge.say(ALICE, question(ALICE, "two"))
    scenario.tried(
        f"a person with 2 of 3 questions used sends {at_once} different questions at once "
        "(separate deliveries, workers running concurrently)",
        f"exactly one more answer and {at_once - 1} over-the-limit notices; counted 3",
    )
    barrier = threading.Barrier(at_once)

    def send(n: int) -> int:
        barrier.wait()
        return say(bridge, ALICE, question(ALICE, f"race {n}"))["statusCode"]

    with ThreadPoolExecutor(at_once) as pool:
        statuses = list(pool.map(send, range(at_once)))
    bridge.invoke.wait_idle(timeout=60)
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
    bridge.invoke.wait_idle(timeout=600)
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
    counted_ok = sum(1 for r in results if tally(bridge, r.psid).counted == limit)
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
        seconds=round(seconds),
    )
    assert statuses == [200] * count * per_person
    assert sum(r.lost for r in results) == sum(r.duplicated for r in results) == 0
    assert counted_ok == count
    assert [r.psid for r in results if not r.in_order] == []  # order, and the right answers
    assert forgetful == 0  # each question saw the exchange before it (conversation memory)


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
    LambdaTiming(bridge)  # retries come when Lambda's would: after any lease has run out
    dynamo = AwsFaults.install(monkeypatch)
    psids = people(count)
    rng = random.Random(11)
    injected: dict[str, int] = {}
    stop = threading.Event()

    def chaos() -> None:
        """Every 40 ms, one fault for whoever asks next: model 500, Send API down for a
        whole send, a reset connection, or DynamoDB throttling a burst of requests."""
        while not stop.wait(0.04):
            kind = rng.choice(["model", "graph", "reset", "dynamo", "none", "none"])
            injected[kind] = injected.get(kind, 0) + 1
            if kind == "model":
                bridge.model.fail_next(500)
            elif kind == "graph":
                bridge.graph.fail_next(503, 2, times=4, only="message")
            elif kind == "reset":
                bridge.graph.reset_connection_next(only="message")
            elif kind == "dynamo":  # bursts botocore rides out; the rest: test_faults_dynamodb
                dynamo.throttle(times=rng.randint(1, 5), absorbable=True)

    scenario.tried(
        f"{count} people write {per_person} messages each at once while faults are thrown "
        "in every 40 ms: model 500s, the Send API down for a whole send, reset connections, "
        "DynamoDB throttling bursts that botocore's retries ride out (longer ones: see "
        "Faults: DynamoDB)",
        "every message: exactly one answer, or one apology, or one record on the failure "
        "queue; no answer twice; counted = answers, per person",
    )
    monkey = threading.Thread(target=chaos, daemon=True)
    monkey.start()

    def write(psid: str) -> None:
        for n in range(per_person):
            say(bridge, psid, question(psid, f"#{n}"))

    try:
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(write, psids))
        bridge.invoke.wait_idle(timeout=600)
    finally:
        stop.set()
        monkey.join()
    bridge.invoke.wait_idle(timeout=600)
    wrong: list[str] = []
    totals = {"answers": 0, "apologies": 0, "failure_records": 0}
    for psid in psids:
        got = tally(bridge, psid)
        answers = [t for t in bridge.texts_to(psid) if t.startswith(ANSWER_PREFIX)]
        for key in totals:
            totals[key] += getattr(got, key)
        if got.accounted != per_person or len(set(answers)) != len(answers):
            wrong.append(f"{psid}: {got.describe()}")
        elif got.counted != got.answers:
            wrong.append(f"{psid}: counted {got.counted} for {got.answers} answers")
    scenario.saw(
        f"{count - len(wrong)} of {count} people fully accounted for"
        + (f"; first problem: {wrong[0]}" if wrong else ""),
        messages=count * per_person,
        **totals,
        faults_thrown=sum(v for k, v in injected.items() if k != "none"),
        dynamodb_requests_throttled=sum(dynamo.throttled.values()),
    )
    assert wrong == []
    assert len(failure_events(bridge)) == totals["failure_records"]


@pytest.mark.slow
def test_a_long_day_of_many_people_keeps_every_count_exact(make_bridge, scenario):
    count, per_person, limit = 60, 12, 10
    bridge = make_bridge(engine="dynamodb-local", DAILY_LIMIT=str(limit))
    LambdaTiming(bridge)  # a retry comes when Lambda's would: after any lease has run out
    jittery_model(bridge, most=0.01)
    psids = people(count)
    scenario.tried(
        f"{count} people x {per_person} messages, everyone at once, each person's messages "
        "sent back to back, no reserved concurrency (on 2 CPUs DynamoDB Local may then answer "
        "after botocore's 5 s read timeout, which botocore retries)",
        f"answers = min(messages, {limit}) per person, counted exactly; nothing lost or "
        "answered twice (order not checked here)",
    )

    def write(psid: str) -> None:
        for n in range(per_person):
            say(bridge, psid, question(psid, f"#{n}"))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, psids))
    bridge.invoke.wait_idle(timeout=900)
    bad = []
    for psid in psids:
        got = tally(bridge, psid)
        answers = [t for t in bridge.texts_to(psid) if t.startswith(ANSWER_PREFIX)]
        if (got.answers, got.counted, got.notices) != (limit, limit, per_person - limit):
            bad.append(psid)
        if len(set(answers)) != len(answers):
            bad.append(psid)
    scenario.saw(
        f"{count - len(set(bad))} of {count} people exact",
        messages=count * per_person,
        answered=sum(tally(bridge, p).answers for p in psids),
        attempts_failed_and_retried=sum(len(i.errors) for i in bridge.invoke.invocations),
        on_the_failure_queue=len(failure_events(bridge)),
    )
    assert bad == []
