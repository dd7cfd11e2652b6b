import base64
import json

import pytest

from handler.events import (
    BOT_METADATA,
    ECHO_WITHOUT_TEXT,
    MAX_TEXT_CHARS,
    PAGE_INBOX_APP_ID,
    Inbound,
    MalformedBody,
    classify,
    derived_id,
    http_request,
    is_ours,
    is_stale,
    parse_webhook,
)

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
    sqs = {"messageId": "1", "body": "{}", "eventSource": "aws:sqs"}
    assert classify({"Records": [sqs, sqs]}) == "queue"
    assert classify({"Records": []}) == "unknown"
    assert classify({"Records": [sqs, {"eventSource": "aws:s3"}]}) == "unknown"
    assert classify({"messenger_bridge_work": 1, "events": []}) == "unknown"  # the old hand-off
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


def echo(psid: str, mid: str, words: str, **message: object) -> dict:
    """The echo of a message the page sent to ``psid``."""
    return {
        "sender": {"id": PAGE},
        "recipient": {"id": psid},
        "timestamp": 1764000000000,
        "message": {"is_echo": True, "mid": mid, "text": words, **message},
    }


def test_a_reply_typed_by_hand_is_an_echo_event_for_its_recipient():
    inbox = echo(ALICE, "m1", "Anna here", app_id=PAGE_INBOX_APP_ID)
    no_app = echo(BOB, "m2", "Hi Bob")
    photo = echo(ALICE, "m3", "", attachments=[{"type": "image", "payload": {"url": "x"}}])
    events = parse_webhook(body(entry(inbox, no_app, photo)), app_id="42")
    assert [(e.kind, e.psid, e.text, e.event_id) for e in events] == [
        ("echo", ALICE, "Anna here", "m1"),
        ("echo", BOB, "Hi Bob", "m2"),
        ("echo", ALICE, ECHO_WITHOUT_TEXT, "m3"),
    ]


def test_the_bots_own_echoes_are_dropped_by_metadata_or_app_id():
    ours = [
        echo(ALICE, "m1", "answer", app_id=42, metadata=BOT_METADATA),
        echo(ALICE, "m2", "answer", metadata=BOT_METADATA),  # a stack without appId
        echo(ALICE, "m3", "answer", app_id=42),  # our app, no metadata (another sender)
        echo(ALICE, "m4", "answer", app_id="42"),
    ]
    assert parse_webhook(body(entry(*ours)), app_id="42") == []
    assert [e.event_id for e in parse_webhook(body(entry(*ours)))] == ["m3", "m4"]
    assert is_ours(42, None, "42") and not is_ours(True, None, "1") and not is_ours(None, "x", None)


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
        ("postback", "USAGE", "", derived_id(BOB, 7, "postback", "USAGE", "")),
        ("quick_reply", "ADMIN:default:1", "Keep default", "m5"),
    ]


def test_an_event_without_a_mid_gets_the_same_id_on_every_delivery_and_its_own():
    def tap(payload: str, timestamp: int = 7) -> dict:
        return {"sender": {"id": BOB}, "timestamp": timestamp, "postback": {"payload": payload}}

    first = parse_webhook(body(entry(tap("USAGE"))))
    again = parse_webhook(body(entry(tap("USAGE"))))
    other_payload = parse_webhook(body(entry(tap("HELP"))))
    other_time = parse_webhook(body(entry(tap("USAGE", 8))))
    assert first[0].event_id == again[0].event_id
    assert len({first[0].event_id, other_payload[0].event_id, other_time[0].event_id}) == 3


def test_a_huge_text_is_cut_so_one_event_always_fits_one_queue_message():
    [event] = parse_webhook(body(entry(text(ALICE, "m1", "x" * (MAX_TEXT_CHARS * 3)))))
    assert len(event.text) == MAX_TEXT_CHARS


def test_events_older_than_messengers_window_are_stale_and_unknown_times_are_not():
    now = 1_800_000_000_000
    day = 24 * 3600 * 1000
    assert not is_stale(now - day + 1000, now)
    assert is_stale(now - day - 1000, now)
    assert not is_stale(0, now)
    assert not is_stale(now + 5000, now)  # a clock a little ahead is not stale


def test_an_event_survives_the_queue_and_nothing_else_passes_for_one():
    [event] = parse_webhook(body(entry(text(ALICE, "m1", "héllo 😀"))))
    assert Inbound.from_dict(json.loads(json.dumps(event.to_dict()))) == event
    for junk in ({}, {"psid": ALICE}, [1], "x", {"event_id": "m", "psid": ALICE, "timestamp": "1"}):
        with pytest.raises(ValueError):
            Inbound.from_dict(junk)


def attached(psid: str, mid: str, *attachments: tuple[str, str], **message: object) -> dict:
    return {
        "sender": {"id": psid},
        "timestamp": 1764000000000,
        "message": {
            "mid": mid,
            "attachments": [{"type": t, "payload": {"url": u}} for t, u in attachments],
            **message,
        },
    }


def test_photos_voice_messages_stickers_and_other_attachments_are_told_apart():
    photo = attached(ALICE, "m1", ("image", "https://cdn.test/a.jpg"))
    two = attached(ALICE, "m2", ("image", "https://cdn.test/1.jpg"), ("image", "https://x/2.png"))
    captioned = attached(ALICE, "m3", ("image", "https://cdn.test/b.jpg"), text="what is it?")
    voice = attached(BOB, "m4", ("audio", "https://cdn.test/v.mp4"))
    sticker = attached(BOB, "m5", ("image", "https://cdn.test/s.png"), sticker_id=1234)
    like = attached(BOB, "m6", ("image", "https://cdn.test/like.png"), sticker_id=369239263222822)
    video = attached(BOB, "m7", ("video", "https://cdn.test/v.mp4"))
    file = attached(BOB, "m8", ("file", "https://cdn.test/f.pdf"))
    bad_url = attached(BOB, "m9", ("image", "javascript:alert(1)"))
    events = parse_webhook(
        body(entry(photo, two, captioned, voice, sticker, like, video, file, bad_url))
    )
    assert [(e.event_id, e.kind, e.text, e.media) for e in events] == [
        ("m1", "image", "", (("image", "https://cdn.test/a.jpg"),)),
        ("m2", "image", "", (("image", "https://cdn.test/1.jpg"), ("image", "https://x/2.png"))),
        ("m3", "image", "what is it?", (("image", "https://cdn.test/b.jpg"),)),
        ("m4", "audio", "", (("audio", "https://cdn.test/v.mp4"),)),
        ("m5", "image", "", (("sticker", "https://cdn.test/s.png"),)),
        ("m6", "like", "", ()),
        ("m7", "attachments", "", ()),
        ("m8", "attachments", "", ()),
        ("m9", "attachments", "", ()),
    ]


def sticker(psid: str, mid: str, sticker_id: int, url: str, *also: dict) -> dict:
    """A sticker as Meta sends it now: a ``sticker`` attachment with its id in the payload."""
    payload = {"url": url, "sticker_id": sticker_id}
    return {
        "sender": {"id": psid},
        "timestamp": 1764000000000,
        "message": {"mid": mid, "attachments": [{"type": "sticker", "payload": payload}, *also]},
    }


def test_stickers_sent_as_sticker_attachments_are_looked_at_and_the_like_is_acknowledged():
    url = "https://cdn.test/sticker.png"
    both = {"type": "image", "payload": {"url": url, "sticker_id": 144884852352448}}
    events = parse_webhook(
        body(
            entry(
                sticker(ALICE, "m1", 144884852352448, url),
                sticker(ALICE, "m2", 369239263222822, "https://cdn.test/like.png"),
                sticker(ALICE, "m3", 369239383222810, "https://cdn.test/big-like.png"),
                sticker(ALICE, "m4", 144884852352448, url, both),  # during the changeover
            )
        )
    )
    assert [(e.event_id, e.kind, e.media) for e in events] == [
        ("m1", "image", (("sticker", url),)),
        ("m2", "like", ()),
        ("m3", "like", ()),
        ("m4", "image", (("sticker", url),)),
    ]
    like_in_payload = attached(BOB, "m6", ("image", "https://cdn.test/like.png"))
    like_in_payload["message"]["attachments"][0]["payload"]["sticker_id"] = "369239343222814"
    [like] = parse_webhook(body(entry(like_in_payload)))
    assert (like.kind, like.media) == ("like", ())


def test_at_most_four_photos_of_a_message_go_to_the_model():
    many = attached(ALICE, "m1", *[("image", f"https://cdn.test/{n}.jpg") for n in range(6)])
    [event] = parse_webhook(body(entry(many)))
    assert len(event.media) == 4


def test_media_survives_the_queue_and_junk_media_is_refused():
    [event] = parse_webhook(body(entry(attached(ALICE, "m1", ("audio", "https://cdn.test/v")))))
    assert Inbound.from_dict(json.loads(json.dumps(event.to_dict()))) == event
    for junk in ("x", [["image"]], [[1, 2]], [{"type": "image"}]):
        with pytest.raises(ValueError):
            Inbound.from_dict({**event.to_dict(), "media": junk})


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


def test_where_a_person_came_from_is_read_from_every_place_facebook_puts_it():
    get_started = {
        "sender": {"id": ALICE},
        "timestamp": 5,
        "postback": {
            "payload": "GET_STARTED",
            "title": "Get Started",
            "referral": {"ref": "spring-sale", "source": "SHORTLINK", "type": "OPEN_THREAD"},
        },
    }
    link_only = {
        "sender": {"id": BOB},
        "timestamp": 6,
        "referral": {"ref": "ad-7", "source": "ADS", "type": "OPEN_THREAD", "ad_id": "123"},
    }
    from_ad = text(ALICE, "m9", "is it in stock?")
    from_ad["message"]["referral"] = {"source": "ADS", "type": "OPEN_THREAD", "ad_id": "9"}
    events = parse_webhook(body(entry(get_started, link_only, from_ad)))
    assert [(e.kind, e.ref_source, e.ref) for e in events] == [
        ("postback", "SHORTLINK", "spring-sale"),
        ("referral", "ADS", "ad-7"),
        ("text", "ADS", ""),
    ]
    assert parse_webhook(body(entry(link_only)))[0].event_id == events[1].event_id


@pytest.mark.parametrize("sticker", [[], {}, "369239263222822", None, True, 1.5])
def test_a_sticker_id_of_any_type_is_read_or_ignored(sticker: object):
    like = attached(ALICE, "m1", ("image", "https://cdn.test/l.png"), sticker_id=sticker)
    [event] = parse_webhook(body(entry(like)))
    assert event.kind == ("like" if sticker == "369239263222822" else "image")
