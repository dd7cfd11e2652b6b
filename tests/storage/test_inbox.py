"""Inboxes against moto and against DynamoDB Local: order, idempotent posts, one drainer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handler.events import Inbound
from handler.inbox import Inbox, in_order
from handler.store import Store
from tests.conftest import new_table
from tests.support.processes import ChildServer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
ALICE = "1000000000000001"
BOB = "1000000000000002"
SENT = 1_795_000_000_000


@pytest.fixture(params=["moto_server", "dynamodb_local"])
def table(request: pytest.FixtureRequest) -> tuple[Any, str]:
    server = request.getfixturevalue(request.param)
    return new_table(server.url)


@pytest.fixture
def inbox(table: tuple[Any, str]) -> Inbox:
    return Inbox(*table)


@pytest.fixture
def atomic_inbox(dynamodb_local: ChildServer) -> Inbox:
    """For races: only DynamoDB Local applies concurrent conditional writes atomically."""
    return Inbox(*new_table(dynamodb_local.url))


def message(n: int, psid: str = ALICE, sent: int | None = None) -> Inbound:
    return Inbound(
        f"m_{psid}_{n}", psid, "100", SENT + n if sent is None else sent, "text", f"#{n}"
    )


def drain_all(inbox: Inbox, psid: str) -> list[Inbound]:
    taken = []
    while (entry := inbox.next(psid)) is not None:
        taken.append(entry.event)
        inbox.remove(entry)
    return taken


def test_messages_come_out_in_the_order_they_were_sent_not_posted(inbox: Inbox):
    inbox.post([message(3), message(1, BOB)])
    inbox.post([message(1), message(2)])
    assert [e.event_id for e in drain_all(inbox, ALICE)] == [f"m_{ALICE}_{n}" for n in (1, 2, 3)]
    assert [e.event_id for e in drain_all(inbox, BOB)] == [f"m_{BOB}_1"]


def test_one_deliverys_messages_of_the_same_millisecond_keep_their_place(inbox: Inbox):
    batch = in_order([message(n, sent=SENT) for n in (5, 1, 9, 2)])
    inbox.post(batch)
    assert [e.text for e in drain_all(inbox, ALICE)] == ["#5", "#1", "#9", "#2"]


def test_a_huge_delivery_is_posted_whole_in_batches(inbox: Inbox):
    inbox.post([message(n) for n in range(60)] + [message(7)])  # a repeat in the same body
    assert [e.text for e in drain_all(inbox, ALICE)] == [f"#{n}" for n in range(60)]


def test_posting_an_event_again_adds_no_second_entry(inbox: Inbox):
    assert not inbox.waiting(message(1))
    inbox.post([message(1)])
    inbox.post([message(1)])
    assert inbox.waiting(message(1)) and not inbox.waiting(message(2))
    assert len(drain_all(inbox, ALICE)) == 1
    assert not inbox.waiting(message(1))


def test_tries_are_counted_until_the_message_is_removed(inbox: Inbox):
    inbox.post([message(1)])
    entry = inbox.next(ALICE)
    assert entry is not None and entry.tries == 0
    assert inbox.start(entry) == 1 and inbox.start(entry) == 2
    assert inbox.next(ALICE).tries == 2
    inbox.remove(entry)
    assert inbox.start(entry) is None  # gone: nothing to try


def test_failed_attempts_are_counted_per_invocation_and_are_not_messages(inbox: Inbox):
    assert [inbox.note_failure(ALICE, "req-1") for _ in range(3)] == [1, 2, 3]
    assert inbox.note_failure(ALICE, "req-2") == 1
    assert inbox.note_failure(BOB, "req-1") == 1
    assert inbox.next(ALICE) is None


def test_one_worker_at_a_time_drains_an_inbox(atomic_inbox: Inbox):
    inbox = atomic_inbox
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda n: inbox.lock(ALICE, f"w{n}", NOW, LEASE), range(16)))
    assert won.count(True) == 1
    assert inbox.lock(BOB, "w0", NOW, LEASE)  # another person's inbox is free


def test_the_holder_renews_and_releases_and_no_one_else_can(inbox: Inbox):
    assert inbox.lock(ALICE, "a", NOW, LEASE)
    assert inbox.renew(ALICE, "a", NOW + LEASE * 3)
    assert not inbox.renew(ALICE, "b", NOW + LEASE * 9)
    assert not inbox.lock(ALICE, "b", NOW + LEASE * 2, LEASE)  # renewed: still held
    inbox.unlock(ALICE, "b")  # not b's to release
    assert not inbox.lock(ALICE, "b", NOW, LEASE)
    inbox.unlock(ALICE, "a")
    assert inbox.lock(ALICE, "b", NOW, LEASE)


def test_renewing_the_lease_also_moves_the_expiry_of_its_item(inbox: Inbox, table: tuple[Any, str]):
    client, name = table
    key = {"pk": {"S": f"INBOX#{ALICE}"}, "sk": {"S": "LOCK"}}

    def expiry() -> int:
        return int(client.get_item(TableName=name, Key=key)["Item"]["expires_at"]["N"])

    inbox.lock(ALICE, "a", NOW, LEASE)
    assert expiry() > (NOW + LEASE).timestamp()  # TTL never deletes a lease in use
    inbox.renew(ALICE, "a", NOW + timedelta(hours=5))
    assert expiry() > (NOW + timedelta(hours=5)).timestamp()


def test_a_lease_that_ran_out_is_taken_over(inbox: Inbox):
    assert inbox.lock(ALICE, "died", NOW, LEASE)
    assert not inbox.lock(ALICE, "next", NOW + LEASE / 2, LEASE)
    assert inbox.lock(ALICE, "next", NOW + LEASE * 2, LEASE)
    assert not inbox.renew(ALICE, "died", NOW + LEASE * 5)


def test_a_lock_put_sent_again_after_a_lost_answer_is_still_ours(inbox: Inbox):
    assert inbox.lock(ALICE, "a", NOW, LEASE)
    assert inbox.lock(ALICE, "a", NOW, LEASE)
    assert not inbox.lock(ALICE, "b", NOW, LEASE)


def test_the_lease_is_not_a_message(inbox: Inbox):
    inbox.lock(ALICE, "a", NOW, LEASE)
    assert inbox.next(ALICE) is None


def test_forgetting_a_person_deletes_their_waiting_messages_and_lease(
    inbox: Inbox, table: tuple[Any, str]
):
    store = Store(*table)
    inbox.post([message(n) for n in range(3)] + [message(1, BOB)])
    inbox.lock(ALICE, "a", NOW, LEASE)
    store.touch_user(ALICE, NOW)
    assert store.forget_user(ALICE) == 5
    assert inbox.next(ALICE) is None and inbox.lock(ALICE, "b", NOW, LEASE)
    assert inbox.next(BOB) is not None
