"""One person's messages, one at a time, in order, with retries, backoff and a dead-letter
queue: the FIFO queue and Lambda's event source mapping (the poller) doing the work, the
event's item making each answer happen once."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from handler import app, handoff, replies
from handler.bot import Bot, RetryLater
from handler.events import parse_webhook
from handler.messenger import Messenger
from local.model import last_user_text
from tests.support.bridge import Bridge, messaging_text, webhook_body

ALICE = "1000000000000001"
BOB = "1000000000000002"


class ContainerDied(BaseException):
    """Lambda ending the process: no ``except Exception`` sees it."""


def send(bridge: Bridge, text: str, psid: str = ALICE, mid: str | None = None) -> int:
    """One message, without waiting for its answer."""
    return bridge.deliver(webhook_body(messaging_text(psid, text, mid)))["statusCode"]


def echo(body: dict[str, Any]) -> str:
    return f"re: {last_user_text(body)}"


def answers(bridge: Bridge, psid: str = ALICE) -> list[str]:
    return [t for t in bridge.texts_to(psid) if t.startswith("re: ")]


class HeldModel:
    """Answers ``re: <question>``; the first question waits until ``release()``."""

    def __init__(self, bridge: Bridge) -> None:
        self.asked = threading.Event()
        self._go = threading.Event()
        self._first = True
        bridge.model.responder = self._answer

    def _answer(self, body: dict[str, Any]) -> str:
        if self._first and last_user_text(body) != "other":
            self._first = False
            self.asked.set()
            assert self._go.wait(20), "never released"
        return echo(body)

    def release(self) -> None:
        self._go.set()


# -- order -----------------------------------------------------------------------------------


def test_messages_sent_while_one_is_answered_wait_their_turn_and_see_it(bridge: Bridge):
    held = HeldModel(bridge)
    assert send(bridge, "one") == 200
    assert held.asked.wait(10)
    assert (send(bridge, "two"), send(bridge, "three")) == (200, 200)
    time.sleep(0.3)  # the poller would have started them by now were it allowed to
    assert len(bridge.model.requests) == 1
    held.release()
    bridge.settle()
    assert answers(bridge) == ["re: one", "re: two", "re: three"]
    last = bridge.model.requests[-1]["messages"]
    assert [m["content"] for m in last[1:]] == ["one", "re: one", "two", "re: two", "three"]


def test_one_persons_slow_answer_does_not_hold_anyone_else(bridge: Bridge):
    held = HeldModel(bridge)
    send(bridge, "slow")
    assert held.asked.wait(10)
    send(bridge, "other", psid=BOB)
    bridge.graph.wait_for(lambda: answers(bridge, BOB) == ["re: other"], timeout=10)
    assert answers(bridge) == []
    held.release()
    bridge.settle()


def test_a_flood_from_one_person_is_answered_in_order_one_at_a_time(make_bridge):
    bridge = make_bridge(DAILY_LIMIT="50")
    running, most = 0, 0
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return echo(body)

    bridge.model.responder = answer
    for n in range(20):
        send(bridge, f"q{n}")
    bridge.settle()
    assert answers(bridge) == [f"re: q{n}" for n in range(20)]
    assert most == 1


# -- failures, backoff and the dead-letter queue ---------------------------------------------


def test_a_send_api_outage_is_backed_off_and_answered_in_order_once_it_is_over(make_bridge):
    bridge = make_bridge(DAILY_LIMIT="10", queue={"retry_delay_seconds": 1})
    bridge.say(ALICE, "hello")  # a known person: the owner's notice is not in the way
    bridge.model.responder = echo
    bridge.graph.fail_next(503, code=2, times=1000, only="message")
    for text in ("one", "two", "three"):
        send(bridge, text)
    bridge.poller.wait_for(lambda: len(bridge.logs.named("record.retry")) >= 3, timeout=20)
    # The receives of "one": spaced out, not burnt through in a second.
    starts = [i.started for i in bridge.poller.invocations if any('"one"' in b for b in i.bodies)]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    bridge.graph.clear()  # Graph is back
    bridge.settle()
    assert answers(bridge) == ["re: one", "re: two", "re: three"]
    assert len(bridge.model.requests) == 4  # each asked once, retries re-send the answer
    assert [r["visible_in"] for r in bridge.logs.named("record.retry")[:3]] == [1, 3, 9]
    assert len(starts) >= 3 and gaps[0] >= 1 and gaps[1] >= 3  # (each receive tries Graph 3x)


def test_a_message_that_keeps_failing_goes_to_the_dead_letter_queue_and_the_next_ones_go_on(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
):
    real = Bot.handle

    def poisoned(self: Bot, event: Any, attempt: Any) -> str:
        if event.text == "poison":
            raise RetryLater("send:graph_unavailable")
        return real(self, event, attempt)

    monkeypatch.setattr(Bot, "handle", poisoned)
    bridge.model.responder = echo
    for text in ("poison", "after one", "after two"):
        send(bridge, text)
    bridge.settle()
    assert answers(bridge) == ["re: after one", "re: after two"]
    [parked] = bridge.harness.dead_letters()
    assert parked["Attributes"]["ApproximateReceiveCount"] == "6"  # 5 tries + the move
    assert len(bridge.logs.named("record.retry")) == 5


def test_a_crash_counts_as_a_receive_so_a_crashing_message_cannot_strand_the_rest(
    make_bridge, monkeypatch: pytest.MonkeyPatch
):
    bridge = make_bridge(queue={"max_receives": 2, "visibility_timeout": 1})
    real = Bot.handle

    def crashing(self: Bot, event: Any, attempt: Any) -> str:
        if event.text == "crash":
            raise ContainerDied()
        return real(self, event, attempt)

    monkeypatch.setattr(Bot, "handle", crashing)
    bridge.model.responder = echo
    send(bridge, "crash")
    send(bridge, "next")
    bridge.settle()
    assert answers(bridge) == ["re: next"]
    assert [m["text"] for m in bridge.dead_letters()] == ["crash"]
    assert [i.outcome for i in bridge.poller.invocations].count("failed") == 2


# -- exactly once ----------------------------------------------------------------------------


def test_a_kill_mid_answer_resumes_with_the_rest_and_no_second_answer(
    make_bridge, monkeypatch: pytest.MonkeyPatch
):
    # The message comes back once the dead attempt's invocation is over (its lease with it):
    # the visibility timeout is at least the function's timeout, as the stack makes it.
    bridge = make_bridge(
        OPENAI_MAX_TOKENS="4000", queue={"visibility_timeout": 15, "function_timeout": 15}
    )
    bridge.say(ALICE, "hi")
    paragraph = ("All work and no play makes a dull answer. " * 40).strip()
    bridge.model.responder = lambda body: "\n\n".join(f"{n}. {paragraph}" for n in range(3))
    real = Messenger.send_message
    sent = {"n": 0}

    def dies_before_the_third_bubble(self: Messenger, psid: str, message: dict, deadline: float):
        sent["n"] += 1
        if sent["n"] == 3:
            raise ContainerDied()  # two bubbles are out and recorded, the third is not
        real(self, psid, message, deadline)

    monkeypatch.setattr(Messenger, "send_message", dies_before_the_third_bubble)
    send(bridge, "tell me a lot")
    bridge.settle()
    bubbles = bridge.texts_to(ALICE)[1:]
    assert [b[:2] for b in bubbles] == ["0.", "1.", "2."]  # nothing lost, nothing twice
    assert len(bridge.model.requests) == 2  # asked once for this message, not again
    assert bridge.used_today(ALICE) == 2
    assert bridge.logs.named("event.resumed")


def test_a_bubble_whose_answer_never_came_back_is_not_sent_again(bridge: Bridge):
    bridge.say(ALICE, "hi")
    app.runtime().bot.messenger._timeout = 1.0
    bridge.graph.delay_next(2.0, only="message")  # Graph takes it, answers too late
    bridge.say(ALICE, "again")
    time.sleep(1.5)  # until the simulator has answered the slow call (too late) and noted it

    calls = [c for c in bridge.graph.calls if c.psid == ALICE and c.kind == "message"]
    assert len(calls) == 3  # the welcome, then one per question: the slow one not repeated
    [maybe] = bridge.logs.named("reply.maybe_delivered")
    assert maybe["bubble"] == 1
    assert bridge.logs.named("record.retry") == []


def test_facebook_redelivering_an_answered_message_later_gets_nothing_more(bridge: Bridge):
    delivery = webhook_body(messaging_text(ALICE, "hello", mid="m_again"))
    bridge.deliver(delivery)
    bridge.settle()
    # Past SQS's five-minute deduplication window the queue takes the event again (as a new
    # message); the event's item still knows it was answered.
    [event] = parse_webhook(delivery)
    bridge.sqs.send_message(
        QueueUrl=bridge.harness.queue_url,
        MessageBody=handoff.body(event),
        MessageGroupId=ALICE,
        MessageDeduplicationId="later-redelivery",
    )
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert bridge.logs.named("event.duplicate")


def test_the_trouble_note_comes_once_however_often_the_model_fails(bridge: Bridge):
    bridge.model.fail_next(503, times=3)
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == [replies.MODEL_TROUBLE, "The answer is 42."]


def test_the_owner_replays_a_parked_message_and_it_is_answered_from_the_recorded_answer(
    bridge: Bridge, capsys: pytest.CaptureFixture[str]
):
    from admin.cli import main as admin

    bridge.say(ALICE, "hi")
    bridge.graph.fail_next(400, code=190, times=100, only="message")  # the token was revoked
    bridge.say(ALICE, "are you there?")
    assert len(bridge.dead_letters()) == 1
    where = ["--table", bridge.table, "--dead-letter-url", bridge.harness.dead_letter_url]
    assert admin(["replay", *where]) == 0  # first a look: who, how old, why
    shown = capsys.readouterr().out
    assert ALICE in shown and "page_token_invalid" in shown and "are you there?" not in shown
    bridge.graph.clear()  # the owner renewed the token
    assert admin(["replay", "--all", *where]) == 0
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert len(bridge.model.requests) == 2  # the parked answer was sent, not asked for again
    assert bridge.used_today(ALICE) == 2 and bridge.dead_letters() == []


def test_with_batches_of_several_a_failing_message_uses_up_the_retries_behind_it(
    make_bridge, monkeypatch: pytest.MonkeyPatch
):
    """Why the stack hands one message at a time: in a FIFO batch every message counts a
    receive, so the messages behind a failing one are received with it each time and use up
    their own receives. On the failing one's last receive they are answered rather than
    follow it to the dead-letter queue, but by then one failure of theirs would park them.
    """
    bridge = make_bridge(queue={"batch_size": 3})
    real = Bot.handle

    def poisoned(self: Bot, event: Any, attempt: Any) -> str:
        if event.text == "poison":
            raise RetryLater("send:graph_unavailable")
        return real(self, event, attempt)

    monkeypatch.setattr(Bot, "handle", poisoned)
    bridge.model.responder = echo
    bridge.poller.pause()
    for text in ("poison", "after one", "after two"):
        send(bridge, text)
    bridge.poller.resume()
    bridge.settle()
    assert answers(bridge) == ["re: after one", "re: after two"]
    assert [m["text"] for m in bridge.dead_letters()] == ["poison"]
    receives = [int(r["attributes"]["ApproximateReceiveCount"]) for r in _records_of(bridge)]
    assert max(receives) == 5  # the ones behind were received five times too


def _records_of(bridge: Bridge) -> list[dict[str, Any]]:
    return [r for i in bridge.poller.invocations for r in i.records if '"after' in r["body"]]
