import pytest

from handler.conversation import (
    SUMMARY_INTRO,
    build_messages,
    clip_summary,
    continuation_request,
    join_continuation,
    remember,
    split_history,
    summary_request,
    trim_history,
)


def exchange(n: int, size: int = 10) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"q{n}".ljust(size, ".")},
        {"role": "assistant", "content": f"a{n}".ljust(size, ".")},
    ]


HISTORY = exchange(1) + exchange(2) + exchange(3)


def test_the_newest_turns_are_kept():
    assert trim_history(HISTORY, max_turns=2, max_chars=1000) == exchange(2) + exchange(3)


def test_the_character_budget_drops_the_oldest_first():
    assert trim_history(HISTORY, max_turns=10, max_chars=45) == exchange(2) + exchange(3)
    assert trim_history(HISTORY, max_turns=10, max_chars=25) == exchange(3)


def test_zero_turns_is_stateless():
    assert trim_history(HISTORY, 0, 1000) == []


def test_the_system_prompt_always_goes_first_and_the_question_last():
    messages = build_messages("Be kind.", exchange(1), "new?")
    assert messages[0] == {"role": "system", "content": "Be kind."}
    assert messages[-1] == {"role": "user", "content": "new?"}
    assert messages[1:3] == exchange(1)


def test_remember_appends_the_exchange_within_budget():
    kept = remember(exchange(1), "q2", "a2", max_turns=1, max_chars=100)
    assert kept == [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]


# -- summaries and continued answers ---------------------------------------------------------


def test_a_history_that_fits_is_kept_whole_with_nothing_to_summarise():
    assert split_history(HISTORY, max_turns=3, max_chars=1000) == ([], HISTORY)
    assert split_history(HISTORY, max_turns=0, max_chars=1000) == ([], [])


def test_a_history_that_outgrows_its_budget_keeps_half_and_summarises_the_rest():
    history = HISTORY + exchange(4) + exchange(5)
    older, kept = split_history(history, max_turns=4, max_chars=1000)
    assert kept == exchange(4) + exchange(5)
    assert older == HISTORY
    older, kept = split_history(history, max_turns=10, max_chars=70)  # 100 chars stored
    assert kept == exchange(5) and older == HISTORY + exchange(4)


def test_the_summary_request_carries_the_old_summary_and_the_turns_as_a_transcript():
    request = summary_request("Alice likes tea.", exchange(1))
    assert request[0]["role"] == "system" and "summary" in request[0]["content"].lower()
    assert request[1]["content"] == (
        "Summary so far: Alice likes tea.\n\nConversation:\nPerson: q1........\n"
        "Assistant: a1........"
    )


def test_the_summary_goes_after_the_system_prompt():
    messages = build_messages("Be kind.", exchange(1), "new?", summary="Alice likes tea.")
    assert messages[1] == {"role": "system", "content": SUMMARY_INTRO + "Alice likes tea."}
    assert messages[2:4] == exchange(1)


def test_a_summary_is_clipped_at_a_sentence():
    assert clip_summary("One. Two. Three.", limit=10) == "One. Two."
    assert clip_summary("  spaced\n out  ") == "spaced out"


def test_a_continuation_asks_with_the_partial_answer_as_the_assistants_turn():
    asked = continuation_request([{"role": "user", "content": "q"}], "partial")
    assert [m["role"] for m in asked] == ["user", "assistant", "user"]
    assert asked[1]["content"] == "partial"


@pytest.mark.parametrize(
    ("partial", "more", "joined"),
    [
        ("The quick bro", "wn fox.", "The quick brown fox."),
        ("The quick ", "brown fox.", "The quick brown fox."),
        ("The end.", "Next sentence.", "The end. Next sentence."),
        ("A list:", "\n- one", "A list:\n- one"),
        ("Nothing", "", "Nothing"),
    ],
)
def test_a_continuation_is_joined_without_losing_or_adding_words(
    partial: str, more: str, joined: str
):
    assert join_continuation(partial, more) == joined
