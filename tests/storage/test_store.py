"""The storage layer against moto and against DynamoDB Local, AWS's own engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from handler.store import ClaimState, Store
from tests.conftest import new_table
from tests.support.processes import ChildServer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)
ALICE = "1000000000000001"
BOB = "1000000000000002"
FAR = 2_000_000_000  # an expiry far in the future


@pytest.fixture(params=["moto_server", "dynamodb_local"])
def store(request: pytest.FixtureRequest) -> Store:
    server = request.getfixturevalue(request.param)
    client, table = new_table(server.url)
    return Store(client, table)


@pytest.fixture
def atomic_store(dynamodb_local: ChildServer) -> Store:
    """For races: moto does not apply concurrent conditional writes atomically (two can both
    pass one condition); DynamoDB Local, AWS's own engine, does, as DynamoDB does."""
    client, table = new_table(dynamodb_local.url)
    return Store(client, table)


def test_an_event_is_claimed_once(store: Store):
    assert store.claim_event("m1", NOW, LEASE, "a").state is ClaimState.NEW
    assert store.claim_event("m1", NOW, LEASE, "b").state is ClaimState.HELD
    store.mark_event("m1", "done")
    assert store.claim_event("m1", NOW, LEASE, "b").state is ClaimState.DUPLICATE


def test_concurrent_claims_of_one_event_admit_exactly_one(atomic_store: Store):
    store = atomic_store
    with ThreadPoolExecutor(8) as pool:
        states = list(
            pool.map(lambda n: store.claim_event("m2", NOW, LEASE, f"a{n}").state, range(16))
        )
    assert states.count(ClaimState.NEW) == 1


def test_a_claim_whose_lease_ran_out_is_retaken_with_what_it_counted(store: Store):
    store.claim_event("m3", NOW, LEASE, "a")
    store.note_counted("m3", "2026-11-25")
    assert store.claim_event("m3", NOW + LEASE / 2, LEASE, "b").state is ClaimState.HELD
    later = store.claim_event("m3", NOW + LEASE * 2, LEASE, "a")
    assert later.state is ClaimState.RETAKEN
    assert later.counted_day == "2026-11-25"


def test_a_claim_put_sent_again_after_a_lost_answer_is_still_ours(store: Store):
    assert store.claim_event("m6", NOW, LEASE, "attempt-1").state is ClaimState.NEW
    assert store.claim_event("m6", NOW, LEASE, "attempt-1").state is ClaimState.NEW
    store.mark_event("m6", "done")
    assert store.claim_event("m6", NOW, LEASE, "attempt-1").state is ClaimState.DUPLICATE


def test_an_event_is_answered_once_its_reply_is_on_its_way(store: Store):
    assert not store.answered("m9")
    store.claim_event("m9", NOW, LEASE, "a")
    assert not store.answered("m9")  # being worked on: a failure would give it back
    store.mark_event("m9", "replying")
    assert store.answered("m9")
    store.mark_event("m9", "done")
    assert store.answered("m9")


def test_the_holder_renews_its_claim_and_only_the_holder_can(store: Store):
    store.claim_event("m5", NOW, LEASE, "attempt-1")
    assert store.renew_claim("m5", "attempt-1", NOW + LEASE * 3)
    assert not store.renew_claim("m5", "attempt-2", NOW + LEASE * 9)
    assert store.claim_event("m5", NOW + LEASE * 2, LEASE, "x").state is ClaimState.HELD
    assert store.claim_event("m5", NOW + LEASE * 4, LEASE, "x").state is ClaimState.RETAKEN
    assert not store.renew_claim("m5", "attempt-1", NOW + LEASE * 9)  # it lost the claim


def test_replying_and_done_events_are_never_retaken(store: Store):
    for state in ("replying", "done"):
        event = f"m-{state}"
        store.claim_event(event, NOW, LEASE, "a")
        store.mark_event(event, state)
        assert (
            store.claim_event(event, NOW + timedelta(days=1), LEASE, "a").state
            is ClaimState.DUPLICATE
        )


def test_a_released_event_can_be_claimed_again(store: Store):
    store.claim_event("m4", NOW, LEASE, "a")
    store.release_event("m4")
    assert store.claim_event("m4", NOW, LEASE, "a").state is ClaimState.NEW


def test_a_user_is_created_on_first_sight_only(store: Store):
    user, created = store.touch_user(ALICE, NOW)
    assert created and user.status == "default" and user.first_seen == NOW.isoformat()
    again, created_again = store.touch_user(ALICE, NOW + timedelta(seconds=1))
    assert not created_again
    assert again.first_seen == NOW.isoformat()
    assert again.active_at == (NOW + timedelta(seconds=1)).isoformat()


def test_status_and_limit_changes_persist(store: Store):
    store.touch_user(ALICE, NOW)
    assert store.set_status(ALICE, "blocked", NOW).status == "blocked"
    assert store.touch_user(ALICE, NOW)[0].status == "blocked"
    assert store.set_limit(ALICE, 3, NOW).daily_limit == 3
    assert store.set_limit(ALICE, None, NOW).daily_limit is None
    with pytest.raises(ValueError):
        store.set_status(ALICE, "royalty", NOW)


def test_an_owner_can_set_a_status_before_the_user_ever_writes(store: Store):
    user = store.set_status(BOB, "unlimited", NOW)
    assert user.status == "unlimited"
    _, created = store.touch_user(BOB, NOW)
    assert not created  # the owner already knows this user


def test_the_daily_counter_stops_at_the_limit(store: Store):
    taken = [store.take_question(ALICE, "2026-11-25", 3, FAR, f"m{n}") for n in range(5)]
    assert taken == [True, True, True, False, False]
    assert store.questions_used(ALICE, "2026-11-25") == 3
    assert store.take_question(ALICE, "2026-11-26", 3, FAR, "m9")


def test_one_event_is_counted_once_however_often_its_write_is_sent(store: Store):
    assert store.take_question(ALICE, "2026-11-25", 3, FAR, "m1")
    assert store.take_question(ALICE, "2026-11-25", 3, FAR, "m1")  # a resent write
    assert store.questions_used(ALICE, "2026-11-25") == 1
    for n in (2, 3):
        store.take_question(ALICE, "2026-11-25", 3, FAR, f"m{n}")
    assert store.take_question(ALICE, "2026-11-25", 3, FAR, "m3")  # counted, even at the limit
    assert not store.take_question(ALICE, "2026-11-25", 3, FAR, "m4")


def test_concurrent_questions_never_exceed_the_limit(atomic_store: Store):
    store = atomic_store
    with ThreadPoolExecutor(8) as pool:
        taken = list(
            pool.map(lambda n: store.take_question(BOB, "2026-11-25", 5, FAR, f"m{n}"), range(20))
        )
    assert taken.count(True) == 5
    assert store.questions_used(BOB, "2026-11-25") == 5


def test_a_zero_limit_allows_nothing_and_unlimited_still_counts(store: Store):
    assert not store.take_question(ALICE, "2026-11-25", 0, FAR, "m1")
    assert store.questions_used(ALICE, "2026-11-25") == 0
    assert all(store.take_question(BOB, "2026-11-25", None, FAR, f"m{n}") for n in range(12))
    assert store.questions_used(BOB, "2026-11-25") == 12


def test_a_question_given_back_is_available_again_and_never_below_zero(store: Store):
    store.take_question(ALICE, "2026-11-25", 1, FAR, "m1")
    store.give_back_question(ALICE, "2026-11-25", "m1")
    store.give_back_question(ALICE, "2026-11-25", "m1")
    store.give_back_question(ALICE, "2026-11-25", "m-never-counted")
    assert store.questions_used(ALICE, "2026-11-25") == 0
    assert store.take_question(ALICE, "2026-11-25", 1, FAR, "m2")


def test_recent_users_are_listed_newest_first(store: Store):
    store.touch_user(ALICE, NOW)
    store.touch_user(BOB, NOW + timedelta(minutes=1))
    assert [u.psid for u in store.recent_users()] == [BOB, ALICE]


def test_history_round_trips_and_expired_history_is_ignored(store: Store):
    turns = [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "hi"}]
    store.save_history(ALICE, turns, int((datetime.now(UTC) + timedelta(hours=1)).timestamp()))
    assert store.load_history(ALICE) == turns
    store.save_history(BOB, turns, int((datetime.now(UTC) - timedelta(hours=1)).timestamp()))
    assert store.load_history(BOB) == []
    store.clear_history(ALICE)
    assert store.load_history(ALICE) == []


def test_forgetting_a_user_deletes_all_their_items_and_nobody_elses(store: Store):
    store.touch_user(ALICE, NOW)
    store.take_question(ALICE, "2026-11-25", 5, FAR, "m1")
    store.save_history(ALICE, [], 2_000_000_000)
    store.touch_user(BOB, NOW)
    assert store.forget_user(ALICE) == 3
    assert store.get_user(ALICE) is None
    assert store.get_user(BOB) is not None
    assert store.forget_user(ALICE) == 0
