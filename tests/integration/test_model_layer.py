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
    answer, note = bridge.graph.messages_to(ALICE)
    assert answer == {"text": "One short sentence."}
    assert note["text"] == replies.SHORTENED_NOTE
    [button] = note["quick_replies"]
    assert (button["title"], button["payload"]) == ("Continue", "ASK:Please continue.")
    assert bridge.used_today(ALICE) == 1


def test_a_reasoning_model_that_thinks_away_its_budget_is_counted_and_explained(make_bridge):
    bridge = make_bridge(OPENAI_MAX_TOKENS="100")
    bridge.model.reasoning_tokens = 500
    bridge.say(ALICE, "a hard one")
    assert bridge.texts_to(ALICE) == [replies.EMPTY_ANSWER]
    assert bridge.used_today(ALICE) == 1
    assert page_today(bridge)["tokens"] >= 100


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


def test_a_photo_alone_is_asked_what_it_shows_and_a_sticker_too(bridge: Bridge):
    photo = bridge.graph.host_attachment(JPEG, "image/jpeg")
    sticker = bridge.graph.host_attachment(b"\x89PNG" + b"s" * 100, "image/png")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", photo)))
    bridge.settle()
    bridge.deliver(
        webhook_body(messaging_attachment(BOB, "image", sticker, sticker_id=144884852352448))
    )
    bridge.settle()
    for request in bridge.model.requests:
        assert last_user_text(request) == replies.DEFAULT_PHOTO_QUESTION
        assert len(image_parts(request)) == 1
    assert len(bridge.model.requests) == 2


def test_the_like_sticker_is_acknowledged_silently(bridge: Bridge):
    like = bridge.graph.host_attachment(b"\x89PNG", "image/png")
    bridge.deliver(
        webhook_body(messaging_attachment(ALICE, "image", like, sticker_id=369239263222822))
    )
    bridge.settle()
    assert bridge.texts_to(ALICE) == [] and bridge.model.requests == []
    assert bridge.used_today(ALICE) == 0 and bridge.graph.downloads == []


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
        bridge.deliver(webhook_body(messaging_attachment(psid, "image", url)))
        bridge.settle()
        assert bridge.texts_to(psid) == [replies.VISION_UNSUPPORTED]
    [alert] = owner_alerts(bridge)
    assert "refused a photo" in alert and "vision false" in alert
    assert bridge.used_today(ALICE) == 0


def test_an_expired_photo_url_is_said_so_and_not_counted(bridge: Bridge):
    url = bridge.graph.host_attachment(JPEG, "image/jpeg")
    bridge.graph.expire_attachment(url)
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", url)))
    bridge.settle()
    assert bridge.texts_to(ALICE) == [replies.PHOTO_FAILED]
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0


def test_a_photo_over_the_size_cap_is_refused(make_bridge):
    bridge = make_bridge(MEDIA_MAX_MB="1")
    url = bridge.graph.host_attachment(b"\xff\xd8" + b"x" * (1024 * 1024 + 1), "image/jpeg")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", url)))
    bridge.settle()
    assert bridge.texts_to(ALICE) == [replies.MEDIA_TOO_LARGE]


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
