"""Splitting long answers into Messenger-sized bubbles, at the most natural boundary."""

from __future__ import annotations

import re
from typing import Any

MESSENGER_TEXT_LIMIT = 2000
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*\s+")
_SPACE = re.compile(r"\s+")


def _cut(text: str, limit: int) -> int:
    """Where to end the next chunk: after a paragraph, else a sentence, else a word."""
    window = text[: limit + 1]
    paragraph = window.rfind("\n\n", 0, limit)
    if paragraph > 0:
        return paragraph
    sentence_ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= limit]
    if sentence_ends:
        return sentence_ends[-1]
    spaces = [m.start() for m in _SPACE.finditer(window) if 0 < m.start() <= limit]
    if spaces:
        return spaces[-1]
    return limit


def split_message(text: str, limit: int = MESSENGER_TEXT_LIMIT) -> list[str]:
    """Chunks of at most ``limit`` characters that together keep every word, in order."""
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    chunks: list[str] = []
    while len(text) > limit:
        at = _cut(text, limit)
        chunk = text[:at].rstrip()
        if chunk:
            chunks.append(chunk)
        text = text[at:].lstrip()
    if text:
        chunks.append(text)
    return chunks


def bubbles(text: str) -> tuple[dict[str, Any], ...]:
    """Send API text messages for ``text``, in order; never none (a blank gets an ellipsis)."""
    return tuple({"text": chunk} for chunk in split_message(text) or ["\u2026"])


def last_whole_sentence(text: str) -> str:
    """``text`` up to the end of its last whole sentence (its last line break if it has no
    sentence end, else its last whole word): where a cut-off answer is best ended."""
    text = text.rstrip()
    ends = [m.end() for m in _SENTENCE_END.finditer(text + " ")]
    if ends and ends[-1] > 0:
        return text[: ends[-1]].rstrip()
    line = text.rfind("\n")
    if line > 0:
        return text[:line].rstrip()
    space = text.rfind(" ")
    return text[:space].rstrip() if space > 0 else text
