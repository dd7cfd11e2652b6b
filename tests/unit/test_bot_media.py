"""Photos, stickers and voice messages: what the model is given, what is counted, what the
person is told when it cannot be done, and that no picture or URL is kept."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from handler import replies
from handler.bot import RetryLater
from handler.llm import Transcript, Usage
from handler.media import AUDIO_TYPES, IMAGE_TYPES, MediaError
from tests.support.fakes import model_error
from tests.support.world import ADMIN, ALICE, DAY, NOW, World, make_world, message, photo, voice

JPEG = b"\xff\xd8\xff\xe0" + b"picture" * 100
CAT = "https://cdn.test/v/cat.jpg?oh=sig&oe=1"
NOTE = "https://cdn.test/v/audioclip.mp4?oh=sig&oe=1"


@pytest.fixture
def world() -> World:
    made = make_world()
    made.cdn.host(CAT, JPEG, "image/jpeg")
    made.cdn.host(NOTE, b"\x00\x00\x00\x18ftypmp42" * 50, "audio/mp4")
    return made


def data_url(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def everything_kept(world: World) -> str:
    """What the bot wrote down (claims, history, counters): none of it may hold media."""
    return json.dumps(
        [world.claims.items, world.store.histories, world.store.summaries], default=repr
    )


# -- photos ------------------------------------------------------------------------------------


def test_a_photo_and_its_text_are_one_question_with_the_image_inline(world: World):
    assert world.handle(photo(CAT, text="What breed is this?")) == "answered"
    question = world.model.asked[0][-1]
    assert question == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What breed is this?"},
            {"type": "image_url", "image_url": {"url": data_url(JPEG, "image/jpeg")}},
        ],
    }
    assert world.cdn.fetched == [(CAT, 5 * 1024 * 1024, IMAGE_TYPES)]
    assert world.texts() == ["The answer is 42."]
    assert world.store.counters == {(ALICE, DAY): 1}
    assert world.store.histories[ALICE][0] == {
        "role": "user",
        "content": "[photo] What breed is this?",
    }
    kept = everything_kept(world)
    assert "cdn.test" not in kept and "base64" not in kept


def test_a_photo_alone_is_asked_with_the_default_question(world: World):
    world.handle(photo(CAT))
    text = world.model.asked[0][-1]["content"][0]
    assert text == {"type": "text", "text": replies.DEFAULT_PHOTO_QUESTION}
    assert world.store.histories[ALICE][0]["content"] == "[photo]"


def test_several_photos_go_together(world: World):
    other = world.cdn.host("https://cdn.test/dog.png", b"\x89PNG" + b"d" * 50, "image/png")
    world.handle(photo(CAT, other, text="Which is cuter?"))
    parts = world.model.asked[0][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]
    assert parts[2]["image_url"]["url"].startswith("data:image/png;base64,")
    assert world.store.counters == {(ALICE, DAY): 1}


def test_with_vision_off_a_photo_gets_a_clear_reply_and_is_neither_fetched_nor_counted():
    world = make_world(vision=False)
    assert world.handle(photo(CAT, text="What is this?")) == "vision_off"
    assert world.texts() == [replies.VISION_OFF]
    assert world.cdn.fetched == [] and world.model.asked == [] and world.store.counters == {}


def test_a_model_without_vision_gets_a_clear_reply_and_the_owner_is_told_once(world: World):
    world.store.create_user(ADMIN, NOW)  # wrote just now: inside the 24-hour window
    world.model.script = [model_error("image_unsupported", False)] * 2
    assert world.handle(photo(CAT)) == "vision_unsupported"
    assert world.handle(photo(CAT)) == "vision_unsupported"
    assert world.texts() == [replies.VISION_UNSUPPORTED] * 2
    assert world.store.counters == {}
    [alert] = world.messenger.texts_to(ADMIN)
    assert alert.startswith("Owner alert: the model gpt-5-mini refused a photo")


@pytest.mark.parametrize(
    ("hosted", "reply", "outcome"),
    [
        (MediaError("too_large"), replies.MEDIA_TOO_LARGE, "media_too_large"),
        (MediaError("wrong_type"), replies.PHOTO_FAILED, "media_wrong_type"),
        (MediaError("status_403"), replies.PHOTO_FAILED, "media_status_403"),
    ],
)
def test_a_photo_that_cannot_be_had_is_said_so_and_not_counted(
    world: World, hosted: MediaError, reply: str, outcome: str
):
    world.cdn.files[CAT] = hosted
    assert world.handle(photo(CAT)) == outcome
    assert world.texts() == [reply]
    assert world.model.asked == [] and world.store.counters == {}


def test_a_photo_the_cdn_cannot_serve_now_is_tried_again_then_apologised_for(world: World):
    world.cdn.files[CAT] = MediaError("status_503", retryable=True)
    event = photo(CAT)
    with pytest.raises(RetryLater, match="media:status_503"):
        world.handle(event)
    assert world.texts() == []
    assert world.handle(event, receive=5, last=True) == "media_status_503"
    assert world.texts() == [replies.PHOTO_FAILED]


def test_a_file_over_the_cap_is_refused():
    world = make_world(media_max_bytes=100)
    world.cdn.host(CAT, JPEG, "image/jpeg")
    assert world.handle(photo(CAT)) == "media_too_large"


# -- voice messages ----------------------------------------------------------------------------


def test_a_voice_message_is_transcribed_and_answered_with_what_was_heard_first(world: World):
    world.model.transcripts = [Transcript("What time is it in Tokyo?", (Usage("t", 50, 0, 8),))]
    assert world.handle(voice(NOTE)) == "answered"
    [(audio, name, content_type)] = world.model.heard
    assert (name, content_type) == ("voice.mp4", "audio/mp4") and audio.startswith(b"\x00")
    assert world.cdn.fetched[0][2] == AUDIO_TYPES
    assert world.model.asked[0][-1] == {"role": "user", "content": "What time is it in Tokyo?"}
    assert world.texts() == [
        "\U0001f3a4 \u201cWhat time is it in Tokyo?\u201d\n\nThe answer is 42."
    ]
    assert world.store.counters == {(ALICE, DAY): 1}
    assert world.store.spent[(ALICE, DAY)][0] == 58  # the transcription's tokens
    assert world.store.histories[ALICE] == [
        {"role": "user", "content": "What time is it in Tokyo?"},
        {"role": "assistant", "content": "The answer is 42."},
    ]
    assert "cdn.test" not in everything_kept(world)


def test_what_was_heard_is_quoted_short(world: World):
    world.model.transcripts = ["word " * 100]
    world.handle(voice(NOTE))
    first_line = world.texts()[0].split("\n")[0]
    assert len(first_line) <= len(replies.heard("x" * 500)) <= 130
    assert first_line.endswith("\u2026\u201d")


def test_a_silent_voice_message_gets_a_clear_reply_is_not_counted_but_is_billed(world: World):
    world.model.transcripts = [Transcript("  ", (Usage("t", 40, 0, 0),))]
    assert world.handle(voice(NOTE)) == "voice_empty"
    assert world.texts() == [replies.VOICE_EMPTY]
    assert world.store.counters == {} and world.model.asked == []
    assert world.store.spent[(ALICE, DAY)][0] == 40
    assert world.store.page_day(DAY).tokens == 40 and world.store.page_day(DAY).questions == 0


def test_a_transcription_failure_that_may_pass_is_a_model_failure(world: World):
    world.model.transcripts = [model_error("status_503", True)]
    event = voice(NOTE)
    with pytest.raises(RetryLater, match="model:status_503"):
        world.handle(event)
    assert world.texts() == [replies.MODEL_TROUBLE]
    assert world.handle(event, receive=2) == "answered"
    assert world.store.counters == {(ALICE, DAY): 1}


def test_a_voice_message_the_provider_refuses_gets_a_clear_reply(world: World):
    world.model.transcripts = [model_error("status_400", False)]
    assert world.handle(voice(NOTE)) == "voice_refused"
    assert world.texts() == [replies.VOICE_FAILED]
    assert world.store.counters == {}


# -- other attachments -------------------------------------------------------------------------


def test_the_like_sticker_is_acknowledged_silently(world: World):
    like = replace(message(""), kind="like")
    assert world.handle(like) == "like"
    assert world.messenger.sent == [] and world.store.counters == {}
    assert world.state(like) == "done"


def test_without_vision_the_hint_leaves_photos_out():
    assert "photos" not in replies.media_unsupported(vision=False)
    assert "voice messages" in replies.media_unsupported(vision=False)
