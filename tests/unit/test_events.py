import base64
import json

import pytest

from handler.events import MalformedBody, classify, http_request, parse_webhook

PAGE = "111222333444555"
ALICE = "1000000000000001"
BOB = "1000000000000002"


def body(*entries: dict) -> bytes:
    return json.dumps({"object": "page", "entry": list(entries)}).encode()


def entry(*messaging: dict) -> dict:
    return {"id": PAGE, "time": 1764000000000, "messaging": list(messaging)}


def text(psid: str, mid: str, words: str) -> dict:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE},
        "timestamp": 1764000000000,
        "message": {"mid": mid, "text": words},
    }


def test_events_are_told_apart_by_shape():
    assert classify({"requestContext": {"http": {"method": "GET"}}}) == "http"
    assert classify({"source": "aws.events", "detail-type": "Scheduled Event"}) == "keep_warm"
    assert classify({"messenger_bridge_work": 1, "events": []}) == "work"
    assert classify({"Records": []}) == "unknown"
    assert classify("nope") == "unknown"


def test_a_function_url_event_becomes_a_request_with_the_raw_body():
    raw = b'{"a": "\xc3\xa9"}'
    event = {
        "rawPath": "/webhook",
        "requestContext": {"http": {"method": "post", "path": "/webhook"}},
        "headers": {"X-Hub-Signature-256": "sha256=ab"},
        "queryStringParameters": {"x": "1"},
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }
    request = http_request(event)
    assert request.method == "POST"
    assert request.path == "/webhook"
    assert request.body == raw
    assert request.header("X-HUB-SIGNATURE-256") == "sha256=ab"
    assert request.query == {"x": "1"}


def test_a_batch_from_several_users_yields_every_message_in_order():
    events = parse_webhook(
        body(
            entry(text(ALICE, "m1", "hi"), text(BOB, "m2", "hello")),
            entry(text(ALICE, "m3", "again")),
        )
    )
    assert [(e.psid, e.event_id, e.text) for e in events] == [
        (ALICE, "m1", "hi"),
        (BOB, "m2", "hello"),
        (ALICE, "m3", "again"),
    ]
    assert all(e.page_id == PAGE and e.kind == "text" for e in events)


def test_echoes_deliveries_reads_and_reactions_are_ignored():
    echo = text(PAGE, "m9", "from the page")
    echo["message"]["is_echo"] = True
    echo_from_user_field = text(ALICE, "m8", "echo")
    echo_from_user_field["message"]["is_echo"] = True
    others = [
        {"sender": {"id": ALICE}, "delivery": {"mids": ["m1"], "watermark": 1}},
        {"sender": {"id": ALICE}, "read": {"watermark": 1}},
        {"sender": {"id": ALICE}, "reaction": {"mid": "m1", "action": "react", "emoji": "x"}},
    ]
    assert parse_webhook(body(entry(echo, echo_from_user_field, *others))) == []


def test_postbacks_and_quick_replies_carry_their_payload():
    postback = {
        "sender": {"id": ALICE},
        "timestamp": 5,
        "postback": {"title": "Help", "payload": "HELP", "mid": "pb1"},
    }
    no_mid = {"sender": {"id": BOB}, "timestamp": 7, "postback": {"payload": "USAGE"}}
    quick = text(ALICE, "m5", "Keep default")
    quick["message"]["quick_reply"] = {"payload": "ADMIN:default:1"}
    events = parse_webhook(body(entry(postback, no_mid, quick)))
    assert [(e.kind, e.payload, e.text, e.event_id) for e in events] == [
        ("postback", "HELP", "Help", "pb1"),
        ("postback", "USAGE", "", f"{BOB}:7:p"),
        ("quick_reply", "ADMIN:default:1", "Keep default", "m5"),
    ]


def test_attachments_and_stickers_without_text_are_reported_as_such():
    image = {
        "sender": {"id": ALICE},
        "message": {"mid": "m6", "attachments": [{"type": "image", "payload": {"url": "u"}}]},
    }
    sticker = {"sender": {"id": BOB}, "message": {"mid": "m7", "sticker_id": 369239263222822}}
    events = parse_webhook(body(entry(image, sticker)))
    assert [(e.kind, e.event_id) for e in events] == [("attachments", "m6"), ("attachments", "m7")]


def test_blank_text_is_not_a_question():
    assert parse_webhook(body(entry(text(ALICE, "m1", "   ")))) == []


def test_other_objects_are_ignored():
    assert parse_webhook(json.dumps({"object": "instagram", "entry": []}).encode()) == []


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1,2]", b'{"object": "page"}', b"\xff\xfe", b'"text"']
)
def test_malformed_bodies_are_named_as_such(raw: bytes):
    with pytest.raises(MalformedBody):
        parse_webhook(raw)


def test_junk_inside_a_valid_envelope_is_skipped_not_fatal():
    junk = {"object": "page", "entry": [1, "x", {"messaging": [None, 3, {"sender": 5}]}]}
    assert parse_webhook(json.dumps(junk).encode()) == []


def test_lone_surrogates_are_replaced_so_the_text_can_be_stored_and_sent():
    raw = (
        b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},'
        b'"message":{"mid":"m\\ud800","text":"a\\ud800b \\ud83d\\ude00"}}]}]}'
    )
    [event] = parse_webhook(raw)
    assert event.text == "a\ufffdb \U0001f600"
    assert event.event_id == "m\ufffd"
    event.text.encode("utf-8")
