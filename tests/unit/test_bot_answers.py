"""Whole answers and long conversations: a cut answer is continued or ended on a whole
sentence with a note, never torn; older turns are summarised, not dropped."""

from __future__ import annotations

from dataclasses import replace

import pytest

from handler import replies
from handler.bot import text_reply
from handler.claims import Reply
from handler.conversation import CONTINUE_PROMPT, SUMMARY_INTRO, SUMMARY_MAX_CHARS
from handler.llm import Completion, Usage
from tests.support.fakes import model_error
from tests.support.world import ALICE, DAY, World, attempt, make_world, message


@pytest.fixture
def world() -> World:
    return make_world()


def used(tokens_in: int, tokens_out: int) -> tuple[Usage, ...]:
    return (Usage("gpt-5-mini", tokens_in, 0, tokens_out),)


# -- cut at the token cap ----------------------------------------------------------------------


def test_a_cut_answer_is_continued_once_and_joined_when_there_is_time(world: World):
    world.model.script = [
        Completion("The first half of the answer, and the sec", "length", used(100, 2000)),
        Completion("ond half. Done.", "stop", used(2100, 10)),
    ]
    assert world.handle(message("Tell me everything.")) == "answered"
    assert world.texts() == ["The first half of the answer, and the second half. Done."]
    first, second = world.model.asked
    assert second[:-2] == first
    assert second[-2] == {
        "role": "assistant",
        "content": "The first half of the answer, and the sec",
    }
    assert second[-1] == {"role": "user", "content": CONTINUE_PROMPT}
    assert world.store.counters == {(ALICE, DAY): 1}  # one question, two calls
    assert world.store.spent[(ALICE, DAY)][0] == 100 + 2000 + 2100 + 10
    assert world.store.histories[ALICE][-1]["content"].endswith("second half. Done.")


def test_an_answer_still_cut_ends_on_a_whole_sentence_with_a_note_and_a_continue_button(
    world: World,
):
    world.model.script = [
        Completion("One whole sentence. Another one", "length"),
        Completion(" that goes on. And a torn thou", "length"),
    ]
    assert world.handle(message("Tell me everything.")) == "shortened"
    answer, note = world.messenger.messages_to(ALICE)
    assert answer == {"text": "One whole sentence. Another one that goes on."}
    assert note["text"] == replies.SHORTENED_NOTE
    assert note["quick_replies"] == [
        {"content_type": "text", "title": "Continue", "payload": "ASK:Please continue."}
    ]
    assert world.store.counters == {(ALICE, DAY): 1}
    remembered = world.store.histories[ALICE][-1]["content"]
    assert remembered == "One whole sentence. Another one that goes on."


def test_without_time_for_another_call_a_cut_answer_is_shortened_at_once(world: World):
    world.model.script = [Completion("A first sentence. A second one is cut mid", "length")]
    short = attempt(seconds=25)  # 15 s for the model once the send reserve is kept back
    assert world.bot.handle(message("q"), short) == "shortened"
    assert len(world.model.asked) == 1
    assert world.texts() == ["A first sentence.", replies.SHORTENED_NOTE]


def test_a_continuation_that_fails_leaves_the_shortened_answer(world: World):
    world.model.script = [
        Completion("It starts well. Then it", "length"),
        model_error("status_503", True),
    ]
    assert world.handle(message("q")) == "shortened"
    assert world.texts() == ["It starts well.", replies.SHORTENED_NOTE]
    assert world.store.counters == {(ALICE, DAY): 1}


def test_tapping_continue_asks_for_the_rest_with_the_shortened_answer_remembered(world: World):
    world.model.script = [
        Completion("Part one. Part tw", "length"),
        Completion("o is cut", "length"),
        "Part two, whole.",
    ]
    world.handle(message("Tell me everything."))
    note = world.messenger.messages_to(ALICE)[-1]
    quick = note["quick_replies"][0]
    tap = replace(message(quick["title"]), kind="quick_reply", payload=quick["payload"])
    assert world.handle(tap) == "answered"
    asked = world.model.asked[-1]
    assert asked[-1] == {"role": "user", "content": "Please continue."}
    assert asked[-2] == {"role": "assistant", "content": "Part one."}


def test_an_empty_answer_cut_for_length_gets_the_note_with_continue_and_is_counted(
    world: World,
):
    """A reasoning model that spent the whole cap thinking: billed, so counted, and the person
    can go on with Continue, which asks again after the question."""
    world.model.script = [Completion("", "length", used(50, 2000)), "The real answer."]
    assert world.handle(message("A hard question")) == "shortened"
    [note] = world.messenger.messages_to(ALICE)
    assert note["text"] == replies.CUT_BEFORE_ANSWER
    assert note["quick_replies"] == [
        {"content_type": "text", "title": "Continue", "payload": "ASK:Please continue."}
    ]
    assert world.store.counters == {(ALICE, DAY): 1}
    assert world.store.spent[(ALICE, DAY)][0] == 2050
    assert len(world.model.asked) == 1  # nothing to continue from
    tap = replace(
        message("Continue"), kind="quick_reply", payload=note["quick_replies"][0]["payload"]
    )
    assert world.handle(tap) == "answered"
    asked = world.model.asked[-1]
    assert asked[-3:] == [
        {"role": "user", "content": "A hard question"},
        {"role": "assistant", "content": replies.CUT_MARK},
        {"role": "user", "content": "Please continue."},
    ]


@pytest.mark.parametrize("partial", ["", "It starts like this. And then"])
def test_an_answer_the_providers_filter_stopped_says_so_and_is_never_whole(
    world: World, partial: str
):
    world.model.script = [Completion(partial, "content_filter", used(50, 20))]
    assert world.handle(message("q")) == "filtered"
    if partial:
        assert world.texts() == ["It starts like this.", replies.FILTERED_NOTE]
    else:
        assert world.texts() == [replies.FILTERED]
    assert world.store.counters == {(ALICE, DAY): 1}  # billed: an answer, if not a whole one
    assert all(m.get("quick_replies") is None for m in world.messenger.messages_to(ALICE))


def test_an_empty_answer_for_no_given_reason_is_not_called_cut(world: World):
    world.model.script = [Completion("", "stop", used(50, 0))]
    assert world.handle(message("q")) == "empty_answer"
    assert world.texts() == [replies.EMPTY_ANSWER] and "cut" not in replies.EMPTY_ANSWER


def test_a_recorded_shortened_answer_round_trips_with_its_button():
    reply = Reply((*text_reply("Short.").messages, replies.continue_button()), "q", "Short.")
    assert Reply.from_json(reply.to_json()) == reply


# -- long conversations ------------------------------------------------------------------------


def talk(world: World, n: int) -> None:
    for i in range(n):
        world.model.script.append(f"answer {i}")
        world.handle(message(f"question {i}"))


def test_older_turns_are_summarised_once_the_history_outgrows_its_budget_and_it_is_kept():
    world = make_world(daily_limit=100, history_turns=4)
    talk(world, 5)  # the fifth exchange is stored beyond the budget: nothing summarised yet
    assert len(world.store.histories[ALICE]) == 10 and ALICE not in world.store.summaries
    assert len(world.model.asked) == 5
    world.model.script = [
        Completion("Alice asked five questions.", "stop", used(300, 40)),
        Completion("answer 5", "stop", used(200, 5)),
    ]
    world.handle(message("question 5"))
    summarise, answer = world.model.asked[-2:]
    folded = summarise[-1]["content"]
    assert all(f"question {n}" in folded for n in (0, 1, 2))
    assert "question 3" not in folded  # half the budget stays verbatim
    assert answer[1] == {"role": "system", "content": SUMMARY_INTRO + "Alice asked five questions."}
    assert [t["content"] for t in answer[2:]] == [
        "question 3",
        "answer 3",
        "question 4",
        "answer 4",
        "question 5",
    ]
    assert world.store.summaries[ALICE] == "Alice asked five questions."
    assert [t["content"] for t in world.store.histories[ALICE]][::2] == [
        "question 3",
        "question 4",
        "question 5",
    ]
    assert world.store.counters[(ALICE, DAY)] == 6  # the summary is no question
    assert world.store.spent[(ALICE, DAY)][0] == 300 + 40 + 200 + 5  # but it is billed


def test_the_next_questions_fit_without_another_summary():
    world = make_world(daily_limit=100, history_turns=4)
    talk(world, 6)  # the sixth question summarised the first three exchanges
    asked = len(world.model.asked)
    talk(world, 2)
    assert len(world.model.asked) == asked + 2  # no summary call for these two
    assert world.model.asked[-1][1]["content"].startswith(SUMMARY_INTRO)


def test_the_summary_is_capped():
    world = make_world(daily_limit=100, history_turns=2)
    talk(world, 3)
    world.model.script = ["Long. " * 1000, "ok"]
    world.handle(message("next"))
    assert 0 < len(world.store.summaries[ALICE]) <= SUMMARY_MAX_CHARS


def test_a_summary_that_fails_lets_the_older_turns_go_and_the_answer_still_comes():
    world = make_world(daily_limit=100, history_turns=2)
    talk(world, 3)
    world.model.script = [model_error("status_500", True), "fine"]
    assert world.handle(message("next")) == "answered"
    assert world.texts()[-1] == "fine"
    assert ALICE not in world.store.summaries
    assert [t["content"] for t in world.model.asked[-1][1:]] == ["question 2", "answer 2", "next"]


def test_reset_forgets_the_summary_too():
    world = make_world(daily_limit=100, history_turns=2)
    talk(world, 4)
    assert ALICE in world.store.summaries
    world.handle(message("/reset"))
    assert ALICE not in world.store.summaries and ALICE not in world.store.histories
