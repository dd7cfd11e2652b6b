"""The Send API misbehaves: nobody gets two answers, nobody's question is lost or overcharged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from handler import replies
from local.graph import MessengerSimulator
from tests.reliability.harness import failure_events, question, quick_send_retries, tally
from tests.support.bridge import Bridge, messaging_text, webhook_body

AREA = "Faults: Graph (Send API)"
ALICE = "1000000000000001"
BOB = "1000000000000002"
SEND_TRIES = 4  # the Send API client's tries per message (handler/messenger.py)


@dataclass(frozen=True)
class SendFault:
    injected: str
    expected: str
    inject: Callable[[MessengerSimulator], None]
    answers: int
    failure_records: int
    model_calls: int


def every_try_of_one_attempt(status: int, code: int) -> Callable[[MessengerSimulator], None]:
    return lambda g: g.fail_next(status, code, times=SEND_TRIES, only="message", psid=ALICE)


FAULTS = {
    "5xx-for-one-attempt": SendFault(
        "500 (code 2) on every try of the reply in the first attempt, then healthy",
        "Lambda's retry answers: one answer, counted once",
        every_try_of_one_attempt(500, 2),
        answers=1,
        failure_records=0,
        model_calls=2,
    ),
    "5xx-twice": SendFault(
        "503 (code 1) on the reply twice",
        "the client's own retries deliver it: one answer, counted once",
        lambda g: g.fail_next(503, 1, times=2, only="message", psid=ALICE),
        answers=1,
        failure_records=0,
        model_calls=1,
    ),
    "5xx-on-typing": SendFault(
        "500 on mark_seen and typing_on",
        "cosmetic, tried once: one answer, counted once",
        lambda g: g.fail_next(500, 2, times=2, only="sender_action", psid=ALICE),
        answers=1,
        failure_records=0,
        model_calls=1,
    ),
    "613-rate-limit-twice": SendFault(
        "rate limit 613 on the reply twice",
        "retried with backoff: one answer, counted once",
        lambda g: g.fail_next(400, 613, times=2, only="message", psid=ALICE),
        answers=1,
        failure_records=0,
        model_calls=1,
    ),
    "613-rate-limit-for-good": SendFault(
        "rate limit 613 on every reply, every attempt",
        "no answer; one record on the failure queue; not counted",
        lambda g: g.fail_next(400, 613, times=100, only="message", psid=ALICE),
        answers=0,
        failure_records=1,
        model_calls=3,
    ),
    "reset-for-one-attempt": SendFault(
        "the connection is reset mid-request on every try of the reply in the first attempt",
        "Lambda's retry answers: one answer, counted once",
        lambda g: g.reset_connection_next(times=SEND_TRIES, only="message", psid=ALICE),
        answers=1,
        failure_records=0,
        model_calls=2,
    ),
    "reset-on-typing": SendFault(
        "the connection is reset on mark_seen",
        "cosmetic: one answer, counted once",
        lambda g: g.reset_connection_next(times=1, only="sender_action", psid=ALICE),
        answers=1,
        failure_records=0,
        model_calls=1,
    ),
    "551-on-typing": SendFault(
        "551 person unavailable, from mark_seen on",
        "nobody to answer: no model call, nothing sent, not counted, nothing to retry",
        lambda g: g.fail_next(400, 551, 1545041, times=100, psid=ALICE),
        answers=0,
        failure_records=0,
        model_calls=0,
    ),
    "190-invalid-token": SendFault(
        "190 invalid page token on every call",
        "no model call, not counted; the event is kept on the failure queue for when the "
        "owner has renewed the token (it is the page's fault, not the person's)",
        lambda g: g.fail_next(400, 190, times=100, psid=ALICE),
        answers=0,
        failure_records=1,
        model_calls=0,
    ),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_a_send_api_fault_ends_in_one_answer_or_the_failure_queue(
    bridge: Bridge, scenario, fault: SendFault
):
    quick_send_retries(bridge)
    scenario.tried(fault.injected, fault.expected)
    fault.inject(bridge.graph)

    bridge.say(ALICE, question(ALICE))

    got = tally(bridge, ALICE)
    scenario.saw(got.describe())
    assert got.answers == fault.answers and got.apologies == 0
    assert got.failure_records == fault.failure_records
    assert got.model_calls == fault.model_calls
    assert got.counted == got.answers


def test_an_unreachable_person_does_not_hold_up_the_others_in_the_batch(bridge: Bridge, scenario):
    quick_send_retries(bridge)
    scenario.tried(
        "551 for Alice's reply, in a delivery that also carries Bob's message",
        "Bob answered once; Alice not counted; no Lambda retry",
    )
    bridge.graph.fail_next(400, 551, 1545041, times=100, only="message", psid=ALICE)
    body = webhook_body(messaging_text(ALICE, question(ALICE)), messaging_text(BOB, question(BOB)))
    assert bridge.deliver(body)["statusCode"] == 200
    bridge.settle()
    alice, bob = tally(bridge, ALICE), tally(bridge, BOB)
    retries = sum(len(i.errors) for i in bridge.invoke.invocations)
    scenario.saw(f"Alice: {alice.describe()}; Bob: {bob.describe()}", lambda_retries=retries)
    assert (bob.answers, bob.counted) == (1, 1)
    assert (alice.answers, alice.counted, alice.failure_records) == (0, 0, 0)
    assert retries == 0


def test_a_long_answer_cut_off_by_the_send_api_is_never_sent_twice(make_bridge, scenario):
    bridge = make_bridge(OPENAI_MAX_TOKENS="4000")
    quick_send_retries(bridge)
    paragraph = "All work and no play makes a dull answer. " * 30
    long_answer = "\n\n".join(f"Part {n}. {paragraph.strip()}" for n in range(4))
    bridge.model.responder = lambda body: long_answer
    scenario.tried(
        "a 4-bubble answer; the Send API refuses every try from the second bubble on",
        "the first bubble arrives once and is never repeated by Lambda's retries; counted once",
    )
    bridge.graph.delay_next(0, times=1, only="message", psid=ALICE)  # the first bubble passes
    bridge.graph.fail_next(500, 2, times=100, only="message", psid=ALICE)
    bridge.say(ALICE, question(ALICE))
    delivered = bridge.texts_to(ALICE)
    retries = sum(len(i.errors) for i in bridge.invoke.invocations)
    scenario.saw(
        f"{len(delivered)} bubble(s) delivered, model asked {len(bridge.model.requests)}x",
        counted=tally(bridge, ALICE).counted,
        lambda_retries=retries,
    )
    assert delivered == [long_answer.split("\n\n")[0]] or delivered[0].startswith("Part 0.")
    assert len(delivered) == 1
    assert len(bridge.model.requests) == 1
    assert tally(bridge, ALICE).counted == 1
    assert failure_events(bridge) == []


def test_a_failed_model_whose_apology_cannot_be_sent_is_retried(bridge: Bridge, scenario):
    quick_send_retries(bridge)
    scenario.tried(
        "the model answers 500 on every try, and the Send API is down for the first attempt",
        "Lambda's retry delivers one apology (not silence); not counted",
    )
    bridge.model.fail_next(500, times=100)
    bridge.graph.fail_next(503, 2, times=SEND_TRIES, only="message", psid=ALICE)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe())
    assert bridge.texts_to(ALICE) == [replies.APOLOGY]
    assert (got.apologies, got.failure_records, got.counted) == (1, 0, 0)
