"""Pure: the prompt for one question, from the system prompt, the summary of the older turns
and the remembered turns.

When the conversation outgrows ``historyTurns``/``historyMaxChars``, its older turns are not
dropped but summarised (one cheap model call, which the bot makes): the summary rides along
as a system message and is capped, so the prompt stays bounded however long people talk.
Half of each budget is kept verbatim then, so the next few questions fit without another
summary.
"""

from __future__ import annotations

from typing import Any

from .text import last_whole_sentence

Turn = dict[str, str]
Message = dict[str, Any]

SUMMARY_MAX_CHARS = 1200
SUMMARY_PROMPT = (
    "You keep the memory of a chat between a person and an assistant. Write a short summary "
    "of the conversation below for the assistant to continue from: who the person is and "
    "what they want, facts they gave, what was answered, what is still open. At most 120 "
    "words, plain text, in the language of the conversation. Write only the summary."
)
SUMMARY_INTRO = "Summary of the earlier conversation: "


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


def split_history(
    history: list[Turn], max_turns: int, max_chars: int
) -> tuple[list[Turn], list[Turn]]:
    """(older, kept): nothing older while everything fits both budgets; otherwise the newest
    exchanges that fit half of each are kept and the rest is for the summary."""
    if max_turns <= 0 or max_chars <= 0:
        return [], []
    kept = trim_history(history, max_turns, max_chars)
    if len(kept) == len(history):
        return [], kept
    kept = trim_history(history, max(1, max_turns // 2), max_chars // 2)
    return history[: len(history) - len(kept)], kept


def summary_request(previous: str, older: list[Turn]) -> list[Message]:
    """The messages that ask the model to fold ``older`` turns into the ``previous`` summary."""
    lines = [
        f"{'Person' if turn['role'] == 'user' else 'Assistant'}: {turn['content']}"
        for turn in older
    ]
    earlier = f"Summary so far: {previous}\n\n" if previous else ""
    return [
        {"role": "system", "content": SUMMARY_PROMPT},
        {"role": "user", "content": earlier + "Conversation:\n" + "\n".join(lines)},
    ]


def clip_summary(text: str, limit: int = SUMMARY_MAX_CHARS) -> str:
    """The summary within its cap, ending on a whole sentence when one fits."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return last_whole_sentence(text[:limit]) or text[:limit].rstrip()


def build_messages(
    system_prompt: str, history: list[Turn], question: str | list[Message], summary: str = ""
) -> list[Message]:
    """The request: system prompt, summary, remembered turns, then the question (text, or
    typed parts: the person's text and their photos)."""
    return [
        {"role": "system", "content": system_prompt},
        *([{"role": "system", "content": SUMMARY_INTRO + summary}] if summary else []),
        *history,
        {"role": "user", "content": question},
    ]


# The most a stored conversation holds, whatever happens between answers (a long exchange
# with a person of the page while the bot keeps quiet): well under DynamoDB's 400 KB item.
STORED_MAX_CHARS = 50_000


def keep_latest(turns: list[Turn], max_chars: int = STORED_MAX_CHARS) -> list[Turn]:
    """The newest turns that fit ``max_chars`` (the newest always): what is stored between
    answers; the next answer summarises what its budget cannot take."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        size = len(turn["content"])
        if kept and used + size > max_chars:
            break
        kept.insert(0, turn)
        used += size
    return kept


def remember(
    history: list[Turn], question: str, answer: str, max_turns: int, max_chars: int
) -> list[Turn]:
    updated = [
        *history,
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    return trim_history(updated, max_turns, max_chars)


# -- answers cut at the token cap -------------------------------------------------------------

CONTINUE_PROMPT = (
    "Your answer was cut off. Continue exactly where it stopped, without repeating anything."
)
_SENTENCE_PUNCTUATION = ".!?:;,\u2026"


def continuation_request(messages: list[Message], partial: str) -> list[Message]:
    """Ask for the rest of a cut answer: the partial answer as the assistant's turn."""
    return [
        *messages,
        {"role": "assistant", "content": partial},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]


def join_continuation(partial: str, more: str) -> str:
    """The partial answer and its continuation as one text: the model continues mid-word or
    with its own space, but may drop the space after a sentence."""
    if not partial or not more:
        return partial + more
    if partial[-1].isspace() or more[0].isspace():
        return partial + more
    if partial[-1] in _SENTENCE_PUNCTUATION and more[0].isalnum():
        return f"{partial} {more}"
    return partial + more
