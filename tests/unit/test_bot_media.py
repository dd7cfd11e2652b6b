"""Photos, stickers and voice messages: what the model is given, what is counted, what the
person is told when it cannot be done, and that no picture or URL is kept."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from handler import replies
from handler.bot import RetryLater
from handler.events import PHOTO_WAIT_SECONDS
from handler.llm import Transcript, Usage
from handler.media import AUDIO_TYPES, IMAGE_TYPES, MAX_VOICE_SECONDS, MediaError
from handler.takeover import Pause
from tests.support.fakes import model_error
from tests.support.world import (
    ADMIN,
    ALICE,
    BOB,
    DAY,
    NOW,
    World,
    make_world,
    message,
    photo,
    postback,
    voice,
)
from tests.unit.test_media import mp4

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


def test_a_photo_alone_waits_for_the_next_message_which_asks_about_it_as_one_question(
    world: World,
):
    """Messenger delivers the photo and "what is this?" as two webhook calls a second apart:
    the photo gets a short uncounted reply and waits; the text is asked with it."""
    assert world.handle(photo(CAT)) == "photo_kept"
    [kept] = world.messenger.messages_to(ALICE)
    assert kept["text"] == replies.PHOTO_KEPT
    assert [q["title"] for q in kept["quick_replies"]] == ["Describe it"]
    assert world.model.asked == [] and world.cdn.fetched == [] and world.store.counters == {}
    assert world.store.photos[ALICE] == ((CAT,), int(NOW.timestamp()) + PHOTO_WAIT_SECONDS)
    assert world.handle(message("What breed is this?")) == "answered"
    [asked] = world.model.asked
    assert asked[-1]["content"] == [
        {"type": "text", "text": "What breed is this?"},
        {"type": "image_url", "image_url": {"url": data_url(JPEG, "image/jpeg")}},
    ]
    assert world.store.counters == {(ALICE, DAY): 1}  # one question for the two messages
    assert world.store.histories[ALICE][0]["content"] == "[photo] What breed is this?"
    assert ALICE not in world.store.photos  # used up
    world.handle(message("And now?"))
    assert len(image_parts(world.model.asked[-1])) == 0


def image_parts(messages: list) -> list:
    content = messages[-1]["content"]
    return [p for p in content if p.get("type") == "image_url"] if isinstance(content, list) else []


def test_describe_it_asks_about_the_waiting_photo_and_says_so_when_it_is_gone(world: World):
    world.handle(photo(CAT))
    quick = world.messenger.messages_to(ALICE)[0]["quick_replies"][0]
    tap = replace(message(quick["title"]), kind="quick_reply", payload=quick["payload"])
    assert world.handle(tap) == "answered"
    assert world.model.asked[0][-1]["content"][0] == {
        "type": "text",
        "text": replies.DESCRIBE_QUESTION,
    }
    assert len(image_parts(world.model.asked[0])) == 1
    again = replace(message(quick["title"]), kind="quick_reply", payload=quick["payload"])
    assert world.handle(again) == "photo_gone"  # used already: not asked blind
    assert world.texts()[-1] == replies.PHOTO_GONE and len(world.model.asked) == 1


def test_a_waiting_photo_is_let_go_after_its_time_on_reset_and_on_delete(world: World):
    world.handle(photo(CAT))
    world.store.photos[ALICE] = ((CAT,), int(NOW.timestamp()))  # its time is up
    world.handle(message("What is this?"))
    assert image_parts(world.model.asked[-1]) == []  # too late: the text alone
    world.handle(photo(CAT))
    world.handle(message("/reset"))
    assert ALICE not in world.store.photos
    world.handle(photo(CAT))
    world.handle(postback("DELETE_CONFIRMED"))
    assert ALICE not in world.store.photos


def test_a_button_the_bot_does_not_know_is_asked_with_the_waiting_photo(world: World):
    world.handle(photo(CAT))
    assert world.handle(postback("MENU_WHAT_IS_IT", title="What is this?")) == "answered"
    assert world.model.asked[0][-1]["content"][0] == {"type": "text", "text": "What is this?"}
    assert len(image_parts(world.model.asked[0])) == 1
    world.handle(photo(CAT))
    assert world.handle(message("/usage")) == "command:usage"  # a command leaves it waiting
    assert world.store.photos[ALICE][0] == (CAT,)


def test_photos_sent_one_by_one_are_asked_about_together(world: World):
    dog = world.cdn.host("https://cdn.test/dog.png", b"\x89PNG" + b"d" * 50, "image/png")
    world.handle(photo(CAT))
    world.handle(photo(dog))
    assert world.store.counters == {}
    world.handle(message("Which is cuter?"))
    assert len(image_parts(world.model.asked[0])) == 2
    assert world.store.counters == {(ALICE, DAY): 1}


def test_a_waiting_photo_does_not_pass_the_limit_the_pause_or_a_block(world: World):
    world.store.counters[(ALICE, DAY)] = 3  # the daily limit of this world
    assert world.handle(photo(CAT)) == "over_limit"
    assert ALICE not in world.store.photos and world.model.asked == []
    del world.store.counters[(ALICE, DAY)]
    world.handle(photo(CAT))
    world.store.counters[(ALICE, DAY)] = 3
    assert world.handle(message("What is it?")) == "over_limit"
    assert world.model.asked == [] and ALICE not in world.store.photos
    del world.store.counters[(ALICE, DAY)]
    world.handle(photo(CAT))
    world.store.pauses[ALICE] = Pause(int(NOW.timestamp()) + 600, "owner")
    assert world.handle(message("What is it?")) == "paused"
    del world.store.pauses[ALICE]
    assert ALICE not in world.store.photos  # the held message let it go
    world.store.set_status(BOB, "blocked", NOW)
    assert world.handle(photo(CAT, psid=BOB)) == "blocked"
    assert BOB not in world.store.photos and world.model.asked == []


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
    assert world.handle(photo(CAT)) == "vision_off"
    assert world.store.photos == {}


def test_a_model_without_vision_gets_a_clear_reply_and_the_owner_is_told_once(world: World):
    world.store.create_user(ADMIN, NOW)  # wrote just now: inside the 24-hour window
    world.model.script = [model_error("image_unsupported", False)] * 2
    assert world.handle(photo(CAT, text="?")) == "vision_unsupported"
    assert world.handle(photo(CAT, text="?")) == "vision_unsupported"
    assert world.texts() == [replies.VISION_UNSUPPORTED] * 2
    assert world.store.counters == {}
    [alert] = world.messenger.texts_to(ADMIN)
    assert alert.startswith("Owner alert: the model gpt-5-mini refused a photo")


def test_a_photo_the_provider_cannot_open_is_said_so_without_blaming_the_model(world: World):
    """OpenAI's 400 invalid_image_format (HEIC, a broken file): the person is told to send a
    JPEG or PNG; no owner alert, no failure counted, not counted, vision stays on."""
    world.store.create_user(ADMIN, NOW)
    world.model.script = [model_error("image_invalid", False)]
    assert world.handle(photo(CAT, text="What is it?")) == "photo_unreadable"
    assert world.texts() == [replies.PHOTO_UNREADABLE]
    assert world.messenger.texts_to(ADMIN) == [] and world.store.page_day(DAY).failures == {}
    assert world.store.counters == {}
    assert world.handle(photo(CAT, text="And this one?")) == "answered"


@pytest.mark.parametrize(
    ("hosted", "reply", "outcome"),
    [
        (MediaError("too_large"), replies.MEDIA_TOO_LARGE, "media_too_large"),
        (MediaError("wrong_type"), replies.PHOTO_UNREADABLE, "media_wrong_type"),
        (MediaError("status_403"), replies.PHOTO_FAILED, "media_status_403"),
    ],
)
def test_a_photo_that_cannot_be_had_is_said_so_and_not_counted(
    world: World, hosted: MediaError, reply: str, outcome: str
):
    world.cdn.files[CAT] = hosted
    assert world.handle(photo(CAT, text="?")) == outcome
    assert world.texts() == [reply]
    assert world.model.asked == [] and world.store.counters == {}


def test_a_photo_of_a_type_the_model_cannot_open_is_refused_before_it(world: World):
    heic = world.cdn.host(
        "https://cdn.test/v/IMG_0001.heic", b"\x00\x00\x00\x18ftypheic", "image/heic"
    )
    assert world.handle(photo(heic, text="What is it?")) == "media_wrong_type"
    assert world.texts() == [replies.PHOTO_UNREADABLE] and world.model.asked == []


def test_a_photo_the_cdn_cannot_serve_now_is_tried_again_then_apologised_for(world: World):
    world.cdn.files[CAT] = MediaError("status_503", retryable=True)
    event = photo(CAT, text="?")
    with pytest.raises(RetryLater, match="media:status_503"):
        world.handle(event)
    assert world.texts() == []
    assert world.handle(event, receive=5, last=True) == "media_status_503"
    assert world.texts() == [replies.PHOTO_FAILED]


def test_a_file_over_the_cap_is_refused():
    world = make_world(media_max_bytes=100)
    world.cdn.host(CAT, JPEG, "image/jpeg")
    assert world.handle(photo(CAT, text="?")) == "media_too_large"


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


def test_a_voice_message_over_the_length_cap_is_refused_before_transcription(world: World):
    world.cdn.host(NOTE, mp4(MAX_VOICE_SECONDS + 1), "audio/mp4")
    assert world.handle(voice(NOTE)) == "voice_too_long"
    assert world.texts() == [replies.voice_too_long(MAX_VOICE_SECONDS)]
    assert "5 minutes" in world.texts()[0]
    assert world.model.heard == [] and world.store.counters == {}
    world.cdn.host(NOTE, mp4(MAX_VOICE_SECONDS - 1), "audio/mp4")  # within it
    assert world.handle(voice(NOTE)) == "answered"


def test_a_voice_message_served_as_octet_stream_is_taken(world: World):
    world.cdn.host(NOTE, mp4(20), "application/octet-stream")
    assert world.handle(voice(NOTE)) == "answered"
    assert len(world.model.heard) == 1


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


def test_a_sticker_alone_is_looked_at_now(world: World):
    """A sticker says something by itself: not kept waiting for a question as a photo is.
    (It is the person's next message: a photo waiting before it is let go.)"""
    world.handle(photo(CAT))
    sticker = replace(photo(CAT), media=(("sticker", CAT),))
    assert world.handle(sticker) == "answered"
    question = world.model.asked[0][-1]["content"]
    assert question[0] == {"type": "text", "text": replies.DEFAULT_PHOTO_QUESTION}
    assert len(question) == 2 and world.store.counters == {(ALICE, DAY): 1}
    assert ALICE not in world.store.photos


def test_the_like_sticker_is_acknowledged_silently(world: World):
    like = replace(message(""), kind="like")
    assert world.handle(like) == "like"
    assert world.messenger.sent == [] and world.store.counters == {}
    assert world.state(like) == "done"


def test_without_vision_the_hint_leaves_photos_out():
    assert "photos" not in replies.media_unsupported(vision=False)
    assert "voice messages" in replies.media_unsupported(vision=False)
