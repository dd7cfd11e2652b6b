"""Pure: the prompt for one question, from the system prompt and the remembered turns."""

from __future__ import annotations

Turn = dict[str, str]


def trim_history(history: list[Turn], max_turns: int, max_chars: int) -> list[Turn]:
    """The newest whole exchanges that fit both budgets (a turn is a question and its answer)."""
    if max_turns <= 0 or max_chars <= 0:
        return []
    kept: list[Turn] = []
    used = 0
    exchanges = 0
    i = len(history)
    while i > 0 and exchanges < max_turns:
        start = i - 2 if i >= 2 and history[i - 2]["role"] == "user" else i - 1
        block = history[start:i]
        size = sum(len(t["content"]) for t in block)
        if used + size > max_chars:
            break
        kept[:0] = block
        used += size
        exchanges += 1
        i = start
    return kept


def build_messages(system_prompt: str, history: list[Turn], question: str) -> list[Turn]:
    return [
        {"role": "system", "content": system_prompt},
        *history,
        {"role": "user", "content": question},
    ]


def remember(
    history: list[Turn], question: str, answer: str, max_turns: int, max_chars: int
) -> list[Turn]:
    updated = [
        *history,
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    return trim_history(updated, max_turns, max_chars)
