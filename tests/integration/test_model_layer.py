"""The model layer end to end, through the real openai SDK against the fake OpenAI server and
Messenger's CDN on the simulator: any current model, whole answers, photos and voice
messages, budgets in tokens and dollars, and the owner's alerts."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from handler import alerts, replies, schema
from handler.media import MAX_VOICE_SECONDS
from local.model import image_parts, image_url_of, last_user_text
from tests.support.bridge import (
    ADMIN,
    JPEG,
    VOICE,
    Bridge,
    messaging_attachment,
    messaging_text,
    webhook_body,
)
from tests.support.world import ALICE, BOB


def owner_alerts(bridge: Bridge) -> list[str]:
    """The alerts the owner got, at once or (after the time they were raised) later."""
    return [t for t in bridge.texts_to(ADMIN) if alerts.PREFIX in t]


def everything_stored(bridge: Bridge) -> str:
    return json.dumps(bridge.items())


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def page_today(bridge: Bridge) -> dict[str, int]:
    item = bridge.dynamodb.get_item(
        TableName=bridge.table, Key=schema.page_day_key(today()), ConsistentRead=True
    ).get("Item", {})
    return {k: int(v["N"]) for k, v in item.items() if "N" in v and k != "expires_at"}


# -- any current model ---------------------------------------------------------------------------


def test_a_gpt5_style_model_that_refuses_temperature_still_answers_and_the_owner_hears_later(
    make_bridge,
):
    bridge = make_bridge(OPENAI_TEMPERATURE="0.7")
    bridge.model.profile = "gpt-5"
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    first, second = bridge.model.requests
    assert first["temperature"] == 0.7 and "temperature" not in second
    [dropped] = bridge.logs.named("model.parameter_dropped")
    assert dropped["level"] == "ERROR" and dropped["parameter"] == "temperature"
    assert bridge.used_today(ALICE) == 1
    bridge.say(ALICE, "again")  # the rest of the container's life: no temperature
    assert len(bridge.model.requests) == 3 and "temperature" not in bridge.model.requests[2]
    assert len(bridge.logs.named("model.parameter_dropped")) == 1
    # The owner has not written in 24 hours: the alert waits for their next message.
    assert owner_alerts(bridge) == []
    bridge.say(ADMIN, "/help")
    alert, help_text = bridge.texts_to(ADMIN)[-2:]
    assert alerts.PREFIX in alert and "refused the parameter temperature" in alert
    assert "pulumi config set temperature ''" in alert
    assert help_text.startswith(replies.USER_HELP)
    bridge.say(ADMIN, "/stats")
    assert "unsupported parameter 1" in bridge.texts_to(ADMIN)[-1]


def test_a_model_without_reasoning_refuses_the_effort_and_an_owner_in_the_window_hears_at_once(
    make_bridge,
):
    bridge = make_bridge(OPENAI_MODEL="gpt-4.1-mini")
    bridge.model.profile = "classic"
    bridge.say(ADMIN, "/help")  # the owner wrote: inside the window
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert ["reasoning_effort" in r for r in bridge.model.requests] == [True, False]
    [alert] = owner_alerts(bridge)
    assert "gpt-4.1-mini refused the parameter reasoning_effort" in alert
    assert "reasoningEffort omit" in alert


def test_a_compatible_provider_with_other_quirks_answers(make_bridge):
    bridge = make_bridge(OPENAI_MODEL="llama-3.3-70b")
    bridge.model.profile = "compatible"
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    last = bridge.model.requests[-1]
    assert last["max_tokens"] == 2000 and "max_completion_tokens" not in last
    assert bridge.used_today(ALICE) == 1
    assert page_today(bridge)["tokens"] > 0  # usage without details still counts


def test_the_responses_api_is_a_setting(make_bridge):
    bridge = make_bridge(OPENAI_API="responses")
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    [request] = bridge.model.requests
    assert "input" in request and "messages" not in request
    assert request["store"] is False and request["reasoning"] == {"effort": "low"}


# -- whole answers -------------------------------------------------------------------------------


def test_a_cut_answer_is_continued_and_joined(make_bridge):
    bridge = make_bridge(OPENAI_MAX_TOKENS="20")  # the fake cuts at 80 characters
    head = "The first part of a long answer, cut by the cap of twenty tokens, goes on, and, "
    assert len(head) == 80

    def answer(body: dict[str, Any]) -> str:
        if last_user_text(body).startswith("Your answer was cut off"):
            return "finally ends."
        return head + "on and on, and never ends here."

    bridge.model.responder = answer
    bridge.say(ALICE, "long please")
    assert bridge.texts_to(ALICE) == [head + "finally ends."]
    continued = bridge.model.requests[1]["messages"]
    assert continued[-2] == {"role": "assistant", "content": head}
    assert len(bridge.model.requests) == 2 and bridge.used_today(ALICE) == 1


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_answer_still_cut_ends_on_a_sentence_with_a_continue_button(make_bridge, api: str):
    bridge = make_bridge(OPENAI_MAX_TOKENS="12", OPENAI_API=api)

    def answer(body: dict[str, Any]) -> str:
        if last_user_text(body).startswith("Your answer was cut off"):
            return "and still more words " * 20
        return "One short sentence. " + "and more words " * 20

    bridge.model.responder = answer
    bridge.say(ALICE, "long please")
    welcome, answer, note = bridge.graph.messages_to(ALICE)
    assert welcome["text"].startswith(replies.WELCOME_OPENING)  # a new person's first answer
    assert answer == {"text": "One short sentence."}
    assert note["text"] == replies.SHORTENED_NOTE
    [button] = note["quick_replies"]
    assert (button["title"], button["payload"]) == ("Continue", "ASK:Please continue.")
    assert bridge.used_today(ALICE) == 1


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_reasoning_model_that_thinks_away_its_budget_is_counted_and_can_go_on(
    make_bridge, api: str
):
    bridge = make_bridge(OPENAI_MAX_TOKENS="100", OPENAI_API=api)
    bridge.model.reasoning_tokens = 500
    bridge.say(ALICE, "a hard one")
    note = bridge.graph.messages_to(ALICE)[-1]
    assert note["text"] == replies.CUT_BEFORE_ANSWER
    [button] = note["quick_replies"]
    assert (button["title"], button["payload"]) == ("Continue", "ASK:Please continue.")
    assert bridge.used_today(ALICE) == 1
    assert page_today(bridge)["tokens"] >= 100
    bridge.model.reasoning_tokens = 0
    bridge.tap(ALICE, button["payload"])
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42."
    assert "a hard one" in json.dumps(bridge.model.requests[-1])  # asked after the question


# -- photos and voice messages -------------------------------------------------------------------


def test_a_photo_and_the_text_sent_after_it_are_one_question_with_the_image_inline(bridge: Bridge):
    url = bridge.graph.host_attachment(JPEG, "image/jpeg", "photo.jpg")
    photo = messaging_attachment(ALICE, "image", url)
    text = messaging_text(ALICE, "What breed is this?")
    text["timestamp"] = photo["timestamp"] + 800
    bridge.deliver(webhook_body(photo, text))
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    [request] = bridge.model.requests
    parts = request["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What breed is this?"}
    [image] = image_parts(request)
    assert image_url_of(image) == "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    assert bridge.used_today(ALICE) == 1
    [download] = bridge.graph.downloads
    assert download.authorization == "" and "access_token" not in download.query
    stored, logged = everything_stored(bridge), json.dumps(bridge.logs.events())
    for kept in (stored, logged):
        assert "/cdn/" not in kept and base64.b64encode(JPEG).decode()[:40] not in kept


def test_a_photo_and_the_text_in_the_next_delivery_are_one_question(bridge: Bridge):
    """As Messenger mostly delivers them: two webhook calls, a second apart."""
    url = bridge.graph.host_attachment(JPEG, "image/jpeg", "photo.jpg")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", url)))
    bridge.settle()
    kept = bridge.graph.messages_to(ALICE)[-1]
    assert kept["text"] == replies.PHOTO_KEPT and kept["quick_replies"]
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0
    assert "/cdn/" not in json.dumps(bridge.logs.events())
    bridge.say(ALICE, "What breed is this?")
    [request] = bridge.model.requests
    assert last_user_text(request) == "What breed is this?"
    [image] = image_parts(request)
    assert image_url_of(image) == "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42." and bridge.used_today(ALICE) == 1
    stored, logged = everything_stored(bridge), json.dumps(bridge.logs.events())
    for kept_anywhere in (stored, logged):  # the URL waited, then went with its question
        assert "/cdn/" not in kept_anywhere
    bridge.say(ALICE, "Thanks!")
    assert image_parts(bridge.model.requests[-1]) == []


def sticker(psid: str, url: str, sticker_id: int) -> dict[str, Any]:
    """A sticker as Meta sends it since 2026: a ``sticker`` attachment with its id inside."""
    item = messaging_attachment(psid, "sticker", url)
    item["message"]["attachments"][0]["payload"]["sticker_id"] = sticker_id
    return item


def test_a_sticker_is_looked_at_in_both_of_its_shapes(bridge: Bridge):
    png = b"\x89PNG" + b"s" * 100
    now = bridge.graph.host_attachment(png, "image/png")
    before = bridge.graph.host_attachment(png, "image/png")
    bridge.deliver(webhook_body(sticker(ALICE, now, 144884852352448)))
    bridge.settle()
    bridge.deliver(
        webhook_body(messaging_attachment(BOB, "image", before, sticker_id=144884852352448))
    )
    bridge.settle()
    for request in bridge.model.requests:
        assert last_user_text(request) == replies.DEFAULT_PHOTO_QUESTION
        assert len(image_parts(request)) == 1
    assert len(bridge.model.requests) == 2
    assert bridge.used_today(ALICE) == bridge.used_today(BOB) == 1


def test_the_like_sticker_is_acknowledged_silently(bridge: Bridge):
    bridge.say(ALICE, "/help")  # someone who has written before
    seen = len(bridge.texts_to(ALICE))
    like = bridge.graph.host_attachment(b"\x89PNG", "image/png")
    bridge.deliver(
        webhook_body(
            messaging_attachment(ALICE, "image", like, sticker_id=369239263222822),
            sticker(ALICE, like, 369239343222814),
            sticker(ALICE, like, 369239383222810),
        )
    )
    bridge.settle()
    assert bridge.texts_to(ALICE)[seen:] == []
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0
    assert bridge.graph.downloads == []


def test_with_vision_off_photos_are_not_read(make_bridge):
    bridge = make_bridge(VISION="false")
    url = bridge.graph.host_attachment(JPEG, "image/jpeg")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", url)))
    bridge.settle()
    assert bridge.texts_to(ALICE) == [replies.VISION_OFF]
    assert bridge.model.requests == [] and bridge.graph.downloads == []


def test_a_model_without_vision_gets_a_clear_reply_and_the_owner_is_told_once(bridge: Bridge):
    bridge.say(ADMIN, "/help")
    bridge.model.vision = False
    for psid in (ALICE, BOB):
        url = bridge.graph.host_attachment(JPEG, "image/jpeg")
        bridge.deliver(webhook_body(messaging_attachment(psid, "image", url, text="What?")))
        bridge.settle()
        assert bridge.texts_to(psid)[-1] == replies.VISION_UNSUPPORTED
    [alert] = owner_alerts(bridge)
    assert "refused a photo" in alert and "vision false" in alert
    assert bridge.used_today(ALICE) == 0


def test_an_expired_photo_url_is_said_so_and_not_counted(bridge: Bridge):
    url = bridge.graph.host_attachment(JPEG, "image/jpeg")
    bridge.graph.expire_attachment(url)
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", url, text="What?")))
    bridge.settle()
    assert bridge.texts_to(ALICE)[-1] == replies.PHOTO_FAILED
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0


def test_a_photo_over_the_size_cap_is_refused(make_bridge):
    bridge = make_bridge(MEDIA_MAX_MB="1")
    url = bridge.graph.host_attachment(b"\xff\xd8" + b"x" * (1024 * 1024 + 1), "image/jpeg")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", url, text="What?")))
    bridge.settle()
    assert bridge.texts_to(ALICE)[-1] == replies.MEDIA_TOO_LARGE


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"h" * 2000


def test_a_photo_the_model_cannot_open_is_said_so_and_the_owner_is_not_bothered(bridge: Bridge):
    """OpenAI's 400 invalid_image_format (a HEIC the CDN calls a JPEG) is the photo's fault:
    the person is asked for a JPEG or PNG; no alert, not counted, photos stay on."""
    bridge.say(ADMIN, "/help")
    lying = bridge.graph.host_attachment(HEIC, "image/jpeg")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", lying, text="What?")))
    bridge.settle()
    assert bridge.texts_to(ALICE)[-1] == replies.PHOTO_UNREADABLE
    assert len(bridge.model.requests) == 1 and bridge.used_today(ALICE) == 0
    heic = bridge.graph.host_attachment(HEIC, "image/heic")  # said by its type: not even asked
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", heic, text="And?")))
    bridge.settle()
    assert bridge.texts_to(ALICE)[-1] == replies.PHOTO_UNREADABLE
    assert len(bridge.model.requests) == 1 and owner_alerts(bridge) == []
    good = bridge.graph.host_attachment(JPEG, "image/jpeg")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", good, text="This one?")))
    bridge.settle()
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42."


def test_a_voice_message_is_transcribed_and_answered_with_what_was_heard(bridge: Bridge):
    bridge.model.transcript = "What are your opening hours on Sunday?"
    url = bridge.graph.host_attachment(VOICE, "video/mp4", "audioclip-1.mp4")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "audio", url)))
    bridge.settle()
    [upload] = bridge.model.transcriptions
    assert upload.model == "gpt-4o-mini-transcribe" and upload.audio == VOICE
    assert upload.filename == "voice.mp4" and upload.content_type == "video/mp4"
    [request] = bridge.model.requests
    assert request["messages"][-1] == {
        "role": "user",
        "content": "What are your opening hours on Sunday?",
    }
    [text] = bridge.texts_to(ALICE)
    assert (
        text == "\U0001f3a4 \u201cWhat are your opening hours on Sunday?\u201d\n\nThe answer is 42."
    )
    assert bridge.used_today(ALICE) == 1
    assert page_today(bridge)["tokens"] > 0 and "/cdn/" not in everything_stored(bridge)


def m4a(seconds: int) -> bytes:
    """A voice clip as Messenger's CDN serves it: MP4 boxes, the length in moov/mvhd."""

    def box(kind: bytes, body: bytes) -> bytes:
        return (8 + len(body)).to_bytes(4, "big") + kind + body

    times = bytes(8) + (1000).to_bytes(4, "big") + (seconds * 1000).to_bytes(4, "big")
    mvhd = box(b"mvhd", bytes(4) + times + bytes(80))
    return box(b"ftyp", b"M4A \x00\x00\x00\x00") + box(b"mdat", b"\x17" * 4000) + box(b"moov", mvhd)


def test_a_voice_message_too_long_is_refused_before_transcription(bridge: Bridge):
    url = bridge.graph.host_attachment(m4a(MAX_VOICE_SECONDS + 30), "audio/mp4")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "audio", url)))
    bridge.settle()
    assert bridge.texts_to(ALICE)[-1] == replies.voice_too_long(MAX_VOICE_SECONDS)
    assert bridge.model.transcriptions == [] and bridge.used_today(ALICE) == 0


def test_a_voice_message_the_cdn_serves_as_octet_stream_is_transcribed(bridge: Bridge):
    url = bridge.graph.host_attachment(m4a(20), "application/octet-stream")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "audio", url)))
    bridge.settle()
    [upload] = bridge.model.transcriptions
    assert (upload.filename, upload.content_type) == ("voice.mp4", "audio/mp4")
    assert bridge.texts_to(ALICE)[-1].endswith("The answer is 42.")


def test_a_voice_message_with_no_words_gets_a_clear_reply(bridge: Bridge):
    bridge.model.transcript = ""
    url = bridge.graph.host_attachment(VOICE, "audio/mp4")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "audio", url)))
    bridge.settle()
    assert bridge.texts_to(ALICE) == [replies.VOICE_EMPTY]
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0


def test_a_transcription_that_fails_for_now_is_retried_like_the_model(bridge: Bridge):
    bridge.model.fail_next(503)
    url = bridge.graph.host_attachment(VOICE, "audio/mp4")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "audio", url)))
    bridge.settle()
    assert bridge.texts_to(ALICE)[0] == replies.MODEL_TROUBLE
    assert bridge.texts_to(ALICE)[1].endswith("The answer is 42.")
    assert len(bridge.model.transcriptions) == 2 and bridge.used_today(ALICE) == 1


# -- budgets -------------------------------------------------------------------------------------


def test_insufficient_quota_tells_the_owner_once_and_counts_in_stats(bridge: Bridge):
    bridge.say(ADMIN, "/help")
    bridge.model.fail_next(429, code="insufficient_quota", times=2)
    bridge.say(ALICE, "one")
    bridge.say(BOB, "two")
    assert bridge.texts_to(ALICE) == bridge.texts_to(BOB) == [replies.QUOTA_APOLOGY]
    [alert] = owner_alerts(bridge)
    assert "insufficient_quota" in alert
    bridge.say(ADMIN, "/stats")
    assert "insufficient_quota 2" in bridge.texts_to(ADMIN)[-1]


def test_usage_shows_the_tokens_of_the_day(bridge: Bridge):
    bridge.say(ALICE, "hello")
    bridge.say(ALICE, "/usage")
    usage = bridge.texts_to(ALICE)[-1]
    assert "asked 1 of 3 questions" in usage and "Tokens today: " in usage and "of 50,000" in usage


def test_the_token_budget_and_the_spend_cap_hold_for_several_people_at_once(make_bridge):
    """On DynamoDB Local (atomic like DynamoDB): six people ask at once, each twice. Every
    answer's tokens and cost add up exactly on the page's day, a person over their tokens is
    told so, and once the page is over its cap everyone but the owner rests and the owner
    hears once. One answer here is about 60 tokens at $2 a thousand: the cap of $0.50 is
    reached by the fifth."""
    bridge = make_bridge(
        engine="dynamodb-local",
        DAILY_LIMIT="10",
        DAILY_TOKEN_LIMIT="40",
        DAILY_SPEND_LIMIT_USD="0.5",
        MODEL_PRICES='["gpt-5-mini=2000/2000/2000"]',
        queue={"max_concurrency": 6},
    )
    bridge.say(ADMIN, "/help")
    people = [f"10000000000002{n:02d}" for n in range(6)]
    bridge.deliver(
        webhook_body(*[messaging_text(p, f"{p} asks {n}") for n in range(2) for p in people])
    )
    bridge.settle(60)
    answered = 0
    for psid in people:
        first, second = bridge.texts_to(psid)
        assert first == "The answer is 42." or first.startswith("I'm resting")
        if first == "The answer is 42.":
            answered += 1
            assert second.startswith("You've used today's allowance (40 tokens)")
        else:
            assert second.startswith("I'm resting")
    days = [user_day(bridge, p) for p in people]
    page = page_today(bridge)
    assert page["questions"] == answered == sum(d.get("count", 0) for d in days) >= 5
    assert page["tokens"] == sum(d.get("tokens", 0) for d in days)
    assert page["cost_nusd"] == sum(d.get("cost_nusd", 0) for d in days) >= 0.5 * 10**9
    # Over the cap now: a new person rests, the owner is answered, and was told once.
    bridge.say(BOB, "anyone there?")
    [resting] = bridge.texts_to(BOB)
    assert resting.startswith("I'm resting until tomorrow") and "(00:00 UTC)" in resting
    bridge.say(ADMIN, "owner question")
    assert bridge.texts_to(ADMIN)[-1] == "The answer is 42."
    [alert] = [a for a in owner_alerts(bridge) if "dailySpendLimitUsd" in a]
    assert "cap of $0.50" in alert


def user_day(bridge: Bridge, psid: str) -> dict[str, int]:
    item = bridge.dynamodb.get_item(
        TableName=bridge.table, Key=schema.counter_key(psid, today()), ConsistentRead=True
    ).get("Item", {})
    return {k: int(v["N"]) for k, v in item.items() if "N" in v and k != "expires_at"}
