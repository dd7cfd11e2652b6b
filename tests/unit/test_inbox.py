"""The inbox's order: by when the person sent a message, the same key for the same event."""

import json

from handler.dispatch import drain_request, payloads
from handler.events import Inbound, classify, work_request
from handler.inbox import in_order, message_sort_key, order_of

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
    assert work_request(request) == ([PSID], [event])


def test_a_replayed_failure_record_payload_carries_its_events():
    event = inbound("m_replay", 5)
    drain, events = work_request({"messenger_bridge_work": 1, "events": [event.to_dict()]})
    assert (drain, events) == ([], [event])


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
