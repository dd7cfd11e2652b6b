"""One person's messages are answered one at a time, in the order they were sent.

Each delivery starts its own worker, but only the one holding the person's inbox answers;
the others find it taken and end at once.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from handler import app
from handler.events import Inbound
from handler.messenger import SendError
from handler.worker import CLAIM_LEASE
from local.model import last_user_text
from tests.support.bridge import FUNCTION, Bridge, messaging_text, webhook_body

ALICE = "1000000000000001"


def send(bridge: Bridge, text: str, mid: str | None = None) -> int:
    """One message, without waiting for its answer."""
    return bridge.deliver(webhook_body(messaging_text(ALICE, text, mid)))["statusCode"]


def echo(body: dict[str, Any]) -> str:
    return f"re: {last_user_text(body)}"


class HeldModel:
    """Answers ``re: <question>``; the first question waits until ``release()``."""

    def __init__(self, bridge: Bridge) -> None:
        self.asked = threading.Event()
        self._go = threading.Event()
        self._first = True
        bridge.model.responder = self._answer

    def _answer(self, body: dict[str, Any]) -> str:
        if self._first:
            self._first = False
            self.asked.set()
            assert self._go.wait(20), "never released"
        return echo(body)

    def release(self) -> None:
        self._go.set()


def test_messages_sent_while_one_is_answered_wait_their_turn_and_see_it(bridge: Bridge):
    held = HeldModel(bridge)
    assert send(bridge, "one") == 200
    assert held.asked.wait(10)
    assert (send(bridge, "two"), send(bridge, "three")) == (200, 200)
    bridge.invoke.wait_for(lambda: len(bridge.logs.named("inbox.busy")) == 2)
    held.release()
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["re: one", "re: two", "re: three"]
    last = bridge.model.requests[-1]["messages"]
    assert [m["content"] for m in last[1:]] == ["one", "re: one", "two", "re: two", "three"]
    assert len(bridge.invoke.invocations) == 3  # one per delivery; two found the inbox taken


def test_a_flood_from_one_person_takes_one_worker_at_a_time(make_bridge):
    bridge = make_bridge(engine="dynamodb-local", DAILY_LIMIT="50")  # atomic leases
    running, most = 0, 0
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threading.Event().wait(0.01)
        with lock:
            running -= 1
        return echo(body)

    bridge.model.responder = answer
    texts = [f"#{n}" for n in range(12)]
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda t: send(bridge, t), texts))
    bridge.settle()
    assert statuses == [200] * 12
    assert most == 1
    assert bridge.logs.named("event.reposted") == []  # answered ones are not posted again
    assert sorted(bridge.texts_to(ALICE)) == sorted(f"re: {t}" for t in texts)
    assert bridge.used_today(ALICE) == 12


def test_a_message_that_keeps_failing_is_parked_and_the_ones_behind_it_are_answered(
    bridge: Bridge,
):
    bridge.model.responder = echo
    bridge.say(ALICE, "hello")  # a known user: no owner's notice in the way
    bridge.graph.fail_next(400, code=190, times=3, only="message")  # the page token, revoked
    assert send(bridge, "stuck", mid="m_stuck") == 200
    assert send(bridge, "behind") == 200
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["re: hello", "re: behind"]
    refused = [c for c in bridge.graph.calls if c.kind == "message" and c.status != 200]
    answered = [c for c in bridge.graph.calls if c.kind == "message" and c.status == 200]
    assert len(refused) == 3 and max(c.at for c in refused) < answered[-1].at
    [record] = bridge.failure_records()
    assert [e["event_id"] for e in record["requestPayload"]["events"]] == ["m_stuck"]
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert bridge.used_today(ALICE) == 2
    assert bridge.logs.named("event.parked")[0]["level"] == "ERROR"

    # Lambda's own retry of a drain that carried it may come later: it stays parked.
    stuck = record["requestPayload"]["events"]
    invoke(bridge, {"messenger_bridge_work": 1, "drain": [ALICE], "events": stuck})
    assert bridge.texts_to(ALICE) == ["re: hello", "re: behind"]
    assert bridge.logs.named("event.reposted") == []

    # Once the owner has fixed the token, the record's payload is replayed as it is.
    invoke(bridge, record["requestPayload"])
    assert bridge.texts_to(ALICE) == ["re: hello", "re: behind", "re: stuck"]
    assert bridge.used_today(ALICE) == 3


def invoke(bridge: Bridge, payload: dict[str, Any]) -> None:
    """Invoke the function asynchronously, as the owner (or Lambda) would, and wait."""
    client = boto3.client("lambda", endpoint_url=bridge.invoke.url, region_name="us-east-1")
    client.invoke(FunctionName=FUNCTION, InvocationType="Event", Payload=json.dumps(payload))
    bridge.settle()


def test_a_message_held_by_a_worker_that_died_waits_for_its_lease_and_is_answered(
    bridge: Bridge,
):
    bridge.model.responder = echo
    # A worker claimed the message and died; its lease (whole seconds) has 2 s or so left.
    store = app.runtime().worker.store
    store.claim_event("m_held", datetime.now(UTC) - timedelta(seconds=28), CLAIM_LEASE, "dead")
    bridge.invoke.retry_delay = 3.5  # Lambda's retry comes after the lease ran out
    assert send(bridge, "orphan", mid="m_held") == 200
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["re: orphan"]
    assert len(bridge.logs.named("event.failed")) == 1  # held: not dropped, tried again
    assert bridge.failure_records() == []


def test_a_worker_short_of_time_hands_the_inbox_on(make_bridge):
    # Each message may need 30 s of model time and 10 s to send, more than the 35 s the
    # function has left after its first one: each one is answered by a fresh invocation.
    bridge = make_bridge(OPENAI_TIMEOUT_SECONDS="30")
    bridge.invoke.timeout = 35
    held = HeldModel(bridge)
    send(bridge, "one")
    assert held.asked.wait(10)
    send(bridge, "two")
    send(bridge, "three")
    held.release()
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["re: one", "re: two", "re: three"]
    assert len(bridge.logs.named("inbox.handed_on")) == 2
    assert bridge.failure_records() == []


def test_a_worker_starts_on_another_person_only_if_a_message_fits_in_its_time(make_bridge):
    bridge = make_bridge(OPENAI_TIMEOUT_SECONDS="30")
    bridge.invoke.timeout = 35  # one message may need 40 s: the second person's goes on
    bridge.model.responder = echo
    bob = "1000000000000002"
    events = [
        Inbound(f"m_{psid}", psid, "100", 1_795_000_000_000, "text", f"from {psid}").to_dict()
        for psid in (ALICE, bob)
    ]
    invoke(bridge, {"messenger_bridge_work": 1, "events": events, "replay": 1})
    assert bridge.texts_to(ALICE) == [f"re: from {ALICE}"]
    assert bridge.texts_to(bob) == [f"re: from {bob}"]
    assert [e["psid"] for e in bridge.logs.named("inbox.handed_on")] == [bob]


def test_a_drain_whose_retries_went_on_one_message_hands_the_next_failure_on(
    bridge: Bridge, monkeypatch
):
    """Lambda's retries belong to the invocation, tries to the message: a message that fails
    on the drain's last attempt goes to a fresh invocation, not to the failure queue with
    the messages behind it left waiting."""
    bridge.model.responder = echo
    bridge.say(ALICE, "hello")
    worker = app.runtime().worker
    real_send = worker.messenger.send_text
    failures = {"first": 2, "second": 99}  # the first recovers on its third try

    def send_text(psid: str, text: str) -> int:
        for word, left in failures.items():
            if text == f"re: {word}" and left:
                failures[word] -= 1
                raise SendError("graph_unavailable", False, 503, 2)
        return real_send(psid, text)

    monkeypatch.setattr(worker.messenger, "send_text", send_text)
    items = [messaging_text(ALICE, t) for t in ("first", "second", "third")]
    assert bridge.deliver(webhook_body(*items))["statusCode"] == 200
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["re: hello", "re: first", "re: third"]
    [record] = bridge.failure_records()  # the one that never went through, parked
    assert [e["text"] for e in record["requestPayload"]["events"]] == ["second"]
    assert [e["why"] for e in bridge.logs.named("inbox.handed_on")] == ["retries_used"]
    assert bridge.invoke.failures == []  # no invocation ran out of retries
    assert bridge.used_today(ALICE) == 3
