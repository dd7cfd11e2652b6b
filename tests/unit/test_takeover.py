"""Human takeover's rules: the webhook's pause for a reply by hand, and the worker keeping quiet
(checked when a message starts and again before each bubble), with the store in memory."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest

from handler import replies
from handler.bot import RetryLater
from handler.events import Inbound
from handler.llm import ModelError
from handler.takeover import BY_HUMAN, STARTED, take_over
from tests.support.fakes import MemoryStore
from tests.support.world import (
    ADMIN,
    ALICE,
    BOB,
    NOW,
    World,
    make_world,
    message,
    photo,
    postback,
)

AT = int(NOW.timestamp())


def echo(psid: str, text: str = "by hand") -> Inbound:
    return replace(message(text, psid=psid), kind="echo")


class Pauses:
    """``takeover.Pauses`` over the in-memory store."""

    def __init__(self, store: MemoryStore) -> None:
        self.extend = store.extend_pause


# -- the webhook's part -----------------------------------------------------------------------


def test_a_reply_by_hand_pauses_its_person_and_is_marked_when_it_started_the_pause():
    store = MemoryStore()
    events = [message("q", psid=BOB), echo(ALICE), echo(ALICE, "again")]
    kept = take_over(events, Pauses(store), 30, frozenset({ADMIN}), AT)  # type: ignore[arg-type]
    assert [(e.kind, e.payload) for e in kept] == [("text", ""), ("echo", STARTED), ("echo", "")]
    pause = store.get_pause(ALICE)  # half an hour from the echo's timestamp, a second ago
    assert pause.until == AT - 1 + 1800 and pause.by == BY_HUMAN
    assert store.get_pause(BOB) is None


def test_a_late_redelivery_pauses_from_when_the_page_wrote():
    store = MemoryStore()
    late = replace(echo(ALICE), timestamp=(AT - 600) * 1000)  # written ten minutes ago
    take_over([late], Pauses(store), 30, frozenset(), AT)  # type: ignore[arg-type]
    assert store.get_pause(ALICE).until == AT + 1200


def test_a_reply_by_hand_whose_pause_would_be_over_pauses_nothing():
    store = MemoryStore()
    late = replace(echo(ALICE), timestamp=(AT - 1800) * 1000)  # its half hour ends now
    kept = take_over([late], Pauses(store), 30, frozenset(), AT)  # type: ignore[arg-type]
    assert [(e.kind, e.payload) for e in kept] == [("echo", "")]  # for the conversation only
    assert store.pauses == {}


def test_with_takeover_off_or_to_an_owner_a_reply_by_hand_is_dropped():
    store = MemoryStore()
    pauses = Pauses(store)
    assert take_over([echo(ALICE)], pauses, 0, frozenset(), AT) == []  # type: ignore[arg-type]
    kept = take_over([echo(ADMIN)], pauses, 30, frozenset({ADMIN}), AT)  # type: ignore[arg-type]
    assert kept == [] and store.pauses == {}


# -- the worker's part ------------------------------------------------------------------------


def paused(world: World, psid: str = ALICE, minutes: int = 30) -> None:
    world.store.extend_pause(psid, AT + minutes * 60, BY_HUMAN, AT)


def test_while_paused_every_kind_of_message_is_kept_not_answered_nor_counted():
    world = make_world()
    paused(world)
    world.cdn.host("https://cdn/p.jpg", b"\xff\xd8", "image/jpeg")
    assert world.handle(message("where is my order?")) == "paused"
    assert world.handle(photo("https://cdn/p.jpg", text="this one")) == "paused"
    assert world.handle(replace(message(""), kind="audio", media=(("audio", "u"),))) == "paused"
    assert world.handle(replace(message(""), kind="like")) == "paused"
    assert world.handle(message("/usage")) == "paused"  # a command is no conversation
    assert world.messenger.sent == [] and world.model.asked == [] and world.store.counters == {}
    assert world.cdn.fetched == []
    assert [t["content"] for t in world.store.histories[ALICE]] == [
        "where is my order?",
        "[photo] this one",
        "[voice message]",
    ]


def test_an_owner_is_never_kept_quiet_for():
    world = make_world()
    paused(world, ADMIN)
    assert world.handle(message("hi", psid=ADMIN)) == "answered"


def test_a_takeover_during_a_long_reply_stops_it_before_the_next_bubble():
    world = make_world()
    world.model.default = "First part. " + "x" * 2100  # two bubbles
    world.messenger.before_send = lambda n: paused(world)  # as the first bubble goes out
    assert world.handle(message("tell me everything")) == "paused"
    assert len(world.messenger.texts_to(ALICE)) == 1  # the second bubble was not sent
    assert world.store.histories[ALICE][0] == {"role": "user", "content": "tell me everything"}


def test_a_takeover_while_the_model_thinks_keeps_the_answer_and_the_count():
    world = make_world()
    answered = world.model.__call__

    def slow(messages, deadline):
        paused(world)  # someone of the page writes meanwhile
        return answered(messages, deadline)

    world.bot.ask_model = slow
    assert world.handle(message("q")) == "paused"
    assert world.messenger.texts_to(ALICE) == [] and world.store.counters == {}
    assert world.store.histories[ALICE] == [{"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    ("error", "receive"),
    [
        (ModelError("insufficient_quota"), 1),  # the quota apology
        (ModelError("timeout", retryable=True), 3),  # the last try's apology
        (ModelError("timeout", retryable=True), 1),  # "having trouble, trying again"
    ],
)
def test_no_apology_follows_a_takeover_made_while_the_model_was_asked(
    error: ModelError, receive: int
):
    world = make_world()

    def failing(messages, deadline):
        paused(world)  # someone of the page writes meanwhile
        raise error

    world.bot.ask_model = failing
    with contextlib.suppress(RetryLater):  # a retryable failure goes back to the queue
        world.handle(message("q"), receive=receive, last=receive == 3)
    assert world.messenger.texts_to(ALICE) == [] and world.store.counters == {}


def test_a_paused_person_may_still_delete_their_data():
    world = make_world()
    paused(world)
    assert world.handle(message("/delete")) == "command:delete"
    assert world.messenger.messages_to(ALICE)[-1]["attachment"]["payload"]["buttons"]


def test_a_paused_persons_delete_keeps_the_pause_but_an_ended_one_goes():
    world = make_world()
    paused(world)
    world.handle(postback("DELETE_CONFIRMED", "Delete my data"))
    assert world.texts()[-1] == replies.deleted(1)  # the profile; the pause is no record of them
    assert world.store.get_pause(ALICE).until == AT + 1800
    assert world.handle(message("still there?")) == "paused"  # the page's person answers
    world.store.extend_pause(BOB, AT, BY_HUMAN, AT - 1800)  # over
    world.handle(postback("DELETE_CONFIRMED", "Delete my data", psid=BOB))
    assert world.store.get_pause(BOB) is None


def test_human_with_nobody_to_tell_says_so_and_keeps_answering():
    world = make_world(admin_psids=frozenset())
    assert world.handle(message("/human")) == "command:human"
    assert world.texts() == [replies.HUMAN_NOBODY]
    assert world.store.pauses == {} and world.store.quiet == {}
    assert world.handle(message("anyone?")) == "answered"


def test_human_whose_notice_reached_nobody_says_so_and_keeps_answering():
    world = make_world()  # an owner outside the window, and their outbox cannot be written

    def broken(psid: str, notice: object) -> None:
        raise ConnectionError("DynamoDB is down")

    world.store.keep_notice = broken  # type: ignore[method-assign]
    assert world.handle(message("/human")) == "command:human"
    assert world.texts() == [replies.HUMAN_NOBODY] and world.store.pauses == {}


def test_human_pauses_once_and_tells_the_owners_once_per_half_hour():
    world = make_world()
    world.store.create_user(ADMIN, NOW)
    assert world.handle(message("/human")) == "command:human"
    assert world.texts() == [replies.human_asked(30)]
    assert world.store.get_pause(ALICE).by == "person"
    notice = world.messenger.messages_to(ADMIN)[-1]["attachment"]["payload"]
    assert notice["text"].startswith(f"{ALICE} asked to talk to a person")
    world.store.end_pause(ALICE)  # the owner let the bot answer; the person asks again
    assert world.handle(message("/human")) == "command:human"
    assert len(world.messenger.messages_to(ADMIN)) == 1  # told already, half an hour ago


def test_an_owners_human_is_pointed_to_pause():
    world = make_world()
    assert world.handle(message("/human", psid=ADMIN)) == "command:human"
    assert world.messenger.texts_to(ADMIN) == [replies.HUMAN_FROM_OWNER]
    assert world.store.pauses == {}


def test_users_shows_at_most_ten_cards_of_who_waits_for_a_decision():
    world = make_world()
    for n in range(12):  # and ALICE, who wrote before
        world.store.create_user(str(1000000000000100 + n), NOW)
    world.handle(message("/users", psid=ADMIN))
    text, cards = world.messenger.messages_to(ADMIN)
    assert text["text"].endswith("13 people are waiting for your decision (the 10 newest below).")
    assert len(cards["attachment"]["payload"]["elements"]) == 10
