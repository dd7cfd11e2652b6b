"""Odd but signed input through the whole stack: every message ends one right way, once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler import app, replies, signature
from handler.events import MAX_TEXT_CHARS
from handler.handoff import MAX_BATCH_BYTES
from handler.webhook import MAX_BODY_BYTES
from tests.reliability.conftest import KNOWN
from tests.reliability.harness import answer_to, dead_letters, fresh_ms, question, tally
from tests.support.bridge import PAGE_ID, Bridge, Context, function_url_event

AREA = "Bad input: odd messages through the stack"
ALICE = "1000000000000001"

ODD_TEXTS = {
    "rtl-and-bidi-controls": "\u202e\u05e9\u05dc\u05d5\u05dd \u200fmixed\u202c "
    "\u0627\u0644\u0633\u0644\u0627\u0645",
    "zero-width-and-joiners": "a\u200b\u200c\u200d\u2060b "
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "combining-marks": "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d"
    "\u034f\u0334\u0319\u0324\u031e\u0349",
    "astral-plane": "\U0001d54f\U0001d552\U0001d55d \U0001f600\U0001f680 \U00020000",
    "nul-and-controls": "a\x00b\x07c\x1bd\x7f",
    "line-and-paragraph-separators": "one\u2028two\u2029three\r\nfour",
    "byte-order-mark": "\ufeffhello",
    "noncharacters": "\ufffe\uffff\U0010ffff",
    "lone-surrogate": "\ud800 half an emoji",
    "json-and-markup": '{"a": [1, 2]} <script>alert(1)</script> \\u0000 %s %n {{7*7}}',
    "2000-characters": "\u00e9" * 2000,
}


def readable(text: str) -> str:
    """The text as UTF-8 can carry it: a lone UTF-16 surrogate can only become U+FFFD."""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def deliver_items(bridge: Bridge, *items: dict[str, Any]) -> dict[str, Any]:
    """A signed delivery whose bytes are UTF-8 (non-ASCII not escaped, as Facebook sends)."""
    body = json.dumps(
        {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": list(items)}]},
        ensure_ascii=False,
    ).encode("utf-8", errors="surrogatepass")
    return bridge.deliver(body)


def text_item(psid: str, text: str, mid: str, timestamp: int | None = None) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": fresh_ms() if timestamp is None else timestamp,
        "message": {"mid": mid, "text": text},
    }


def message_item(psid: str, mid: str, **message: Any) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": fresh_ms(),
        "message": {"mid": mid, **message},
    }


def nothing_queued(bridge: Bridge) -> bool:
    return bridge.poller.invocations == [] and bridge.poller.queue_depth() == (0, 0)


def test_odd_unicode_is_answered_once_or_apologised_for_once(make_bridge, scenario):
    bridge = make_bridge(DAILY_LIMIT="100")
    scenario.tried(
        f"{len(ODD_TEXTS)} odd texts, one message each: "
        + ", ".join(ODD_TEXTS)
        + " (the lone surrogate as a JSON escape, as a sender could write it)",
        "each: webhook 200, then exactly one answer carrying the text unchanged (a lone "
        "surrogate, which UTF-8 cannot carry, as U+FFFD) or one apology; counted per answer",
    )
    outcomes: dict[str, str] = {}
    for n, (name, text) in enumerate(ODD_TEXTS.items()):
        before = len(bridge.texts_to(ALICE))
        if name == "lone-surrogate":
            raw = json.dumps(
                {
                    "object": "page",
                    "entry": [
                        {
                            "id": PAGE_ID,
                            "messaging": [text_item(ALICE, question(ALICE, text), f"m_odd_{n}")],
                        }
                    ],
                }
            )  # \ud800 escaped
            response = bridge.deliver(raw.encode())
        else:
            response = deliver_items(bridge, text_item(ALICE, question(ALICE, text), f"m_odd_{n}"))
        bridge.settle()
        got = bridge.texts_to(ALICE)[before:]
        if response["statusCode"] != 200:
            outcomes[name] = f"webhook {response['statusCode']}"
        elif got and " ".join(got) == answer_to(question(ALICE, readable(text))).strip():
            outcomes[name] = "answered"  # a long one in more than one bubble
        elif got == [replies.APOLOGY]:
            outcomes[name] = "apology"
        else:
            outcomes[name] = f"{len(got)} texts"
    final = tally(bridge, ALICE)
    scenario.saw(
        "; ".join(f"{k}: {v}" for k, v in outcomes.items()),
        answered=list(outcomes.values()).count("answered"),
        apologies=list(outcomes.values()).count("apology"),
        counted=final.counted,
    )
    assert set(outcomes.values()) <= {"answered", "apology"}, outcomes
    assert final.ended_once(len(ODD_TEXTS))


def test_empty_and_blank_texts_are_not_questions(bridge: Bridge, scenario):
    scenario.tried(
        'messages with text "", "   ", "\\n\\t", a missing text, text null',
        "webhook 200; nothing queued, nothing sent, nothing counted",
    )
    items = [
        message_item(ALICE, "m_e1", text=""),
        message_item(ALICE, "m_e2", text="   "),
        message_item(ALICE, "m_e3", text="\n\t"),
        message_item(ALICE, "m_e4"),
        message_item(ALICE, "m_e5", text=None),
    ]
    response = deliver_items(bridge, *items)
    bridge.settle()
    scenario.saw(
        f"webhook {response['statusCode']}; queued {len(bridge.poller.invocations)}",
        sent=len(bridge.graph.calls),
    )
    assert response["statusCode"] == 200
    assert nothing_queued(bridge) and bridge.graph.calls == [] and bridge.items() == []


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x42" * 3000
VOICE = b"\x00\x00\x00\x18ftypM4A " + b"\x17" * 4000
CANNOT_TAKE = {
    "video": {"attachments": [{"type": "video", "payload": {"url": "https://x/y.mp4"}}]},
    "file": {"attachments": [{"type": "file", "payload": {"url": "https://x/y.pdf"}}]},
    "location": {"attachments": [{"type": "location", "payload": {"coordinates": {}}}]},
    "sticker-without-a-picture": {
        "sticker_id": 369239263222823,
        "attachments": [{"type": "image", "payload": {"sticker_id": 369239263222823}}],
    },
    "ten-images-without-urls": {"attachments": [{"type": "image", "payload": {}}] * 10},
    "unknown-type": {"attachments": [{"type": "hologram", "payload": {"url": "https://x/y"}}]},
}


@pytest.mark.parametrize("content", CANNOT_TAKE.values(), ids=CANNOT_TAKE.keys())
def test_attachments_the_bot_cannot_take_get_one_reply_and_cost_nothing(
    bridge: Bridge, scenario, content: dict[str, Any]
):
    scenario.tried(
        "a message with no text, only " + ", ".join(content),
        "one 'what I can take' reply; no model call; not counted",
    )
    deliver_items(bridge, message_item(ALICE, "m_att", **content))
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(got.describe())
    assert bridge.texts_to(ALICE) == [replies.media_unsupported(vision=True)]
    assert (got.model_calls, got.counted, got.dead_letters) == (0, 0, 0)


@pytest.mark.parametrize(
    ("kind", "data", "content_type", "reply"),
    [
        ("image", JPEG, "image/jpeg", replies.PHOTO_FAILED),
        ("audio", VOICE, "audio/mp4", replies.VOICE_FAILED),
    ],
    ids=["photo", "voice-message"],
)
def test_a_photo_or_voice_message_whose_link_expired_gets_one_reply_and_costs_nothing(
    bridge: Bridge, scenario, kind: str, data: bytes, content_type: str, reply: str
):
    scenario.tried(
        f"a {kind} attachment whose CDN link answers 403 (expired)",
        "one 'send it again' reply; no model call; not counted; nothing dead-lettered",
    )
    url = bridge.graph.host_attachment(data, content_type, status=403)
    attachments = [{"type": kind, "payload": {"url": url}}]
    text = {"text": "What is it?"} if kind == "image" else {}  # (a photo alone waits for it)
    deliver_items(bridge, message_item(ALICE, "m_gone", attachments=attachments, **text))
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(got.describe(), downloads=len(bridge.graph.downloads))
    assert bridge.texts_to(ALICE) == [reply]
    assert (got.model_calls, got.counted, got.dead_letters) == (0, 0, 0)
    assert len(bridge.graph.downloads) == 1  # a 403 is not tried again
    assert bridge.model.transcriptions == []


def test_text_with_an_attachment_is_a_question(make_bridge, scenario):
    bridge = make_bridge(known=KNOWN)  # the reply is all they get: no welcome first
    scenario.tried("a message with text and a photo", "the text is answered once; counted once")
    url = bridge.graph.host_attachment(JPEG, "image/jpeg", "photo.jpg")
    image = [{"type": "image", "payload": {"url": url}}]
    deliver_items(bridge, message_item(ALICE, "m_ta", text=question(ALICE), attachments=image))
    bridge.settle()
    got = tally(bridge, ALICE)
    scenario.saw(got.describe())
    assert got.ended_once() and (got.answers, got.notices) == (1, 0)
    assert got.model_calls == 1 and got.counted == 1


def test_a_huge_batch_is_answered_once_per_message(make_bridge, scenario, slow):
    people, per_person = (25, 20) if slow else (10, 4)
    bridge = make_bridge(DAILY_LIMIT=str(per_person))
    psids = [f"30000000000{n:05d}" for n in range(people)]
    items = [
        text_item(p, question(p, f"#{k}"), f"m_batch_{p}_{k}")
        for k in range(per_person)
        for p in psids
    ]
    scenario.tried(
        f"one delivery of {len(items)} messages from {people} people, interleaved",
        "webhook 200 at once; every message answered exactly once, in order per person; "
        "counts exact",
    )
    response = deliver_items(bridge, *items)
    bridge.settle(300)
    wrong = []
    for p in psids:
        texts = bridge.texts_to(p)
        if texts != [answer_to(question(p, f"#{k}")) for k in range(per_person)]:
            wrong.append(p)
    counted_total = sum(tally(bridge, p).counted for p in psids)
    wrong += [p for p in psids if not tally(bridge, p).ended_once(per_person)]
    scenario.saw(
        f"webhook {response['statusCode']}; {len(psids) - len(wrong)} of {people} people got "
        "exactly their answers in order",
        messages=len(items),
        counted=counted_total,
    )
    assert response["statusCode"] == 200
    assert wrong == []
    assert counted_total == len(items) and dead_letters(bridge) == []


def test_a_body_at_the_size_limit_is_read_and_one_byte_more_is_refused_early(
    bridge: Bridge, scenario, monkeypatch
):
    scenario.tried(
        f"signed bodies of exactly {MAX_BODY_BYTES} bytes and of {MAX_BODY_BYTES + 1} bytes; "
        f"an unsigned one of 5 MB",
        "the first is read (200); the others get 413 before any signature check or parsing",
    )
    checked: list[int] = []
    real_is_valid = signature.is_valid
    monkeypatch.setattr(
        signature, "is_valid", lambda body, *a: checked.append(len(body)) or real_is_valid(body, *a)
    )

    def padded(size: int) -> bytes:
        head = b'{"object": "page", "entry": [], "pad": "'
        return head + b"x" * (size - len(head) - 2) + b'"}'

    answers = []
    for body, signed in ((padded(MAX_BODY_BYTES), True), (padded(MAX_BODY_BYTES + 1), True)):
        answers.append(bridge.deliver(body, signed=signed)["statusCode"])
    huge = function_url_event("POST", b"{" + b" " * 5_000_000 + b"}")
    answers.append(app.lambda_handler(huge, Context())["statusCode"])
    scenario.saw(f"answers {answers}", signatures_checked=len(checked))
    assert answers == [200, 413, 413]
    assert checked == [MAX_BODY_BYTES]  # only the body within the limit was ever hashed


def test_a_signed_delivery_of_non_ascii_text_near_the_limit_is_queued_whole(make_bridge, scenario):
    """Facebook sends UTF-8; every event must still reach the queue, in SendMessageBatch calls
    SQS accepts, however much text the delivery carries."""
    bridge = make_bridge(known=KNOWN)  # every text they get answers a message: no welcome
    emoji = "\U0001f600" * (MAX_TEXT_CHARS + 500)
    items = [text_item(ALICE, question(ALICE, f"#{n} {emoji}"), f"m_big_{n}") for n in range(20)]
    body = json.dumps(
        {"object": "page", "entry": [{"id": PAGE_ID, "messaging": items}]}, ensure_ascii=False
    ).encode()
    scenario.tried(
        f"a signed {len(body) // 1024} KB delivery (under the {MAX_BODY_BYTES // 1024} KB "
        f"limit) of 20 messages of {MAX_TEXT_CHARS + 500} emoji each (4 bytes apiece)",
        f"webhook 200 (not a 5xx, which Facebook would retry for ever): every message queued "
        f"(texts cut to {MAX_TEXT_CHARS} characters, SendMessageBatch calls under "
        f"{MAX_BATCH_BYTES // 1000} KB) and answered or refused by the quota, none lost",
    )
    response = bridge.deliver(body)
    bridge.settle(120)
    got = tally(bridge, ALICE)
    longest = max(len(r["messages"][-1]["content"]) for r in bridge.model.requests)
    scenario.saw(
        f"webhook {response['statusCode']}; {got.describe()}; the longest question the model "
        f"saw: {longest} characters"
    )
    assert response["statusCode"] == 200
    assert got.answers + got.notices == 20 and got.counted == got.answers == 3
    assert got.dead_letters == 0 and longest <= MAX_TEXT_CHARS


def test_a_delivery_older_than_the_messaging_window_is_dropped(bridge: Bridge, scenario):
    scenario.tried(
        "a signed delivery whose message was sent 25 hours ago (a replay, or a redelivery "
        "long after Messenger's 24-hour window)",
        "webhook 200 and nothing queued, sent or counted (no answer may be sent any more)",
    )
    old = fresh_ms(-25 * 3600 * 1000)
    response = deliver_items(bridge, text_item(ALICE, question(ALICE), "m_old", old))
    bridge.settle()
    scenario.saw(f"webhook {response['statusCode']}", queued=len(bridge.poller.invocations))
    assert response["statusCode"] == 200
    assert nothing_queued(bridge) and bridge.graph.calls == [] and bridge.items() == []
