"""The model misbehaves: each fault ends in one answer or one apology, and the count follows
what the model answered.

A failure that may pass (a timeout, a 5xx, a rate limit, a reset) tells the person once and
is retried by the queue; the last receive apologises instead. One that cannot pass (no
credit, a broken answer) is apologised for at once. An answer that is empty was still paid
for, so it counts.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from handler import replies
from local.model import FakeOpenAI, fixed_responder
from tests.reliability.harness import (
    batch_counts,
    is_answer,
    outcomes,
    question,
    receives,
    tally,
)
from tests.support.bridge import Bridge

AREA = "Faults: OpenAI"
ALICE = "1000000000000001"
REFUSAL = "I'm sorry, I can't help with that."
CUT_OFF_JSON = b'{"id": "chatcmpl-garbled", "object": "chat.comp'
NULL_CONTENT = (
    b'{"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4.1-mini",'
    b' "choices": [{"index": 0, "finish_reason": "stop",'
    b' "message": {"role": "assistant", "content": null}}]}'
)


@dataclass(frozen=True)
class ModelFault:
    injected: str
    expected: str
    inject: Callable[[FakeOpenAI], None]
    # "answer", "empty" (the bot says the answer was empty), "apology" or "quota apology"
    ending: str
    model_calls: int
    notes: int = 0  # "I'm having trouble reaching the model", said once
    receives: int = 1
    reasons: tuple[str, ...] = ()  # the reasons logged with ``model.failed``
    env: dict[str, str] = field(default_factory=dict)
    # Questions the model answered only after the worker had given up on it: the stand-in
    # records those answers as given (OpenAI bills them), but the worker never read one.
    unread: int = 0


RETRY_ONCE = {"OPENAI_MAX_RETRIES": "1"}
QUICK_TIMEOUT = {"OPENAI_TIMEOUT_SECONDS": "1"}
BROKEN = "bad_response:JSONDecodeError"
NOT_AN_ANSWER = "bad_response:not_an_answer"
FAULTS = {
    "timeout-then-answer": ModelFault(
        "stalls 1.5 s once (client timeout 1 s, one retry within the receive)",
        "the retry gets the answer: one answer, counted once, no note",
        lambda m: m.delay_next(1.5),
        "answer",
        model_calls=2,
        env={**QUICK_TIMEOUT, **RETRY_ONCE},
    ),
    "timeout-then-the-queue-retries": ModelFault(
        "stalls 1.5 s once (client timeout 1 s, no retry within the receive)",
        "the person told once; the next receive gets the answer; counted once",
        lambda m: m.delay_next(1.5),
        "answer",
        model_calls=2,
        notes=1,
        receives=2,
        reasons=("timeout",),
        env=QUICK_TIMEOUT,
    ),
    "timeout-every-time": ModelFault(
        "stalls 1.5 s on every request (client timeout 1 s)",
        "the person told once; the last of 3 receives apologises; not counted (the answers "
        "that came too late were never read)",
        lambda m: m.delay_next(1.5, times=10),
        "apology",
        model_calls=3,
        notes=1,
        receives=3,
        reasons=("timeout",) * 3,
        env=QUICK_TIMEOUT,
        unread=1,
    ),
    "429-retry-after-then-answer": ModelFault(
        "429 with Retry-After: 1, then answers (one retry within the receive)",
        "waits the second it was told, then one answer, counted once",
        lambda m: m.fail_next(429, retry_after=1),
        "answer",
        model_calls=2,
        env=RETRY_ONCE,
    ),
    "429-every-time": ModelFault(
        "429 (rate limit) on every request",
        "the person told once; the last receive apologises; not counted",
        lambda m: m.fail_next(429, retry_after=0.1, times=10),
        "apology",
        model_calls=3,
        notes=1,
        receives=3,
        reasons=("rate_limited",) * 3,
    ),
    "429-insufficient-quota": ModelFault(
        "429 insufficient_quota (the account ran out of credit)",
        "retrying cannot help: one apology at once (the bot is paused), no note; not counted",
        lambda m: m.fail_next(429, code="insufficient_quota", times=5),
        "quota apology",
        model_calls=1,
        reasons=("insufficient_quota",),
    ),
    "401-key-revoked": ModelFault(
        "401 invalid_api_key (the key was revoked)",
        "retrying cannot help: one apology at once; not counted",
        lambda m: m.fail_next(401, times=5),
        "apology",
        model_calls=1,
        reasons=("authentication",),
    ),
    "500-twice-within-the-receive": ModelFault(
        "500 twice, then answers (two retries within the receive)",
        "the retries get the answer: one answer, counted once, no note",
        lambda m: m.fail_next(500, times=2),
        "answer",
        model_calls=3,
        env={"OPENAI_MAX_RETRIES": "2"},
    ),
    "500-twice-then-the-queue": ModelFault(
        "500 twice, then answers (no retry within a receive)",
        "the person told once; the third receive gets the answer; counted once",
        lambda m: m.fail_next(500, times=2),
        "answer",
        model_calls=3,
        notes=1,
        receives=3,
        reasons=("status_500",) * 2,
    ),
    "503-every-time": ModelFault(
        "503 (overloaded) on every request",
        "the person told once; the last receive apologises; not counted",
        lambda m: m.fail_next(503, times=10),
        "apology",
        model_calls=3,
        notes=1,
        receives=3,
        reasons=("status_503",) * 3,
    ),
    "cut-off-json": ModelFault(
        "200 with a JSON body cut off mid-way",
        "one apology, not counted",
        lambda m: m.malformed_next(body=CUT_OFF_JSON),
        "apology",
        model_calls=1,
        reasons=(BROKEN,),
    ),
    "null-content": ModelFault(
        "200, a completion whose content is null (no refusal)",
        "an empty answer, paid for: the person is told it was empty; counted once",
        lambda m: m.malformed_next(body=NULL_CONTENT),
        "empty",
        model_calls=1,
    ),
    "refusal": ModelFault(
        "a safety refusal (content null, refusal set)",
        "the refusal is the answer: sent once, counted once",
        lambda m: m.refuse_next(REFUSAL),
        "answer",
        model_calls=1,
    ),
    "connection-reset-once": ModelFault(
        "the connection is reset without an answer, once (one retry within the receive)",
        "the retry gets the answer: one answer, counted once",
        lambda m: m.reset_connection_next(),
        "answer",
        model_calls=2,
        env=RETRY_ONCE,
    ),
    "connection-reset-every-time": ModelFault(
        "the connection is reset on every request",
        "the person told once; the last receive apologises; not counted",
        lambda m: m.reset_connection_next(times=10),
        "apology",
        model_calls=3,
        notes=1,
        receives=3,
        reasons=("connection",) * 3,
    ),
    "no-choices": ModelFault(
        '200 with well-formed JSON of the wrong shape ({"choices": []})',
        "not an answer: one apology, not counted",
        lambda m: m.malformed_next(body=b'{"choices": []}'),
        "apology",
        model_calls=1,
        reasons=(NOT_AN_ANSWER,),
    ),
    "html-error-page": ModelFault(
        "200 with an HTML error page from a proxy (text/html)",
        "not an answer: one apology, not counted",
        lambda m: m.malformed_next(body=b"<html>502 Bad Gateway</html>", content_type="text/html"),
        "apology",
        model_calls=1,
        reasons=(NOT_AN_ANSWER,),
    ),
}
CASES = [pytest.param(fault, id=name) for name, fault in FAULTS.items()]


def ends(bridge: Bridge) -> Callable[[str], bool]:
    return lambda t: is_answer(t) or t in (REFUSAL, replies.EMPTY_ANSWER)


@pytest.mark.parametrize("fault", CASES)
def test_a_model_fault_ends_in_one_answer_or_one_apology(make_bridge, scenario, fault: ModelFault):
    bridge: Bridge = make_bridge(**fault.env)
    scenario.tried(fault.injected, fault.expected)
    fault.inject(bridge.model)

    bridge.say(ALICE, question(ALICE))

    got = tally(bridge, ALICE, answer=ends(bridge))
    texts = bridge.texts_to(ALICE)
    reasons = tuple(f["reason"] for f in bridge.logs.named("model.failed"))
    scenario.saw(got.describe(), receives=len(receives(bridge, ALICE)))
    assert got.endings == 1 and got.repeated == 0
    assert got.counted == got.billed - fault.unread
    endings = {
        replies.APOLOGY: "apology",
        replies.QUOTA_APOLOGY: "quota apology",
        replies.EMPTY_ANSWER: "empty",
    }
    ending = endings.get(texts[-1], "answer")
    assert ending == fault.ending
    assert got.notes == fault.notes and got.dead_letters == 0
    assert got.model_calls == fault.model_calls  # the retries are bounded
    assert len(receives(bridge, ALICE)) == fault.receives
    assert reasons == fault.reasons


def test_an_empty_answer_is_paid_for_so_it_counts_and_says_why(bridge: Bridge, scenario):
    bridge.model.responder = fixed_responder("")
    scenario.tried(
        "the model answers 200 with empty content (as a reasoning model that spent its "
        "tokens does)",
        "billed, so counted once; the person is told the answer was empty",
    )
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE, answer=ends(bridge))
    scenario.saw(got.describe())
    assert bridge.texts_to(ALICE) == [replies.EMPTY_ANSWER]
    assert got.ended_once() and got.counted == 1


def test_retry_after_is_waited_for_before_the_next_try(make_bridge, scenario):
    bridge = make_bridge(**RETRY_ONCE)
    scenario.tried(
        "429 with Retry-After: 1, then answers", "the second try comes at least 1 s later"
    )
    asked_at: list[float] = []
    bridge.model.responder = lambda body: asked_at.append(time.monotonic()) or "ok"
    bridge.model.fail_next(429, retry_after=1)
    sent_at = time.monotonic()
    bridge.say(ALICE, question(ALICE))
    waited = asked_at[0] - sent_at
    scenario.saw(f"the answer came {waited:.1f} s after the message", model_calls=2)
    assert bridge.texts_to(ALICE)[-1] == "ok"
    assert waited >= 0.9


def test_a_retry_after_longer_than_the_invocation_is_left_to_the_queue(make_bridge, scenario):
    """OpenAI may ask for minutes. The worker must not sleep through it (Lambda would end the
    invocation mid-event); the queue waits instead, by the message's visibility."""
    bridge = make_bridge(queue={"function_timeout": 18}, **RETRY_ONCE)
    scenario.tried(
        "429 with Retry-After: 6, then answers; function timeout 18 s (6 s for the model "
        "call once the worker has kept what it needs to send and to report)",
        "not waited out in the invocation (none timed out); the person told once; the next "
        "receive comes at least 6 s later and answers; counted once",
    )
    bridge.model.fail_next(429, retry_after=6)
    bridge.say(ALICE, question(ALICE))
    bridge.settle(60)
    starts = receives(bridge, question(ALICE))
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(starts)]
    got = tally(bridge, ALICE)
    scenario.saw(f"receives {gaps} s apart; {got.describe()}", **batch_counts(bridge))
    assert outcomes(bridge)["timed_out"] == 0
    assert len(starts) == 2 and gaps[0] >= 5.5
    assert got.ended_once() and got.answers == 1 and got.notes == 1
