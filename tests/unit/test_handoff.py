"""The webhook's hand-off to the FIFO queue: groups, deduplication ids, batches, failures."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from typing import Any

import pytest

from handler.events import Inbound
from handler.handoff import MAX_BATCH_BYTES, Handoff, HandoffError, batches, dedupe_id, entries

ALICE, BOB = "1000000000000001", "1000000000000002"
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
