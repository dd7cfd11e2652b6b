"""The webhook's hand-off to the FIFO queue: groups, deduplication ids, batches, failures."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from handler.events import Inbound
from handler.handoff import (
    MAX_BATCH_BYTES,
    Handoff,
    HandoffError,
    batches,
    body,
    dedupe_id,
    entries,
)

ALICE, BOB = "1000000000000001", "1000000000000002"
# What SQS accepts in a message body (the XML 1.0 character set), written as code points.
SQS_BODY_RANGES = ((0x9, 0x9), (0xA, 0xA), (0xD, 0xD), (0x20, 0xD7FF), (0xE000, 0xFFFD),
                   (0x10000, 0x10FFFF))  # fmt: skip
# What SQS accepts as a MessageDeduplicationId: 1 to 128 of these characters.
DEDUPE_ALPHABET = re.compile(r"^[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}$")


def event(psid: str, n: int, text: str = "hi", timestamp: int | None = None) -> Inbound:
    return Inbound(
        f"m_{psid}_{n}", psid, "page", 1_800_000_000_000 + n if timestamp is None else timestamp,
        "text", text,
    )  # fmt: skip


class FakeSqs:
    def __init__(self, fail: set[str] | None = None, error: Exception | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self._fail = fail or set()
        self._error = error

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict:
        if self._error is not None:
            raise self._error
        self.calls.append(Entries)
        failed = [e for e in Entries if json.loads(e["MessageBody"])["text"] in self._fail]
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in failed],
            "Failed": [
                {"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in failed
            ],
        }


def test_each_person_is_a_message_group_and_each_event_its_own_dedupe_id():
    made = entries([event(ALICE, 1), event(BOB, 2), event(ALICE, 3)])
    assert [e["MessageGroupId"] for e in made] == [ALICE, BOB, ALICE]
    assert [e["MessageDeduplicationId"] for e in made] == [
        hashlib.sha256(f"m_{p}_{n}".encode()).hexdigest()
        for p, n in ((ALICE, 1), (BOB, 2), (ALICE, 3))
    ]
    assert Inbound.from_dict(json.loads(made[0]["MessageBody"])) == event(ALICE, 1)


def test_any_event_id_makes_a_dedupe_id_sqs_accepts():
    for raw in ("m_" + "x" * 500, "m_é😀\ufffd", "h_" + "0" * 40, " "):
        assert DEDUPE_ALPHABET.match(dedupe_id(replace(event(ALICE, 1), event_id=raw)))


@given(st.text(st.characters(exclude_categories=()), max_size=50))
@example("noncharacters \ufffe\uffff, a lone \ud800, NUL \x00, BEL \x07, DEL \x7f")
def test_any_text_makes_a_body_sqs_accepts_and_arrives_whole(text: str):
    made = body(event(ALICE, 1, text))
    assert all(any(lo <= ord(c) <= hi for lo, hi in SQS_BODY_RANGES) for c in made)
    assert json.loads(made)["text"] == text


def test_a_delivery_is_queued_in_the_order_it_was_sent_and_repeats_once():
    late, early = event(ALICE, 1, "second", 2000), event(ALICE, 2, "first", 1000)
    made = entries([late, early, late])
    assert [json.loads(e["MessageBody"])["text"] for e in made] == ["first", "second"]
    assert [e["Id"] for e in made] == ["0", "1"]
    unknown = [event(ALICE, 1, "b", 0), event(ALICE, 2, "a", 5)]
    assert [json.loads(e["MessageBody"])["text"] for e in entries(unknown)] == ["b", "a"]


def test_calls_hold_at_most_ten_entries_and_stay_under_the_size_limit():
    many = entries([event(ALICE, n) for n in range(23)])
    assert [len(b) for b in batches(many)] == [10, 10, 3]
    big = entries([event(ALICE, n, "x" * 19_000) for n in range(25)])
    for batch in batches(big):
        assert sum(len(e["MessageBody"].encode()) for e in batch) <= MAX_BATCH_BYTES
    assert sum(len(b) for b in batches(big)) == 25


def test_every_event_reaches_the_queue_in_order():
    sqs = FakeSqs()
    assert Handoff(sqs, "https://queue").enqueue([event(ALICE, n) for n in range(12)]) == 12
    sent = [json.loads(e["MessageBody"])["event_id"] for call in sqs.calls for e in call]
    assert sent == [f"m_{ALICE}_{n}" for n in range(12)]


@pytest.mark.parametrize(
    "sqs", [FakeSqs(fail={"bad"}), FakeSqs(error=ConnectionError("down"))], ids=["refused", "down"]
)
def test_anything_not_queued_is_an_error_so_facebook_delivers_again(sqs: FakeSqs):
    with pytest.raises(HandoffError):
        Handoff(sqs, "https://queue").enqueue([event(ALICE, 1), event(BOB, 2, "bad")])


def test_without_a_queue_nothing_is_pretended():
    with pytest.raises(HandoffError, match="QUEUE_URL"):
        Handoff(FakeSqs(), None).enqueue([event(ALICE, 1)])


# -- a photo and the text typed with it ------------------------------------------------------


def photo(psid: str, n: int, timestamp: int, text: str = "") -> Inbound:
    return Inbound(
        f"m_{psid}_{n}", psid, "page", timestamp, "image", text,
        media=(("image", f"https://cdn.test/{n}.jpg"),),
    )  # fmt: skip


def bodies(made: list[dict[str, Any]]) -> list[Inbound]:
    return [Inbound.from_dict(json.loads(e["MessageBody"])) for e in made]


def test_a_photo_and_the_text_sent_after_it_are_one_question():
    start = 1_800_000_000_000
    made = bodies(entries([photo(ALICE, 1, start), event(ALICE, 2, "what is this?", start + 900)]))
    assert [(e.event_id, e.kind, e.text, e.media) for e in made] == [
        ("m_1000000000000001_1", "image", "what is this?", (("image", "https://cdn.test/1.jpg"),))
    ]


def test_a_photo_stays_alone_when_the_text_is_late_someone_elses_or_already_captioned():
    """In the hand-off only: the worker keeps a photo that came alone waiting for the person's
    next message (``events.PHOTO_WAIT_SECONDS``; ``tests/unit/test_bot_media.py``), so a late
    text is still asked with it, as one question."""
    start = 1_800_000_000_000
    late = [photo(ALICE, 1, start), event(ALICE, 2, "later", start + 61_000)]
    other = [photo(ALICE, 1, start), event(BOB, 2, "mine", start + 1)]
    captioned = [photo(ALICE, 1, start, "caption"), event(ALICE, 2, "more", start + 1)]
    text_first = [event(ALICE, 2, "look:", start), photo(ALICE, 1, start + 1)]
    for delivery in (late, other, captioned, text_first):
        assert len(entries(delivery)) == 2


def test_a_repeated_photo_does_not_swallow_its_text():
    start = 1_800_000_000_000
    delivery = [photo(ALICE, 1, start), photo(ALICE, 1, start), event(ALICE, 2, "?", start + 5)]
    [merged] = bodies(entries(delivery))
    assert merged.text == "?"
