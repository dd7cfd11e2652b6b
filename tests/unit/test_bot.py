"""The conversation rules, with the store, claims, messenger and model in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from handler import replies
from handler.bot import RetryLater, text_reply
from handler.claims import Reply
from handler.llm import Completion
from tests.support.fakes import model_error, send_error
from tests.support.world import (
    ADMIN,
    ALICE,
    BOB,
    DAY,
    NOW,
    NOW_MS,
    World,
    attempt,
    make_world,
    message,
    postback,
)


class ContainerDied(BaseException):
    """Lambda ending the process: no ``except Exception`` sees it."""


@pytest.fixture
def world() -> World:
    return make_world()


# -- questions -------------------------------------------------------------------------------


def test_a_question_is_answered_counted_once_and_remembered(world: World):
    assert world.handle(message("What is it?")) == "answered"
    assert world.texts() == ["The answer is 42."]
    assert world.store.counters == {(ALICE, DAY): 1}
    assert [t["content"] for t in world.store.histories[ALICE]] == [
        "What is it?",
        "The answer is 42.",
    ]
    assert world.messenger.sent[0].action == "mark_seen"  # seen, typing, then the answer


def test_the_next_question_sees_the_exchange_before_it(world: World):
    world.handle(message("one"))
    world.handle(message("two"))
    assert [m["content"] for m in world.model.asked[1][1:]] == ["one", "The answer is 42.", "two"]


def test_over_the_limit_is_told_and_the_model_is_not_asked(world: World):
    for n in range(3):
        world.handle(message(f"q{n}"))
    assert world.handle(message("one more")) == "over_limit"
    assert len(world.model.asked) == 3
    assert world.texts()[-1].startswith("You've used your 3 questions for today.")
    assert world.store.counters[(ALICE, DAY)] == 3


def test_owners_have_no_limit(world: World):
    for n in range(5):
        assert world.handle(message(f"q{n}", psid=ADMIN)) == "answered"


def test_commands_are_answered_and_never_counted(world: World):
    assert world.handle(message("/usage")) == "command:usage"
    assert world.texts() == [
        "Today you've asked 0 of 3 questions; 3 left. Tokens today: 0 of 50,000; 50,000 left. "
        "The count resets in 12 h 0 min (00:00 UTC)."
    ]
    assert world.store.counters == {}
    assert world.model.asked == []


def test_a_blocked_person_gets_nothing(world: World):
    world.store.set_status(ALICE, "blocked", NOW)
    assert world.handle(message("hello?")) == "blocked"
    assert world.messenger.sent == [] and world.model.asked == []


def test_a_new_person_is_announced_to_the_owner_once_even_when_their_message_is_retried(
    world: World,
):
    world.store.create_user(ADMIN, NOW)  # the owner wrote just now: inside the window
    first = message("hi", psid=BOB)
    world.model.script = [model_error("timeout", True)]
    with pytest.raises(RetryLater):
        world.handle(first)
    assert world.handle(first, receive=2) == "answered"
    world.handle(message("and again", psid=BOB))
    notices = world.messenger.messages_to(ADMIN)
    assert len(notices) == 1
    assert notices[0]["attachment"]["payload"]["text"].startswith(f"New user {BOB}")


def test_a_video_or_a_file_gets_a_polite_note_of_what_the_bot_takes(world: World):
    event = replace(message(""), kind="attachments")
    assert world.handle(event) == "attachments"
    assert world.texts() == [replies.media_unsupported(vision=True)]
    assert world.store.counters == {} and world.model.asked == []


def test_every_tap_is_answered_a_known_one_runs_its_command(world: World):
    assert world.handle(postback("HELP", "Help")) == "command:help"
    assert world.texts() == [replies.USER_HELP]


def test_a_tap_the_bot_does_not_know_is_asked_as_what_the_person_saw(world: World):
    world.store.set_status(ALICE, "unlimited", NOW)
    assert world.handle(postback("SOMETHING_ELSE", "Opening hours?")) == "answered"
    ice_breaker = postback("ICE_BREAKER", "What can you do?")
    assert world.handle(ice_breaker) == "answered"
    bare = replace(message("", psid=ALICE), kind="quick_reply", payload="Is it open on Sunday")
    assert world.handle(bare) == "answered"  # a quick reply with no text: its payload
    ask = replace(message("What can y…"), kind="quick_reply", payload="ASK:What can you do for me?")
    assert world.handle(ask) == "answered"  # ours carries its whole question
    asked = [m[-1]["content"] for m in world.model.asked]
    assert asked == [
        "Opening hours?",
        "What can you do?",
        "Is it open on Sunday",
        "What can you do for me?",
    ]
    assert world.store.counters == {(ALICE, DAY): 4}


def test_a_tap_with_nothing_to_ask_is_let_go(world: World):
    assert world.handle(postback("", "")) == "ignored"
    assert world.messenger.sent == []


def test_get_started_is_welcomed_plainly_as_an_automated_assistant_and_never_counted(
    world: World,
):
    world.bot.settings = replace(world.bot.settings, ice_breakers=("What can you do?",))
    assert world.handle(postback("GET_STARTED", "Get Started")) == "command:start"
    [welcome] = world.messenger.messages_to(ALICE)
    assert "automated assistant" in welcome["text"] and "not a person" in welcome["text"]
    assert "3 questions a day" in welcome["text"] and "/help" in welcome["text"]
    assert welcome["quick_replies"] == [
        {"content_type": "text", "title": "What can you do?", "payload": "ASK:What can you do?"}
    ]
    assert world.store.counters == {} and world.model.asked == []


def test_the_owners_welcome_replaces_the_built_in_one(world: World):
    world.bot.settings = replace(world.bot.settings, welcome_message="Bonjour ! Je suis un robot.")
    world.handle(postback("GET_STARTED", "Get Started"))
    assert world.texts() == ["Bonjour ! Je suis un robot."]


def test_where_a_new_person_came_from_is_kept_and_told_to_the_owner(world: World):
    world.store.create_user(ADMIN, NOW)
    first = replace(
        postback("GET_STARTED", "Get Started", psid=BOB), ref_source="SHORTLINK", ref="spring"
    )
    world.handle(first)
    assert (world.store.users[BOB].ref_source, world.store.users[BOB].ref) == (
        "SHORTLINK",
        "spring",
    )
    [notice] = world.messenger.messages_to(ADMIN)
    assert "Came from shortlink (ref spring)" in notice["attachment"]["payload"]["text"]


def test_a_referral_alone_is_noted_on_the_record_not_answered(world: World):
    link = replace(message(""), kind="referral", ref_source="ADS", ref="ad-42")
    assert world.handle(link) == "referral"
    assert world.messenger.sent == []
    assert (world.store.users[ALICE].ref_source, world.store.users[ALICE].ref) == ("ADS", "ad-42")


# -- a new person who did not tap Get Started -------------------------------------------------
# With ice breakers set, a real page shows no Get Started button (ice breakers take
# precedence), and anyone may type first: the welcome comes with their first answer.

QUESTIONS = ("What can you do?",)


def welcome_of(world: World, limit: int = 3) -> dict:
    return replies.welcome(
        None, limit, world.bot.settings.ice_breakers, photos=world.bot.settings.vision, voice=True
    )


def test_a_new_persons_first_question_gets_the_welcome_first_then_the_answer(world: World):
    world.bot.settings = replace(world.bot.settings, ice_breakers=QUESTIONS)
    assert world.handle(message("What is it?", psid=BOB)) == "answered"
    welcome, answer = world.messenger.messages_to(BOB)
    assert welcome == welcome_of(world)  # Get Started's, quick replies included
    assert "automated assistant" in welcome["text"] and "3 questions a day" in welcome["text"]
    assert answer == {"text": "The answer is 42."}
    assert world.store.counters == {(BOB, DAY): 1}  # the question, not the welcome
    assert world.handle(message("And then?", psid=BOB)) == "answered"
    assert world.texts(BOB)[2:] == ["The answer is 42."]  # once, not again


def test_a_new_persons_ice_breaker_tap_is_welcomed_then_asked(world: World):
    world.bot.settings = replace(world.bot.settings, ice_breakers=QUESTIONS)
    assert world.handle(postback("ICE_BREAKER", "What can you do?", psid=BOB)) == "answered"
    assert world.texts(BOB) == [welcome_of(world)["text"], "The answer is 42."]
    assert world.model.asked[0][-1]["content"] == "What can you do?"


def test_a_new_persons_get_started_gets_one_welcome_not_two(world: World):
    assert world.handle(postback("GET_STARTED", "Get Started", psid=BOB)) == "command:start"
    assert world.texts(BOB) == [welcome_of(world)["text"]]


def test_the_welcome_before_an_answer_is_not_sent_again_when_the_event_is_retried(world: World):
    first = message("hi", psid=BOB)
    world.model.script = [model_error("timeout", True)]
    with pytest.raises(RetryLater):
        world.handle(first)
    assert world.handle(first, receive=2) == "answered"
    texts = world.texts(BOB)
    assert texts == [welcome_of(world)["text"], replies.MODEL_TROUBLE, "The answer is 42."]


def test_a_welcome_that_cannot_be_sent_does_not_cost_the_answer(world: World):
    world.messenger.fail(send_error("rate_limited"))
    assert world.handle(message("hi", psid=BOB)) == "answered"
    assert world.texts(BOB) == ["The answer is 42."]


def test_a_new_persons_command_and_referral_are_welcomed_too(world: World):
    assert world.handle(message("/usage", psid=BOB)) == "command:usage"
    assert world.texts(BOB)[0] == welcome_of(world)["text"] and len(world.texts(BOB)) == 2
    carol = "1000000000000003"
    link = replace(message("", psid=carol), kind="referral", ref_source="SHORTLINK", ref="x")
    assert world.handle(link) == "referral"  # the chat opened from a link: greeted, no answer
    assert world.texts(carol) == [welcome_of(world)["text"]]


def test_an_owners_first_message_gets_no_welcome(world: World):
    """The owners set the bot up: a welcome telling them what it is would be noise."""
    assert world.handle(message("/help", psid=ADMIN)) == "command:help"
    assert world.texts(ADMIN) == [replies.USER_HELP + replies.ADMIN_HELP]


def test_a_new_person_someone_of_the_page_is_answering_gets_no_welcome(world: World):
    world.store.set_pause(BOB, int(NOW.timestamp()) + 600, "owner")
    assert world.handle(message("hello?", psid=BOB)) == "paused"
    assert world.texts(BOB) == []


def test_the_welcome_says_what_the_bot_can_take(world: World):
    world.handle(message("hi", psid=BOB))
    assert "You can also send me a photo or a voice message." in world.texts(BOB)[0]
    world.bot.settings = replace(world.bot.settings, vision=False)
    world.handle(postback("GET_STARTED", "Get Started"))
    assert "You can also send me a voice message." in world.texts()[-1]
    world.bot.transcribe = None
    world.handle(postback("GET_STARTED", "Get Started"))
    assert "send me" not in world.texts()[-1]


def test_a_person_deletes_their_own_data_after_confirming(world: World):
    world.handle(message("remember me"))
    assert world.handle(message("/delete")) == "command:delete"
    buttons = world.messenger.messages_to(ALICE)[-1]["attachment"]["payload"]["buttons"]
    assert [b["payload"] for b in buttons] == ["DELETE_CONFIRMED", "DELETE_CANCELLED"]
    assert ALICE in world.store.users  # nothing yet
    assert (
        world.handle(postback("DELETE_CONFIRMED", "Delete my data")) == "command:delete_confirmed"
    )
    assert world.texts()[-1].startswith("Deleted: 3 records")
    assert ALICE not in world.store.users and ALICE not in world.store.histories
    assert world.store.counters == {}  # finishing the event wrote nothing back


# -- the model -------------------------------------------------------------------------------


def test_a_model_that_may_recover_is_tried_later_and_the_person_is_told_once(world: World):
    event = message("q")
    world.model.script = [model_error("timeout", True), model_error("status_503", True, 7.0)]
    with pytest.raises(RetryLater) as first:
        world.handle(event, receive=1)
    with pytest.raises(RetryLater) as second:
        world.handle(event, receive=2)
    assert (first.value.reason, second.value.after) == ("model:timeout", 7.0)
    assert world.texts() == [replies.MODEL_TROUBLE]
    assert world.store.counters == {}  # nothing billed, nothing counted
    assert world.claims.get(event.event_id)["last_error"] == "model:status_503"
    assert world.handle(event, receive=3) == "answered"
    assert world.texts() == [replies.MODEL_TROUBLE, "The answer is 42."]
    assert world.store.counters == {(ALICE, DAY): 1}


def test_on_the_last_receive_a_failing_model_ends_in_an_apology_not_the_dead_letter_queue(
    world: World,
):
    world.model.script = [model_error("timeout", True)]
    assert world.handle(message("q"), receive=5, last=True) == "model_failed"
    assert world.texts() == [replies.APOLOGY]
    assert world.store.counters == {}


def test_a_billing_problem_is_apologised_for_at_once(world: World):
    world.model.script = [model_error("insufficient_quota", False)]
    assert world.handle(message("q")) == "insufficient_quota"
    assert world.texts() == [replies.QUOTA_APOLOGY]
    assert world.store.counters == {}


def test_an_empty_answer_was_paid_for_so_it_counts_and_the_person_is_told_why(world: World):
    world.model.script = [Completion("", "stop")]
    assert world.handle(message("q")) == "empty_answer"
    assert world.texts() == [replies.EMPTY_ANSWER]
    assert world.store.counters == {(ALICE, DAY): 1}
    assert ALICE not in world.store.histories  # nothing was said to remember


# -- sending, retries and resuming -----------------------------------------------------------


def test_after_a_send_failure_the_retry_sends_the_recorded_answer_without_asking_again(
    world: World,
):
    event = message("q")
    world.messenger.fail(send_error("graph_unavailable"))
    with pytest.raises(RetryLater, match="send:graph_unavailable"):
        world.handle(event)
    assert world.store.counters == {(ALICE, DAY): 1}  # answered by the model: billed
    assert world.handle(event, receive=2) == "answered"
    assert world.texts() == ["The answer is 42."]
    assert len(world.model.asked) == 1
    assert world.store.counters == {(ALICE, DAY): 1}
    assert world.claims.get(event.event_id).get("reply") is None  # not kept once sent


def test_a_kill_mid_answer_resumes_with_the_bubbles_not_yet_confirmed(world: World):
    long_answer = "\n\n".join(f"Part {n}. " + "word " * 380 for n in range(1, 4))
    world.model.script = [long_answer]
    event = message("long please")

    def die_after_two(index: int) -> None:
        if index == 4:  # mark_seen, typing_on, bubble 1, bubble 2 were sent
            raise ContainerDied()

    world.messenger.before_send = die_after_two
    with pytest.raises(ContainerDied):
        world.handle(event)
    world.messenger.before_send = None
    assert [t[:6] for t in world.texts()] == ["Part 1", "Part 2"]
    # Lambda ended the invocation: its lease has run out when the message comes back.
    later = replace(attempt(receive=2), lease_until_ms=NOW_MS + 120_000)
    world.claims.items[event.event_id]["lease_until"] = NOW_MS - 1
    assert world.bot.handle(event, later) == "answered"
    assert [t[:6] for t in world.texts()] == ["Part 1", "Part 2", "Part 3"]
    assert len(world.model.asked) == 1 and world.store.counters == {(ALICE, DAY): 1}


def test_a_bubble_that_may_have_arrived_is_not_sent_again(world: World):
    world.messenger.fail(send_error("no_answer:ReadTimeout"), delivered=True)
    assert world.handle(message("q")) == "answered"
    assert world.texts() == ["The answer is 42."]


def test_a_person_who_cannot_be_reached_ends_the_event(world: World):
    event = message("q")
    world.messenger.fail(send_error("person_unavailable"))
    assert world.handle(event) == "unreachable"
    assert world.state(event) == "done"
    assert world.store.counters == {(ALICE, DAY): 1}  # the model answered: it was paid for


def test_an_invalid_page_token_is_retried_for_the_owner_to_fix(world: World):
    world.messenger.fail(send_error("page_token_invalid"), actions=True)
    with pytest.raises(RetryLater, match="page_token_invalid"):
        world.handle(message("q"))
    assert world.model.asked == []


def test_a_worker_that_lost_its_claim_sends_nothing(world: World):
    event = message("q")

    def someone_else_took_it(messages: list, deadline: float) -> Completion:
        world.claims.items[event.event_id]["owner"] = "another attempt"
        return Completion("late answer", "stop")

    world.bot.ask_model = someone_else_took_it
    assert world.handle(event) == "claim_lost"
    assert world.texts() == [] and world.store.counters == {}


def test_no_bubble_is_sent_once_the_lease_is_ending(world: World):
    ending = replace(attempt(), lease_until_ms=NOW_MS + 500)
    with pytest.raises(RetryLater, match="lease ending"):
        world.bot.handle(message("q"), ending)
    assert world.texts() == []


def test_a_finished_event_is_not_answered_again_and_a_held_one_waits(world: World):
    event = message("q")
    world.handle(event)
    assert world.handle(event) == "duplicate"
    held = message("other")
    world.claims.claim(held.event_id, "alive", NOW_MS, NOW_MS + 60_000)
    with pytest.raises(RetryLater, match="held") as waiting:
        world.handle(held)
    assert waiting.value.after == 60.0  # not before the holder's lease runs out
    assert world.texts() == ["The answer is 42."]


def test_an_event_older_than_the_messaging_window_is_dropped(world: World):
    stale = replace(message("q"), timestamp=NOW_MS - 25 * 3600 * 1000)
    assert world.handle(stale) == "stale"
    assert world.messenger.sent == [] and world.claims.items == {}


def test_an_event_with_no_time_is_judged_by_when_it_was_queued(world: World):
    event = replace(message("q"), timestamp=0)
    old = replace(attempt(), queued_ms=NOW_MS - 25 * 3600 * 1000)
    assert world.bot.handle(event, old) == "stale"
    assert world.handle(event) == "answered"


def test_a_recorded_reply_round_trips_through_json():
    reply = Reply(({"text": "a"}, {"text": "b"}), "q", "ab")
    assert Reply.from_json(reply.to_json()) == reply


def test_a_recorded_answer_is_stored_once_and_its_bubbles_derived_again():
    answer = "A long answer. " * 300  # three bubbles
    reply = text_reply(answer, "q", answer)
    raw = reply.to_json()
    assert raw.count("A long answer.") == 300  # not twice: the bubbles are not stored
    assert Reply.from_json(raw) == reply
    note = text_reply(replies.EMPTY_ANSWER, "q", "")  # bubbles that are not the answer's
    assert Reply.from_json(note.to_json()) == note


@pytest.mark.parametrize(("minutes_ago", "written"), [(5, False), (15, True)])
def test_the_users_activity_is_written_only_when_it_has_gone_stale(
    world: World, minutes_ago: int, written: bool
):
    before = (NOW - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")
    world.store.users[ALICE] = replace(world.store.users[ALICE], active_at=before)
    world.handle(message("q"))
    after = world.store.users[ALICE].active_at
    assert (after != before) is written
