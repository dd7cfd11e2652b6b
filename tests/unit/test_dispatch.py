import json

from handler.dispatch import payloads
from handler.events import Inbound


def inbound(n: int, text: str) -> Inbound:
    return Inbound(f"m{n}", "1000000000000001", "100", n, "text", text)


def test_a_small_batch_is_one_payload_in_order():
    events = [inbound(n, "hi") for n in range(5)]
    [payload] = list(payloads(events))
    assert [e["event_id"] for e in json.loads(payload)["events"]] == [f"m{n}" for n in range(5)]


def test_a_large_batch_is_split_under_the_budget_keeping_order():
    events = [inbound(n, "\u0436" * 900) for n in range(40)]
    parts = list(payloads(events, budget=10_000))
    assert len(parts) > 1 and all(len(p) <= 10_000 for p in parts)
    ids = [e["event_id"] for p in parts for e in json.loads(p)["events"]]
    assert ids == [f"m{n}" for n in range(40)]


def test_non_ascii_text_is_not_escaped():
    [payload] = list(payloads([inbound(1, "\u0436" * 100)]))
    assert "\u0436".encode() * 100 in payload
