"""The storage layer's contract, against moto, against DynamoDB Local (AWS's own engine) and
against the in-memory fakes the bot's unit tests use, so that they cannot drift apart."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from handler import schema
from handler.claims import ClaimLost, Claims, ClaimState, GuardFailed, Reply
from handler.store import MAX_OUTBOX, Notice, Store, UserDay
from handler.takeover import Pause
from tests.conftest import new_table
from tests.support.fakes import MemoryClaims, MemoryStore
from tests.support.processes import ChildServer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY = "2026-11-25"
ALICE = "1000000000000001"
BOB = "1000000000000002"
FAR = 2_000_000_000  # an expiry far in the future
REPLY = Reply(({"text": "one"}, {"text": "two"}), "q?", "one two")


@dataclass
class Storage:
    store: Any
    claims: Any
    client: Any = None  # the boto3 client, None for the fakes
    table: str = ""

    def counter(self, psid: str, day: str = DAY) -> int:
        return self.store.questions_used(psid, day)


def _dynamodb(url: str) -> Storage:
    client, table = new_table(url)
    return Storage(Store(client, table), Claims(client, table), client, table)


@pytest.fixture(params=["memory", "moto_server", "dynamodb_local"])
def storage(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        store = MemoryStore()
        return Storage(store, MemoryClaims(store))
    return _dynamodb(request.getfixturevalue(request.param).url)


@pytest.fixture(params=["moto_server", "dynamodb_local"])
def dynamodb(request: pytest.FixtureRequest) -> Storage:
    return _dynamodb(request.getfixturevalue(request.param).url)


@pytest.fixture
def atomic(dynamodb_local: ChildServer) -> Storage:
    """For races: moto does not apply concurrent conditional writes atomically (two can both
    pass one condition); DynamoDB Local, AWS's own engine, does, as DynamoDB does."""
    return _dynamodb(dynamodb_local.url)


def claim(
    storage: Storage, owner: str = "a", event: str = "m1", at: int = NOW_MS, lease: int = 60_000
):
    return storage.claims.claim(event, owner, at, at + lease)


# -- claims -----------------------------------------------------------------------------------


def test_an_event_is_claimed_by_one_attempt_until_its_lease_ends(storage: Storage):
    first = claim(storage, "a")
    assert first.state is ClaimState.NEW and first.attempts == 1
    assert claim(storage, "b", at=NOW_MS + 59_000).state is ClaimState.HELD
    later = claim(storage, "b", at=NOW_MS + 61_000)
    assert later.state is ClaimState.RESUMED and later.attempts == 2


def test_a_finished_event_is_never_claimed_again(storage: Storage):
    storage.claims.finish(claim(storage, "a"), "answered")
    assert claim(storage, "b", at=NOW_MS + 10**9).state is ClaimState.DUPLICATE


def test_a_released_attempt_lets_the_next_one_claim_at_once_and_says_why(storage: Storage):
    storage.claims.release(claim(storage, "a"), "send:graph_unavailable")
    again = claim(storage, "b", at=NOW_MS + 1)
    assert again.state is ClaimState.RESUMED
    assert again.last_error == "send:graph_unavailable"


def test_a_recorded_reply_and_its_sent_bubbles_come_back_to_the_next_attempt(storage: Storage):
    first = storage.claims.record(claim(storage, "a"), REPLY)
    storage.claims.record_sent(first, 1)
    storage.claims.release(first, "send:graph_unavailable")
    resumed = claim(storage, "b", at=NOW_MS + 1)
    assert (resumed.reply, resumed.sent) == (REPLY, 1)


def test_a_question_counts_once_with_its_answer_however_often_it_is_recorded(storage: Storage):
    count = storage.store.count_item(ALICE, DAY, FAR)
    first = storage.claims.record(claim(storage, "a"), REPLY, count, DAY)
    assert first.counted == DAY and storage.counter(ALICE) == 1
    storage.claims.release(first, "x")
    second = claim(storage, "b", at=NOW_MS + 1)
    assert second.counted == DAY
    storage.claims.record(second, REPLY, storage.store.count_item(ALICE, DAY, FAR), DAY)
    assert storage.counter(ALICE) == 1


def test_every_change_needs_the_claim(storage: Storage):
    mine = claim(storage, "a")
    storage.claims.release(mine, "gone")
    claim(storage, "b", at=NOW_MS + 1)  # taken over
    count = storage.store.count_item(ALICE, DAY, FAR)
    for change in (
        lambda: storage.claims.record(mine, REPLY),
        lambda: storage.claims.record(mine, REPLY, count, DAY),
        lambda: storage.claims.record_sent(mine, 1),
        lambda: storage.claims.release(mine, "x"),
        lambda: storage.claims.finish(mine, "answered", [storage.store.touch_item(ALICE, NOW)]),
    ):
        with pytest.raises(ClaimLost):
            change()
    assert storage.counter(ALICE) == 0
    assert storage.store.get_user(ALICE) is None  # the finish's other writes did not happen


def test_finishing_writes_the_conversation_and_activity_with_it(storage: Storage):
    turns = [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "a."}]
    writes = [storage.store.touch_item(ALICE, NOW), storage.store.history_item(ALICE, turns, FAR)]
    storage.claims.finish(storage.claims.record(claim(storage), REPLY), "answered", writes)
    assert storage.store.load_history(ALICE) == turns
    assert storage.store.get_user(ALICE).active_at == NOW.isoformat(timespec="seconds")
    item = storage.claims.get("m1")
    assert item is not None and "reply" not in item  # the text is not kept once sent


def test_concurrent_claims_of_one_event_admit_exactly_one(atomic: Storage):
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(lambda n: claim(atomic, f"a{n}").state, range(16)))
    assert states.count(ClaimState.NEW) == 1


def test_a_claim_sent_again_after_its_answer_was_lost_is_still_ours(dynamodb: Storage):
    first = claim(dynamodb, "a")
    again = claim(dynamodb, "a", at=NOW_MS + 5)  # botocore resending the same request
    assert again.state is ClaimState.NEW and again.owner == first.owner


def test_the_event_item_expires_well_after_redeliveries(dynamodb: Storage):
    claim(dynamodb)
    item = dynamodb.claims.get("m1")
    assert int(item[schema.TTL_ATTRIBUTE]["N"]) - NOW_MS // 1000 >= 48 * 3600


# -- the daily counter ------------------------------------------------------------------------


def test_ten_thousand_questions_in_a_day_keep_the_counter_item_small(dynamodb_local: ChildServer):
    storage = _dynamodb(dynamodb_local.url)

    def count(_: int) -> None:  # the counter's part of the answer's transaction, alone
        storage.client.update_item(**storage.store.count_item(ALICE, DAY, FAR)["Update"])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(count, range(10_000)))
    item = storage.client.get_item(TableName=storage.table, Key=schema.counter_key(ALICE, DAY))
    assert storage.counter(ALICE) == 10_000
    assert sorted(item["Item"]) == ["count", schema.TTL_ATTRIBUTE, "pk", "sk"]
    assert len(json.dumps(item["Item"]).encode()) < 1024


# -- users, history, snapshot -----------------------------------------------------------------


def test_a_user_is_created_on_first_sight_only(storage: Storage):
    user, created = storage.store.create_user(ALICE, NOW)
    assert created and user.status == "default"
    storage.store.set_status(ALICE, "unlimited", NOW)
    again, created = storage.store.create_user(ALICE, NOW)
    assert not created and again.status == "unlimited"


def test_one_read_tells_the_worker_who_someone_is(dynamodb: Storage):
    assert dynamodb.store.snapshot(ALICE, DAY).user is None
    dynamodb.store.create_user(ALICE, NOW)
    dynamodb.store.set_limit(ALICE, 7, NOW)
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    dynamodb.client.transact_write_items(
        TransactItems=[
            dynamodb.store.history_item(ALICE, turns, FAR),
            dynamodb.store.count_item(ALICE, DAY, FAR),
        ]
    )
    snapshot = dynamodb.store.snapshot(ALICE, DAY)
    assert (snapshot.user.daily_limit, snapshot.history, snapshot.used_today) == (7, turns, 1)
    assert dynamodb.store.snapshot(BOB, DAY).used_today == 0


def test_status_and_limit_changes_persist(storage: Storage):
    storage.store.create_user(ALICE, NOW)
    storage.store.set_status(ALICE, "blocked", NOW)
    storage.store.set_limit(ALICE, 4, NOW)
    user = storage.store.get_user(ALICE)
    assert (user.status, user.daily_limit) == ("blocked", 4)
    storage.store.set_limit(ALICE, None, NOW)
    assert storage.store.get_user(ALICE).daily_limit is None


def test_an_owner_can_set_a_status_before_the_user_ever_writes(dynamodb: Storage):
    dynamodb.store.set_status(BOB, "unlimited", NOW)
    assert [u.psid for u in dynamodb.store.recent_users()] == [BOB]
    user, created = dynamodb.store.create_user(BOB, NOW)
    assert not created and user.status == "unlimited"


def test_recent_users_are_listed_newest_first(dynamodb: Storage):
    for n, psid in enumerate((ALICE, BOB)):
        dynamodb.store.create_user(psid, NOW)
        dynamodb.client.transact_write_items(
            TransactItems=[dynamodb.store.touch_item(psid, NOW.replace(hour=13 + n))]
        )
    assert [u.psid for u in dynamodb.store.recent_users()] == [BOB, ALICE]


def test_expired_history_is_ignored_though_dynamodb_has_not_deleted_it(dynamodb: Storage):
    turns = [{"role": "user", "content": "q"}]
    dynamodb.client.transact_write_items(
        TransactItems=[dynamodb.store.history_item(ALICE, turns, 1)]
    )
    assert dynamodb.store.load_history(ALICE) == []
    dynamodb.store.clear_history(ALICE)


def test_forgetting_a_user_deletes_all_their_items_and_nobody_elses(storage: Storage):
    for psid in (ALICE, BOB):
        storage.store.create_user(psid, NOW)
        storage.claims.record(
            claim(storage, event=f"e-{psid}"), REPLY, storage.store.count_item(psid, DAY, FAR), DAY
        )
    storage.store.forget_user(ALICE)
    assert storage.store.get_user(ALICE) is None and storage.counter(ALICE) == 0
    assert storage.store.get_user(BOB) is not None and storage.counter(BOB) == 1


# -- tokens, cost and the page's totals -------------------------------------------------------


def usage(storage: Storage, psid: str = ALICE, question: bool = True, tokens: int = 1500):
    return storage.store.usage_items(psid, DAY, FAR, question, tokens, tokens * 1000)


def test_an_answers_tokens_and_cost_are_added_once_with_its_count(storage: Storage):
    first = storage.claims.record(claim(storage, "a"), REPLY, usage(storage), DAY)
    storage.claims.release(first, "send:graph_unavailable")
    again = claim(storage, "b", at=NOW_MS + 1)
    storage.claims.record(again, REPLY, usage(storage), DAY)  # the retry: nothing added
    assert storage.store.day_totals(ALICE, DAY) == UserDay(DAY, 1, 1500, 1_500_000)
    [page] = storage.store.page_month(DAY)
    assert (page.day, page.questions, page.tokens, page.cost_nusd) == (DAY, 1, 1500, 1_500_000)
    snapshot = storage.store.snapshot(ALICE, DAY)
    assert (snapshot.used_today, snapshot.tokens_today) == (1, 1500)
    assert snapshot.page_today.cost_nusd == 1_500_000


def test_a_billed_answer_that_is_no_question_adds_tokens_only(storage: Storage):
    storage.claims.record(claim(storage), REPLY, usage(storage, question=False, tokens=40), DAY)
    assert storage.store.day_totals(ALICE, DAY) == UserDay(DAY, 0, 40, 40_000)
    assert storage.store.snapshot(ALICE, DAY).page_today.questions == 0


def test_failures_are_counted_by_kind_on_the_pages_day(storage: Storage):
    for kind in ("model", "model", "insufficient_quota"):
        storage.store.note_failure(DAY, kind, FAR)
    with pytest.raises(ValueError):
        storage.store.note_failure(DAY, "anything", FAR)
    [page] = storage.store.page_month(DAY)
    assert page.failures == {"model": 2, "insufficient_quota": 1}


def test_a_month_is_read_back_day_by_day_for_the_page_and_a_person(storage: Storage):
    for day in ("2026-10-31", "2026-11-01", DAY):
        items = storage.store.usage_items(ALICE, day, FAR, True, 10, 10)
        storage.claims.record(claim(storage, event=f"e-{day}"), REPLY, items, day)
    assert [d.day for d in storage.store.page_month(DAY)] == ["2026-11-01", DAY]
    assert [d.tokens for d in storage.store.user_month(ALICE, DAY)] == [10, 10]
    assert storage.store.user_month(BOB, DAY) == []


def test_the_summary_is_kept_with_the_conversation(storage: Storage):
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    write = storage.store.history_item(ALICE, turns, FAR, "Alice likes tea.")
    storage.claims.finish(claim(storage), "answered", [write])
    assert storage.store.load_conversation(ALICE) == (turns, "Alice likes tea.")
    assert storage.store.snapshot(ALICE, DAY).summary == "Alice likes tea."
    storage.store.clear_history(ALICE)
    assert storage.store.load_conversation(ALICE) == ([], "")


def test_photos_wait_on_the_conversation_until_it_is_written_without_them(storage: Storage):
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    photos = ("https://cdn.test/1.jpg", "https://cdn.test/2.jpg")
    kept = storage.store.history_item(ALICE, turns, FAR, "s", photos, FAR - 60)
    storage.claims.finish(claim(storage), "photo_kept", [kept])
    snapshot = storage.store.snapshot(ALICE, DAY)
    assert (snapshot.photos, snapshot.photos_until) == (photos, FAR - 60)
    assert (snapshot.history, snapshot.summary) == (turns, "s")
    used = storage.store.history_item(ALICE, turns, FAR, "s")
    storage.claims.finish(claim(storage, event="m2"), "answered", [used])
    assert storage.store.snapshot(ALICE, DAY).photos == ()
    storage.claims.finish(claim(storage, event="m3"), "photo_kept", [kept])
    storage.store.clear_history(ALICE)  # /reset
    assert storage.store.snapshot(ALICE, DAY).photos == ()
    storage.claims.finish(claim(storage, event="m4"), "photo_kept", [kept])
    assert storage.store.forget_user(ALICE) == 1  # /delete
    assert storage.store.snapshot(ALICE, DAY).photos == ()


def test_concurrent_answers_add_up_exactly_on_the_pages_day(atomic: Storage):
    """Every answer's transaction writes the one page item: conflicts are tried again."""
    people = [f"10000000000001{n:02d}" for n in range(12)]

    def answer(psid: str) -> None:
        for n in range(3):
            mine = claim(atomic, psid, event=f"{psid}-{n}")
            atomic.claims.record(mine, REPLY, usage(atomic, psid, tokens=7), DAY)

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(answer, people))
    [page] = atomic.store.page_month(DAY)
    assert (page.questions, page.tokens, page.cost_nusd) == (36, 36 * 7, 36 * 7000)
    assert all(atomic.store.day_totals(p, DAY).questions == 3 for p in people)


# -- owner alerts -----------------------------------------------------------------------------


def test_an_alert_kind_is_taken_once_per_quiet_period(storage: Storage):
    now = NOW_MS // 1000
    assert storage.store.take_alert("insufficient_quota", now, now + 3600)
    assert not storage.store.take_alert("insufficient_quota", now + 10, now + 3610)
    assert storage.store.take_alert("spend_cap", now, now + 3600)  # another kind
    assert storage.store.take_alert("insufficient_quota", now + 3600, now + 7200)


def test_a_notice_about_a_person_is_quiet_per_person_and_forgotten_with_them(storage: Storage):
    now = NOW_MS // 1000
    assert storage.store.take_alert("human", now, now + 1800, psid=ALICE)
    assert not storage.store.take_alert("human", now + 5, now + 1805, psid=ALICE)
    assert storage.store.take_alert("human", now + 5, now + 1805, psid=BOB)
    assert storage.store.take_alert("human", now, now + 1800)  # the page's own: another
    storage.store.forget_user(ALICE)
    assert storage.store.take_alert("human", now + 10, now + 1810, psid=ALICE)
    assert not storage.store.take_alert("human", now + 10, now + 1810, psid=BOB)


def notice(key: str, text: str, at: int, **more: Any) -> Notice:
    return Notice(key, text, at=at, **more)


def test_an_owners_outbox_keeps_the_newest_notice_of_each_key(storage: Storage):
    admin = "1000000000009999"
    storage.store.keep_notice(admin, notice("alert:spend_cap", "first", 100))
    storage.store.keep_notice(admin, notice("alert:spend_cap", "second", 200))
    buttons = (("Allow unlimited", f"ADMIN:unlimited:{ALICE}"), ("Block", f"ADMIN:blocked:{ALICE}"))
    storage.store.keep_notice(
        admin, notice(f"new_user:{ALICE}", "third", 150, title="New user", buttons=buttons)
    )
    outbox = storage.store.snapshot(admin, DAY, outbox=True).outbox
    assert [(n.key, n.text, n.at) for n in outbox] == [
        (f"new_user:{ALICE}", "third", 150),
        ("alert:spend_cap", "second", 200),
    ]
    assert (outbox[0].title, outbox[0].buttons) == ("New user", buttons)
    assert storage.store.snapshot(admin, DAY).outbox == []  # only asked for owners
    storage.store.keep_notice(admin, notice("alert:spend_cap", "newer", 300))  # while delivering
    for kept in outbox:
        storage.store.drop_notice(admin, kept)
    left = storage.store.snapshot(admin, DAY, outbox=True).outbox
    assert [(n.key, n.text) for n in left] == [("alert:spend_cap", "newer")]
    storage.store.forget_user(admin)
    assert storage.store.snapshot(admin, DAY, outbox=True).outbox == []


def test_an_outbox_is_bounded_and_keeps_the_newest(storage: Storage):
    admin = "1000000000009999"
    for n in range(MAX_OUTBOX + 5):
        storage.store.keep_notice(admin, notice(f"new_user:{n}", f"n{n}", 1000 + n))
    kept = storage.store.read_outboxes([admin, ALICE])
    assert [n.text for n in kept[admin]] == [f"n{n}" for n in range(5, MAX_OUTBOX + 5)]
    assert kept[ALICE] == []


def test_a_mailed_notice_is_marked_unless_a_newer_one_replaced_it(storage: Storage):
    admin = "1000000000009999"
    storage.store.keep_notice(admin, notice("alert:page_token", "old", 100))
    storage.store.keep_notice(admin, notice("alert:dead_letter", "x", 100))
    seen = storage.store.read_outboxes([admin])[admin]
    storage.store.keep_notice(admin, notice("alert:page_token", "new", 200))
    for kept in seen:
        storage.store.mark_mailed(admin, kept)
    now = {n.key: n.mailed for n in storage.store.read_outboxes([admin])[admin]}
    assert now == {"alert:page_token": False, "alert:dead_letter": True}


# -- takeover: the bot's pause for one person --------------------------------------------------


def test_a_pause_is_extended_never_shortened_and_says_when_it_started(storage: Storage):
    store = storage.store
    assert store.get_pause(ALICE) is None
    assert store.extend_pause(ALICE, 1_000, "person", 500)  # started
    assert not store.extend_pause(ALICE, 1_600, "human", 700)  # extended
    assert not store.extend_pause(ALICE, 1_200, "human", 800)  # a longer one runs
    assert store.get_pause(ALICE) == Pause(1_600, "human")
    assert store.extend_pause(ALICE, 3_000, "human", 2_000)  # the last one had ended
    assert store.snapshot(ALICE, DAY).pause == Pause(3_000, "human")


@pytest.mark.parametrize("counted", [False, True], ids=["first record", "already counted"])
def test_an_answer_is_recorded_and_counted_only_while_no_pause_runs(
    storage: Storage, counted: bool
):
    store, at = storage.store, int(NOW.timestamp())
    if counted:  # an earlier attempt counted it: the guard alone stands with the record
        storage.claims.release(
            storage.claims.record(
                claim(storage, "a"), REPLY, store.count_item(ALICE, DAY, FAR), DAY
            ),
            "x",
        )
    store.extend_pause(ALICE, at + 60, "human", at)
    mine = claim(storage, "b", at=NOW_MS + 1)
    other = Reply(({"text": "another"},), "q?", "another")
    with pytest.raises(GuardFailed):
        storage.claims.record(
            mine, other, store.count_item(ALICE, DAY, FAR), DAY, store.unpaused_item(ALICE, at)
        )
    assert storage.counter(ALICE) == int(counted)  # nothing of the transaction was written
    storage.claims.release(mine, "paused")
    later = claim(storage, "c", at=NOW_MS + 2)
    assert later.reply == (REPLY if counted else None)  # not ``other``
    # The pause over (by time), the same record goes through.
    done = storage.claims.record(
        later, REPLY, store.count_item(ALICE, DAY, FAR), DAY, store.unpaused_item(ALICE, at + 60)
    )
    assert done.reply == REPLY and storage.counter(ALICE) == 1


def test_an_owners_pause_may_be_shorter_and_ending_it_says_what_there_was(storage: Storage):
    store = storage.store
    store.extend_pause(ALICE, 5_000, "human", 100)
    assert store.set_pause(ALICE, 1_000, "owner") == Pause(5_000, "human")
    assert store.get_pause(ALICE) == Pause(1_000, "owner")
    assert store.end_pause(ALICE) == Pause(1_000, "owner")
    assert store.end_pause(ALICE) is None and store.get_pause(ALICE) is None
    store.set_pause(ALICE, 1_000, "owner")
    store.forget_user(ALICE)
    assert store.get_pause(ALICE) is None


def test_a_persons_own_deletion_keeps_a_running_pause_and_nothing_else(storage: Storage):
    store, at = storage.store, int(NOW.timestamp())
    store.create_user(ALICE, NOW)
    store.extend_pause(ALICE, at + 1800, "human", at)
    assert store.forget_user(ALICE, keep_pause=True, now=at) == 1  # the profile
    assert store.get_user(ALICE) is None and store.get_pause(ALICE) == Pause(at + 1800, "human")
    assert store.forget_user(ALICE, keep_pause=True, now=at + 1800) == 1  # ended: it goes
    assert store.get_pause(ALICE) is None
    store.extend_pause(ALICE, at + 1800, "human", at)
    assert store.forget_user(ALICE, now=at) == 1  # an owner's /forget takes it too


def test_a_new_user_waits_for_a_decision_until_an_owner_makes_one(storage: Storage):
    user, _ = storage.store.create_user(ALICE, NOW)
    assert user.pending and storage.store.get_user(ALICE).pending
    storage.store.set_limit(ALICE, 3, NOW)
    assert not storage.store.get_user(ALICE).pending
    storage.store.create_user(BOB, NOW)
    storage.store.set_status(BOB, "default", NOW)
    assert not storage.store.get_user(BOB).pending
