"""The Send API misbehaves: nobody gets two answers, nobody's question is lost or overcharged."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from handler import app, replies
from local.graph import MessengerSimulator, graph_error
from tests.reliability.conftest import KNOWN
from tests.reliability.harness import (
    ANSWER_PREFIX,
    SEND_TRIES,
    question,
    quick_send_retries,
    receives,
    tally,
)
from tests.support.bridge import ADMIN, Bridge, messaging_text, webhook_body

AREA = "Faults: Graph (Send API)"
ALICE = "1000000000000001"
BOB = "1000000000000002"


@dataclass(frozen=True)
class SendFault:
    injected: str
    expected: str
    inject: Callable[[MessengerSimulator], None]
    answers: int = 1
    maybe: int = 0  # sent, and the connection broke: never sent again
    dead_letters: int = 0
    unreachable: int = 0
    model_calls: int = 1
    receives: int = 1
    env: dict[str, str] = field(default_factory=dict)


def to_alice(**kwargs: Any) -> dict[str, Any]:
    return {"psid": ALICE, **kwargs}


FAULTS = {
    "5xx-for-one-receive": SendFault(
        f"500 (code 2) on all {SEND_TRIES} tries of the reply in the first receive",
        "the next receive sends the recorded answer: one answer, the model asked once, "
        "counted once",
        lambda g: g.fail_next(500, 2, times=SEND_TRIES, **to_alice(only="message")),
        receives=2,
    ),
    "5xx-twice": SendFault(
        "503 (code 1) on the reply twice",
        "the client's own tries deliver it: one answer in one receive, counted once",
        lambda g: g.fail_next(503, 1, times=2, **to_alice(only="message")),
    ),
    "5xx-on-typing": SendFault(
        "500 on mark_seen and typing_on",
        "cosmetic, tried once each: one answer, counted once",
        lambda g: g.fail_next(500, 2, times=2, **to_alice(only="sender_action")),
    ),
    "613-rate-limit-twice": SendFault(
        "rate limit (613) on the reply in the first two receives",
        "not hammered within the receive: the queue retries; the third receive delivers the "
        "recorded answer; the model asked once, counted once",
        lambda g: g.fail_next(400, 613, times=2, **to_alice(only="message")),
        receives=3,
    ),
    "613-rate-limit-for-good": SendFault(
        "rate limit (613) on every reply, every receive",
        "no answer; the event on the DLQ after 3 receives; the model answered once, so "
        "counted once",
        lambda g: g.fail_next(400, 613, times=100, **to_alice(only="message")),
        answers=0,
        dead_letters=1,
        receives=3,
    ),
    "190-invalid-token": SendFault(
        "190 (invalid page token) on every Send API call, the owner's notice included",
        "no model call (mark_seen fails first), not counted; the event on the DLQ for when "
        "the owner has renewed the token (it is the page's fault, not the person's)",
        lambda g: g.fail_next(400, 190, times=100),
        answers=0,
        dead_letters=1,
        model_calls=0,
        receives=3,
    ),
    "190-after-the-answer": SendFault(
        "190 (invalid page token) from the reply on: the token revoked while the model was "
        "answering",
        "the answer waits on the DLQ for the owner; the model answered once, so counted once",
        lambda g: g.fail_next(400, 190, times=100, **to_alice(only="message")),
        answers=0,
        dead_letters=1,
        receives=3,
    ),
    "551-from-mark-seen": SendFault(
        "551 (person unavailable) from mark_seen on",
        "nobody to answer: no model call, nothing sent, not counted, nothing to retry",
        lambda g: g.fail_next(400, 551, 1545041, times=100, psid=ALICE),
        answers=0,
        unreachable=1,
        model_calls=0,
    ),
    "551-on-the-reply": SendFault(
        "551 (person unavailable) on the reply only",
        "nothing to retry; the model answered (and was paid), so counted once",
        lambda g: g.fail_next(400, 551, 1545041, times=100, **to_alice(only="message")),
        answers=0,
        unreachable=1,
    ),
    "10-outside-the-window": SendFault(
        "10 / 2018278 (outside the 24-hour window) on the reply",
        "nothing to retry; counted once (the model answered)",
        lambda g: g.fail_next(400, 10, 2018278, times=100, **to_alice(only="message")),
        answers=0,
        unreachable=1,
    ),
    "read-timeout-on-the-reply": SendFault(
        "the reply takes Graph 2 s to answer (the client waits 1 s): maybe delivered",
        "never sent again: one answer (Graph did deliver it), one Send API call for it, one "
        "receive; counted once",
        lambda g: g.delay_next(2.0, **to_alice(only="message")),
        env={"SEND_TIMEOUT": "1"},
    ),
    "reset-on-the-reply": SendFault(
        "the connection is reset after Graph read the reply (maybe delivered)",
        "never sent again (a second copy is worse than a doubt): the answer maybe delivered, "
        "one receive, not on the DLQ; counted once",
        lambda g: g.reset_connection_next(**to_alice(only="message")),
        answers=0,
        maybe=1,
    ),
    "reset-on-typing": SendFault(
        "the connection is reset on mark_seen",
        "cosmetic: one answer, counted once",
        lambda g: g.reset_connection_next(**to_alice(only="sender_action")),
    ),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_a_send_api_fault_ends_in_one_answer_or_the_dlq(make_bridge, scenario, fault: SendFault):
    env = dict(fault.env)
    send_timeout = env.pop("SEND_TIMEOUT", None)
    bridge = make_bridge(known=KNOWN, **env)
    quick_send_retries(bridge)
    if send_timeout:
        app.runtime().bot.messenger._timeout = float(send_timeout)
    scenario.tried(fault.injected, fault.expected)
    fault.inject(bridge.graph)

    bridge.say(ALICE, question(ALICE))
    if send_timeout:  # the late answer arrives after the worker gave up on it
        bridge.graph.wait_for(lambda: bridge.texts_to(ALICE), timeout=5)

    got = tally(bridge, ALICE)
    calls = [c for c in bridge.graph.calls if c.psid == ALICE and c.kind == "message"]
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)), reply_calls=len(calls))
    assert got.ended_once()
    assert (got.answers, got.maybe, got.dead_letters, got.unreachable) == (
        fault.answers,
        fault.maybe,
        fault.dead_letters,
        fault.unreachable,
    )
    assert got.model_calls == fault.model_calls
    assert len(receives(bridge, ALICE)) == fault.receives


def test_an_unreachable_person_does_not_hold_up_the_others_in_the_batch(make_bridge, scenario):
    bridge = make_bridge(known=KNOWN)
    quick_send_retries(bridge)
    scenario.tried(
        "551 for Alice's reply, in a delivery (and a batch) that also carries Bob's message",
        "Bob answered once; Alice: nothing to retry; no record reported failed",
    )
    bridge.graph.fail_next(400, 551, 1545041, times=100, only="message", psid=ALICE)
    bridge.poller.pause()
    body = webhook_body(messaging_text(ALICE, question(ALICE)), messaging_text(BOB, question(BOB)))
    assert bridge.deliver(body)["statusCode"] == 200
    bridge.poller.resume()
    bridge.settle()
    alice, bob = tally(bridge, ALICE), tally(bridge, BOB)
    failed = sum(len(i.failed_ids) for i in bridge.poller.invocations)
    scenario.saw(f"Alice: {alice.describe()}; Bob: {bob.describe()}", records_failed=failed)
    assert bob.ended_once() and bob.answers == 1
    assert alice.ended_once() and alice.unreachable == 1
    assert failed == 0


def test_a_long_answer_cut_off_by_the_send_api_never_repeats_what_was_sent(make_bridge, scenario):
    bridge = make_bridge(known=KNOWN, OPENAI_MAX_TOKENS="4000")
    quick_send_retries(bridge)
    words = "All work and no play makes a dull answer. " * 28
    parts = [f"Part {n}. {words.strip()}" for n in range(4)]
    bridge.model.responder = lambda body: ANSWER_PREFIX + "\n\n".join(parts)
    scenario.tried(
        "a 4-bubble answer; the Send API takes the first bubble, then refuses every try of "
        "every later one (500), on every receive",
        "the first bubble arrives once and is never repeated by the queue's retries; the "
        "event (with the rest of its answer) on the DLQ; the model asked once; counted once",
    )
    bridge.graph.delay_next(0, times=1, only="message", psid=ALICE)  # the first passes
    bridge.graph.fail_next(500, 2, times=100, only="message", psid=ALICE)
    bridge.say(ALICE, question(ALICE))
    delivered = bridge.texts_to(ALICE)
    got = tally(bridge, ALICE)
    scenario.saw(
        f"{len(delivered)} of 4 bubbles delivered (the first, once); model asked "
        f"{got.model_calls}x, answered {got.billed}; counted {got.counted}; "
        f"{got.dead_letters} on the DLQ",
        receives=len(receives(bridge, ALICE)),
    )
    assert delivered == [ANSWER_PREFIX + parts[0]]  # the rest waits on the DLQ for the owner
    assert (got.dead_letters, got.repeated, got.model_calls) == (1, 0, 1)
    assert got.counted == got.billed == 1


def fail_apologies(bridge: Bridge, times: int) -> None:
    """The Send API answers 503 to the next ``times`` apologies."""
    real = bridge.graph.handle
    left = {"n": times}

    def handle(request: Any) -> Any:
        try:
            text = json.loads(request.body or b"{}").get("message", {}).get("text")
        except ValueError:
            text = None
        if text == replies.APOLOGY and left["n"] > 0:
            left["n"] -= 1
            return graph_error(503, 2, "An unexpected error has occurred.")
        return real(request)

    bridge.graph.handle = handle  # type: ignore[method-assign]


APOLOGY_FAULTS = {
    "once": (1, "the client's next try delivers it: one apology; not counted", 1, 0),
    "for-the-last-receive": (
        SEND_TRIES,
        "no apology can be sent: the event goes to the DLQ (the owner sees it), not counted",
        0,
        1,
    ),
}


@pytest.mark.parametrize("case", APOLOGY_FAULTS.values(), ids=APOLOGY_FAULTS.keys())
def test_an_apology_the_send_api_refuses_is_not_lost(bridge: Bridge, scenario, case):
    times, expected, apologies, dead = case
    quick_send_retries(bridge)
    bridge.model.fail_next(500, times=100)
    fail_apologies(bridge, times)
    scenario.tried(
        "the model answers 500 on every receive (the person is told once it is having "
        f"trouble); the Send API refuses the apology of the last receive {times} time(s)",
        expected,
    )
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert got.ended_once()
    assert (got.apologies, got.dead_letters, got.notes, got.counted) == (apologies, dead, 1, 0)


def test_the_owners_new_user_notice_failing_does_not_cost_the_person_anything(
    bridge: Bridge, scenario
):
    quick_send_retries(bridge)
    scenario.tried(
        "the Send API refuses every try of the owner's new-user notice (500)",
        "best effort: the person answered once in one receive, counted once",
    )
    bridge.graph.fail_next(500, 2, times=SEND_TRIES, only="message", psid=ADMIN)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert got.ended_once() and got.answers == 1 and len(receives(bridge, ALICE)) == 1
