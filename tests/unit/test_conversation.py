from handler.conversation import build_messages, remember, trim_history


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
