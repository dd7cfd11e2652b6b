import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace

import pytest

from handler import budget, llm
from handler.llm import Completion, ModelError, complete, retry_delay, transcribe
from handler.settings import Settings
from local.model import FakeOpenAI, image_parts


def error_with(headers: dict[str, str]) -> Exception:
    error = Exception("x")
    error.response = SimpleNamespace(headers=headers)  # type: ignore[attr-defined]
    return error


def test_retry_after_from_the_provider_is_honoured():
    assert retry_delay(error_with({"retry-after": "7"}), 0) == 7.0
    assert retry_delay(error_with({"retry-after-ms": "250"}), 0) == 0.25


def test_without_a_hint_the_backoff_grows_and_is_capped():
    plain = Exception("timeout")
    assert [retry_delay(plain, n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert retry_delay(error_with({"retry-after": "soon"}), 1) == 1.0


# -- against the fake OpenAI server ------------------------------------------------------------


KEY = "sk-test-llm-0123456789"
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, message: str) -> list[dict]:
        return [getattr(r, "fields", {}) for r in self.records if r.getMessage() == message]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logging.getLogger("bridge").addHandler(handler)
    yield handler
    logging.getLogger("bridge").removeHandler(handler)


def settings_for(server: FakeOpenAI, **changes: object) -> Settings:
    base = Settings(
        table_name="t",
        openai_base_url=server.base_url,
        openai_max_retries=0,
        openai_timeout_seconds=5,
    )
    return replace(base, **changes)


def ask(settings: Settings, messages: list | None = None) -> Completion:
    return complete(settings, KEY, messages or HELLO, time.monotonic() + 20)


def test_only_what_the_owner_set_is_sent() -> None:
    with FakeOpenAI(api_key=KEY, answer="Hello.") as server:
        completion = ask(settings_for(server))
        [body] = server.requests
    assert completion.text == "Hello." and completion.finish_reason == "stop"
    assert body["reasoning_effort"] == "low" and body["max_completion_tokens"] == 2000
    assert "temperature" not in body and "top_p" not in body and "max_tokens" not in body
    assert completion.usage[0].model == "gpt-5-mini" and completion.usage[0].tokens > 0


def test_a_gpt5_style_model_that_refuses_temperature_is_asked_again_without_it(
    lines: Lines,
) -> None:
    with FakeOpenAI(api_key=KEY, answer="Fine.", profile="gpt-5") as server:
        settings = settings_for(server, temperature=0.7, top_p=0.5)
        first = ask(settings)
        second = ask(settings)
        bodies = server.requests
    assert first.text == second.text == "Fine."
    assert first.dropped == ("temperature", "top_p") and second.dropped == ()
    assert [("temperature" in b, "top_p" in b) for b in bodies] == [
        (True, True),
        (False, True),
        (False, False),
        (False, False),  # the next question: neither, from the start
    ]
    dropped = lines.named("model.parameter_dropped")
    assert [d["parameter"] for d in dropped] == ["temperature", "top_p"]  # once each
    assert all(r.levelname == "ERROR" for r in lines.records if r.getMessage().startswith("model."))
    assert llm.dropped_parameters() == {"temperature", "top_p"}


def test_a_model_without_reasoning_refuses_the_effort_and_is_asked_again() -> None:
    with FakeOpenAI(api_key=KEY, answer="Fine.", profile="classic") as server:
        completion = ask(settings_for(server, model="gpt-4.1-mini"))
        bodies = server.requests
    assert completion.text == "Fine." and completion.dropped == ("reasoning_effort",)
    assert ["reasoning_effort" in b for b in bodies] == [True, False]


def test_a_compatible_provider_with_other_quirks_still_answers() -> None:
    with FakeOpenAI(api_key=KEY, answer="From elsewhere.", profile="compatible") as server:
        completion = ask(settings_for(server, model="llama-local"))
        last = server.requests[-1]
    assert completion.text == "From elsewhere."
    assert set(completion.dropped) == {"max_completion_tokens", "reasoning_effort"}
    assert last["max_tokens"] == 2000 and "max_completion_tokens" not in last
    [usage] = completion.usage  # totals only: no details, no crash
    assert usage.input_tokens > 0 and usage.cached_tokens == 0 and usage.reasoning_tokens == 0


def test_a_refusal_of_something_not_sent_is_no_reason_to_drop_anything() -> None:
    with FakeOpenAI(api_key=KEY) as server:
        server.fail_next(400, message="Unsupported value: 'logprobs' is not supported.")
        with pytest.raises(ModelError) as caught:
            ask(settings_for(server))
    assert caught.value.reason == "status_400" and not caught.value.retryable
    assert llm.dropped_parameters() == frozenset()


def test_reasoning_tokens_count_against_the_cap_and_are_reported() -> None:
    with FakeOpenAI(api_key=KEY, answer="x" * 400, reasoning_tokens=1990) as server:
        completion = ask(settings_for(server))
    assert completion.text == "x" * 40 and completion.finish_reason == "length"
    assert completion.usage[0].reasoning_tokens == 1990
    assert completion.usage[0].output_tokens == 2000
    with FakeOpenAI(api_key=KEY, answer="never seen", reasoning_tokens=5000) as server:
        empty = ask(settings_for(server))
    assert (empty.text, empty.finish_reason) == ("", "length")


def test_the_responses_api_is_asked_in_its_own_format() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]},
    ]
    with FakeOpenAI(api_key=KEY, answer="A cat.") as server:
        completion = ask(settings_for(server, openai_api="responses", temperature=0.3), messages)
        [body] = server.requests
    assert completion.text == "A cat." and completion.finish_reason == "stop"
    assert body["store"] is False and body["max_output_tokens"] == 2000
    assert body["reasoning"] == {"effort": "low"} and body["temperature"] == 0.3
    assert body["input"][1]["content"] == [
        {"type": "input_text", "text": "What is it?"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "auto"},
    ]
    assert len(image_parts(body)) == 1
    assert completion.usage[0].input_tokens > 255  # the image is counted


def test_the_responses_api_incomplete_status_is_a_cut_answer_and_refusals_drop_params() -> None:
    with FakeOpenAI(api_key=KEY, answer="word " * 100, profile="classic") as server:
        completion = ask(settings_for(server, openai_api="responses", max_tokens=16))
        bodies = server.requests
    assert completion.finish_reason == "length" and completion.text == ("word " * 13)[:64]
    assert completion.dropped == ("reasoning_effort",)
    assert ["reasoning" in b for b in bodies] == [True, False]


def test_the_responses_api_is_never_sent_a_cap_below_its_minimum() -> None:
    """OpenAI answers 400 integer_below_min_value for max_output_tokens under 16."""
    with FakeOpenAI(api_key=KEY, answer="Fine.") as server:
        completion = ask(settings_for(server, openai_api="responses", max_tokens=5))
        chat = ask(settings_for(server, max_tokens=5))
        responses_body, chat_body = server.requests
    assert completion.text == "Fine." and responses_body["max_output_tokens"] == 16
    assert chat.text == "Fine." and chat_body["max_completion_tokens"] == 5


def test_a_photo_the_provider_cannot_open_is_not_a_model_without_vision() -> None:
    heic = "data:image/jpeg;base64,AAAAGGZ0eXBoZWljAAAAAG1pZjFoZWlj"  # HEIC bytes, mislabelled
    image = {"type": "image_url", "image_url": {"url": heic}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "?"}, image]}]
    with FakeOpenAI(api_key=KEY) as server, pytest.raises(ModelError) as caught:
        ask(settings_for(server), messages)
    assert (caught.value.reason, caught.value.retryable) == ("image_invalid", False)


def test_a_model_without_vision_refuses_a_photo_for_good() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "?"}, image]}]
    with FakeOpenAI(api_key=KEY, vision=False) as server:
        with pytest.raises(ModelError) as caught:
            ask(settings_for(server), messages)
        assert ask(settings_for(server)).text  # text alone is fine
    assert (caught.value.reason, caught.value.retryable) == ("image_unsupported", False)


def test_insufficient_quota_is_not_retried() -> None:
    with FakeOpenAI(api_key=KEY) as server:
        server.fail_next(429, code="insufficient_quota", times=3)
        with pytest.raises(ModelError) as caught:
            ask(settings_for(server, openai_max_retries=2))
        assert len(server.requests) == 1
    assert (caught.value.reason, caught.value.retryable) == ("insufficient_quota", False)


def test_a_voice_message_is_sent_as_a_multipart_upload_with_the_transcription_model() -> None:
    audio = b"\x00\x00\x00\x18ftypmp42" + b"a" * 48_000
    with FakeOpenAI(api_key=KEY, transcript="Is the shop open?") as server:
        heard = transcribe(
            settings_for(server), KEY, audio, "voice.mp4", "audio/mp4", time.monotonic() + 20
        )
        [upload] = server.transcriptions
    assert heard.text == "Is the shop open?"
    assert (upload.model, upload.filename, upload.content_type) == (
        "gpt-4o-mini-transcribe",
        "voice.mp4",
        "audio/mp4",
    )
    assert upload.audio == audio and upload.fields["response_format"] == "json"
    [usage] = heard.usage
    assert usage.model == "gpt-4o-mini-transcribe" and usage.input_tokens > 0
    assert usage.output_tokens > 0


def test_whisper_is_billed_by_the_minute() -> None:
    with FakeOpenAI(api_key=KEY) as server:
        heard = transcribe(
            settings_for(server, transcription_model="whisper-1"),
            KEY,
            b"a" * 160_000,
            "voice.mp4",
            "audio/mp4",
            time.monotonic() + 20,
        )
    [usage] = heard.usage
    assert usage.audio_seconds == 10 and usage.tokens == 0
    assert budget.cost_nusd(usage, Settings(table_name="t").model_prices) == 1_000_000  # $0.001


# -- pure parts -------------------------------------------------------------------------------


def refusal(status: int, message: str, code: str | None = None, param: str | None = None):
    error = Exception(message)
    error.status_code = status  # type: ignore[attr-defined]
    error.message = message  # type: ignore[attr-defined]
    error.code = code  # type: ignore[attr-defined]
    error.param = param  # type: ignore[attr-defined]
    return error


SENT = ("temperature", "reasoning_effort", "max_completion_tokens")


@pytest.mark.parametrize(
    ("error", "found"),
    [
        (refusal(400, "Unsupported value", "unsupported_value", "temperature"), "temperature"),
        (refusal(400, "x", "unsupported_parameter", "reasoning.effort"), "reasoning_effort"),
        (refusal(400, "Unrecognized request argument supplied: max_completion_tokens"), SENT[2]),
        (refusal(422, "Extra inputs are not permitted: reasoning_effort"), "reasoning_effort"),
        (refusal(400, "temperature must be at most 2"), None),  # not a refusal of the name
        (refusal(400, "Unsupported parameter: 'seed'", "unsupported_parameter", "seed"), None),
        (refusal(500, "Unsupported temperature", "unsupported_value", "temperature"), None),
    ],
)
def test_which_parameter_a_provider_refused(error: Exception, found: str | None) -> None:
    assert llm.refused_parameter(error, SENT) == found


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (refusal(400, "You uploaded an unsupported image.", "invalid_image_format"), "invalid"),
        (refusal(400, "Could not parse the image.", "image_parse_error"), "invalid"),
        (refusal(400, "Image exceeds the 20 MB limit.", "image_too_large"), "invalid"),
        (refusal(400, "Invalid image.", "invalid_image"), "invalid"),
        (refusal(400, "Bad image data.", "invalid_image_data"), "invalid"),  # a code like them
        (refusal(400, "Invalid image: cannot identify image file"), "invalid"),
        (
            refusal(
                400,
                "Invalid content type. image_url is only supported by certain models.",
                "invalid_value",
                "messages.[1].content.[1].type",
            ),
            "unsupported",
        ),
        (refusal(400, "This model does not support image input."), "unsupported"),
    ],
)
def test_a_bad_photo_and_a_model_without_vision_are_told_apart(error: Exception, reason: str):
    assert llm._bad_image(error) == (reason == "invalid")
    assert llm._refuses_images(error) == (reason == "unsupported")


def test_a_responses_answer_stopped_by_the_filter_is_not_a_whole_answer():
    def response(status: str, reason: str | None, text: str) -> SimpleNamespace:
        part = SimpleNamespace(type="output_text", text=text)
        return SimpleNamespace(
            status=status,
            incomplete_details=SimpleNamespace(reason=reason) if reason else None,
            output=[SimpleNamespace(type="message", content=[part] if text else [])],
            usage=None,
        )

    filtered = llm.responses_answer(response("incomplete", "content_filter", "It beg"), "m")
    assert (filtered.text, filtered.finish_reason) == ("It beg", "content_filter")
    cut = llm.responses_answer(response("incomplete", "max_output_tokens", ""), "m")
    assert (cut.text, cut.finish_reason) == ("", "length")
