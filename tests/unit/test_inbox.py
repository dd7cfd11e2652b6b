"""The inbox's order: by when the person sent a message, the same key for the same event."""

import json
from datetime import UTC, datetime

import pytest

from handler.dispatch import drain_request, payloads
from handler.events import Inbound, WorkRequest, classify, work_request
from handler.failures import parked_record
from handler.inbox import Inbox, InboxError, in_order, message_sort_key, order_of

PSID = "1000000000000001"


def inbound(event_id: str, timestamp: int, text: str = "hi") -> Inbound:
    return Inbound(event_id, PSID, "100", timestamp, "text", text)


def test_messages_sort_by_the_time_they_were_sent_whatever_their_ids():
    sent = [inbound("m_zzz", 1_700_000_000_001), inbound("m_aaa", 1_700_000_000_002)]
    keys = [message_sort_key(e, arrived_ms=1_800_000_000_000) for e in sent]
    assert sorted(keys) == keys
    assert message_sort_key(inbound("x", 9), 0) < message_sort_key(inbound("y", 10), 0)


def test_a_redelivered_event_gets_the_same_key_whenever_it_arrives():
    event = inbound("m_once", 1_700_000_000_000)
    assert message_sort_key(event, 1) == message_sort_key(event, 2)
    assert message_sort_key(event, 1) != message_sort_key(inbound("m_other", event.timestamp), 1)


def test_a_missing_or_absurd_timestamp_falls_back_to_arrival():
    assert order_of(inbound("m", 0), arrived_ms=1234) == 1234
    assert order_of(inbound("m", -5), arrived_ms=1234) == 1234
    assert order_of(inbound("m", 10**20), arrived_ms=1234) == 1234


def test_keys_stay_short_whatever_the_event_id():
    key = message_sort_key(inbound("\u0436" * 5000 + "\ud800", 1), 0)
    assert len(key.encode()) < 64


def test_a_drain_request_names_one_person_and_the_events_it_was_started_for():
    event = inbound("m_new", 5)
    request = drain_request(PSID, [event])
    assert classify(request) == "work"
    assert work_request(request) == WorkRequest([PSID], [event], replay=False)


def test_a_parked_messages_record_is_a_replay_of_it():
    event = inbound("m_replay", 5)
    record = parked_record(event, 3, "SendError", datetime(2026, 11, 25, tzinfo=UTC))
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert work_request(record["requestPayload"]) == WorkRequest([], [event], replay=True)


def test_events_without_a_usable_timestamp_are_ordered_by_arrival_for_good():
    fine, missing = inbound("m_fine", 1_700_000_000_000), inbound("m_missing", 0)
    assert in_order([fine, missing], arrived_ms=1_800_000_000_000) == [
        fine,
        Inbound("m_missing", PSID, "100", 1_800_000_000_000, "text", "hi"),
    ]


def test_a_persons_events_of_one_millisecond_keep_their_place_in_the_delivery():
    other = "1000000000000002"
    same_ms = [
        Inbound(f"m_{c}", psid, "100", 1_700_000_000_000, "text", c)
        for c, psid in zip("zyxw", [PSID, other, PSID, PSID], strict=True)
    ]
    ordered = in_order(same_ms, arrived_ms=0)
    assert [e.seq for e in ordered] == [0, 0, 1, 2]
    mine = [e for e in ordered if e.psid == PSID]
    keys = [message_sort_key(e, 0) for e in mine]
    assert sorted(keys) == keys
    assert in_order(same_ms, arrived_ms=5) == ordered  # a redelivery: the same keys


def test_a_small_batch_is_one_drain_request_in_order():
    events = [inbound(f"m{n}", n) for n in range(5)]
    [payload] = list(payloads(PSID, events))
    request = json.loads(payload)
    assert request["drain"] == [PSID]
    assert [e["event_id"] for e in request["events"]] == [f"m{n}" for n in range(5)]


def test_a_large_batch_is_split_under_the_budget_keeping_order():
    events = [inbound(f"m{n}", n, "\u0436" * 900) for n in range(40)]
    parts = list(payloads(PSID, events, budget=10_000))
    assert len(parts) > 1 and all(len(p) <= 10_000 for p in parts)
    assert all(json.loads(p)["drain"] == [PSID] for p in parts)
    ids = [e["event_id"] for p in parts for e in json.loads(p)["events"]]
    assert ids == [f"m{n}" for n in range(40)]


def test_non_ascii_text_is_not_escaped():
    [payload] = list(payloads(PSID, [inbound("m1", 1, "\u0436" * 100)]))
    assert "\u0436".encode() * 100 in payload


class UnprocessingClient:
    """A DynamoDB client that leaves ``unprocessed`` batch writes unprocessed, then none."""

    def __init__(self, unprocessed: int) -> None:
        self.unprocessed = unprocessed
        self.calls = 0

    def batch_write_item(self, RequestItems: dict) -> dict:
        self.calls += 1
        if self.unprocessed:
            self.unprocessed -= 1
            return {"UnprocessedItems": RequestItems}
        return {"UnprocessedItems": {}}


def test_unprocessed_writes_are_sent_again_until_done(monkeypatch):
    monkeypatch.setattr("handler.inbox.time.sleep", lambda _s: None)
    client = UnprocessingClient(unprocessed=2)
    Inbox(client, "t").post([inbound("m1", 1)])
    assert client.calls == 3


def test_writes_left_unprocessed_fail_the_post(monkeypatch):
    monkeypatch.setattr("handler.inbox.time.sleep", lambda _s: None)
    with pytest.raises(InboxError):
        Inbox(UnprocessingClient(unprocessed=99), "t").post([inbound("m1", 1)])
