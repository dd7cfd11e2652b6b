"""The model misbehaves: each fault ends in one answer or one apology, and the count follows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from local.model import FakeOpenAI
from tests.reliability.harness import is_answer, question, tally
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
    answered: bool  # one answer (True) or one apology (False)
    model_calls: int
    reason: str | None = None  # the reason logged with ``model.failed``
    env: dict[str, str] = field(default_factory=dict)


RETRY_ONCE = {"OPENAI_MAX_RETRIES": "1"}
FAULTS = {
    "timeout-then-answer": ModelFault(
        "stalls 1.5 s once (client timeout 1 s), then answers",
        "the SDK's retry gets the answer: one answer, counted once",
        lambda m: m.delay_next(1.5),
        answered=True,
        model_calls=2,
        env={"OPENAI_TIMEOUT_SECONDS": "1", **RETRY_ONCE},
    ),
    "timeout-every-time": ModelFault(
        "stalls 1.5 s on every request (client timeout 1 s, no SDK retry)",
        "one apology, not counted",
        lambda m: m.delay_next(1.5, times=5),
        answered=False,
        model_calls=1,
        reason="timeout",
        env={"OPENAI_TIMEOUT_SECONDS": "1", "OPENAI_MAX_RETRIES": "0"},
    ),
    "429-retry-after-then-answer": ModelFault(
        "429 with Retry-After: 1, then answers",
        "waits the second it was told, then one answer, counted once",
        lambda m: m.fail_next(429, retry_after=1),
        answered=True,
        model_calls=2,
        env=RETRY_ONCE,
    ),
    "429-every-time": ModelFault(
        "429 (rate limit) on every request",
        "one apology, not counted",
        lambda m: m.fail_next(429, retry_after=0.1, times=5),
        answered=False,
        model_calls=2,
        reason="rate_limited",
        env=RETRY_ONCE,
    ),
    "429-insufficient-quota": ModelFault(
        "429 insufficient_quota (the account ran out of credit)",
        "one apology, not counted",
        lambda m: m.fail_next(429, code="insufficient_quota", times=5),
        answered=False,
        model_calls=2,
        reason="rate_limited",
        env=RETRY_ONCE,
    ),
    "500-twice-then-answer": ModelFault(
        "500 twice, then answers",
        "the SDK's retries get the answer: one answer, counted once",
        lambda m: m.fail_next(500, times=2),
        answered=True,
        model_calls=3,
        env={"OPENAI_MAX_RETRIES": "2"},
    ),
    "503-every-time": ModelFault(
        "503 (overloaded) on every request",
        "one apology after the retries, not counted",
        lambda m: m.fail_next(503, times=5),
        answered=False,
        model_calls=2,
        reason="status_503",
        env=RETRY_ONCE,
    ),
    "cut-off-json": ModelFault(
        "200 with a JSON body cut off mid-way",
        "one apology, not counted",
        lambda m: m.malformed_next(body=CUT_OFF_JSON),
        answered=False,
        model_calls=1,
    ),
    "no-choices": ModelFault(
        '200 with well-formed JSON of the wrong shape ({"choices": []})',
        "one apology, not counted",
        lambda m: m.malformed_next(body=b'{"choices": []}'),
        answered=False,
        model_calls=1,
    ),
    "null-content": ModelFault(
        "200 with content null and no refusal",
        "one apology, not counted",
        lambda m: m.malformed_next(body=NULL_CONTENT),
        answered=False,
        model_calls=1,
        reason="empty_answer",
    ),
    "html-error-page": ModelFault(
        "200 with an HTML error page from a proxy",
        "one apology, not counted",
        lambda m: m.malformed_next(body=b"<html>502 Bad Gateway</html>", content_type="text/html"),
        answered=False,
        model_calls=1,
    ),
    "refusal": ModelFault(
        "a safety refusal (content null, refusal set)",
        "the refusal is the answer: sent once, counted once",
        lambda m: m.refuse_next(REFUSAL),
        answered=True,
        model_calls=1,
    ),
    "connection-reset-once": ModelFault(
        "the connection is reset without an answer, once",
        "the SDK's retry gets the answer: one answer, counted once",
        lambda m: m.reset_connection_next(),
        answered=True,
        model_calls=2,
        env=RETRY_ONCE,
    ),
    "connection-reset-every-time": ModelFault(
        "the connection is reset on every request",
        "one apology, not counted",
        lambda m: m.reset_connection_next(times=5),
        answered=False,
        model_calls=2,
        reason="connection",
        env=RETRY_ONCE,
    ),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_a_model_fault_ends_in_one_answer_or_one_apology(make_bridge, scenario, fault: ModelFault):
    bridge: Bridge = make_bridge(**fault.env)
    scenario.tried(fault.injected, fault.expected)
    fault.inject(bridge.model)

    bridge.say(ALICE, question(ALICE))

    got = tally(bridge, ALICE, answer=lambda t: is_answer(t) or t == REFUSAL)
    failed = bridge.logs.named("model.failed")
    lambda_retries = sum(len(i.errors) for i in bridge.invoke.invocations)
    scenario.saw(got.describe(), lambda_retries=lambda_retries)
    assert (got.answers, got.apologies) == ((1, 0) if fault.answered else (0, 1))
    assert got.failure_records == 0 and lambda_retries == 0  # handled within the attempt
    assert got.model_calls == fault.model_calls  # the retries are bounded
    assert got.counted == got.answers
    if fault.reason:
        assert [f["reason"] for f in failed] == [fault.reason]


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


def test_a_retry_after_longer_than_the_lambda_timeout_is_not_waited_out(make_bridge, scenario):
    """OpenAI may ask for minutes (the SDK honours Retry-After up to 120 s, per retry).

    The deployment's Lambda timeout only has to exceed the model timeout times the attempts
    (infra/config.py); a worker that sleeps through a long Retry-After is killed by Lambda
    mid-event, and the person gets nothing.
    """
    bridge = make_bridge(OPENAI_TIMEOUT_SECONDS="10", **RETRY_ONCE)
    bridge.invoke.timeout = 35.0  # above 10 s x 2 tries, as infra/config.py requires
    scenario.tried(
        "429 with Retry-After: 40 (model timeout 10 s, one retry, Lambda timeout 35 s)",
        "an apology within the Lambda timeout, not counted; no attempt killed at the timeout",
    )
    bridge.model.fail_next(429, retry_after=40)
    bridge.say(ALICE, question(ALICE))
    got = tally(bridge, ALICE)
    timed_out = [e for i in bridge.invoke.invocations for e in i.errors if "TimedOut" in e]
    scenario.saw(got.describe(), attempts_killed_at_timeout=len(timed_out))
    assert timed_out == []
    assert (got.answers, got.apologies, got.counted) == (0, 1, 0)
