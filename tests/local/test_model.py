"""FakeOpenAI through the real openai SDK."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from local.model import (
    ECHO_NOTE,
    FakeOpenAI,
    echo_responder,
    image_parts,
    image_url_of,
    last_user_text,
)

KEY = "sk-test-0123456789"
MODEL = "gpt-5-mini"
HELLO = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello model"},
]


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        yield server


def sdk(server: FakeOpenAI, max_retries: int = 0, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=KEY, base_url=f"{server.url}/v1", max_retries=max_retries, timeout=timeout
    )


def ask(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=HELLO, **extra)


# -- success ---------------------------------------------------------------------------------


def test_chat_completion_through_the_sdk(model: FakeOpenAI) -> None:
    completion = ask(sdk(model), temperature=0.7, max_completion_tokens=800)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert isinstance(completion.created, int)
    [choice] = completion.choices
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == f"Echo: Hello model\n\n{ECHO_NOTE}"
    assert choice.message.refusal is None
    usage = completion.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    [body] = model.requests
    assert body["model"] == MODEL and body["messages"] == HELLO
    assert body["temperature"] == 0.7 and body["max_completion_tokens"] == 800


def test_raw_wire_format(model: FakeOpenAI) -> None:
    answer = requests.post(
        f"{model.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": MODEL, "messages": HELLO, "max_tokens": 50},
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.headers["x-request-id"].startswith("req_")
    body = answer.json()
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    choice = body["choices"][0]
    assert choice["message"]["refusal"] is None and choice["logprobs"] is None
    assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_fixed_answer_and_custom_responder() -> None:
    with FakeOpenAI(answer="The answer is 42.") as fixed:
        assert ask(sdk(fixed)).choices[0].message.content == "The answer is 42."
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(body)
        return f"{len(body['messages'])} messages"

    with FakeOpenAI(responder) as custom:
        assert ask(sdk(custom)).choices[0].message.content == "2 messages"
        custom.responder = lambda body: "swapped"
        assert ask(sdk(custom)).choices[0].message.content == "swapped"
    assert seen[0]["messages"] == HELLO
    with pytest.raises(ValueError):
        FakeOpenAI(responder, answer="both")


def test_echo_responder_reads_the_last_user_message() -> None:
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "part"}],
        },
    ]
    assert echo_responder({"messages": history}).startswith("Echo: second part\n")
    assert "offline echo model" in echo_responder({"messages": history}).lower()
    assert last_user_text({"input": "plain input"}) == "plain input"
    assert last_user_text({"messages": []}) == ""


def test_sdk_takes_the_base_url_from_the_environment(
    model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)
    client = openai.OpenAI(api_key=KEY, max_retries=0)
    assert ask(client).choices[0].message.content.startswith("Echo:")


def test_models_list_and_retrieve(model: FakeOpenAI) -> None:
    client = sdk(model)
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve("gpt-4.1").id == "gpt-4.1"  # any model when none is fixed


def test_a_fixed_model_rejects_others() -> None:
    with FakeOpenAI(model="local-echo") as server:
        client = sdk(server)
        assert [m.id for m in client.models.list().data] == ["local-echo"]
        with pytest.raises(openai.NotFoundError) as caught:
            ask(client)
        assert caught.value.code == "model_not_found"
        assert client.chat.completions.create(model="local-echo", messages=HELLO).choices


def test_responses_api(model: FakeOpenAI) -> None:
    response = sdk(model).responses.create(
        model=MODEL, instructions="Be brief.", input=[{"role": "user", "content": "hey"}]
    )
    assert response.status == "completed"
    assert response.output_text == f"Echo: hey\n\n{ECHO_NOTE}"
    assert response.usage is not None and response.usage.total_tokens > 0


def test_max_tokens_cuts_the_answer(model: FakeOpenAI) -> None:
    model.responder = lambda body: "word " * 100
    choice = ask(sdk(model), max_tokens=10).choices[0]
    assert choice.finish_reason == "length"
    assert len(choice.message.content) == 40
    response = sdk(model).responses.create(model=MODEL, input="x", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


# -- validation ------------------------------------------------------------------------------


def test_wrong_api_key_is_401(model: FakeOpenAI) -> None:
    client = openai.OpenAI(api_key="sk-wrong-key-999", base_url=model.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(client)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    raw = requests.post(f"{model.base_url}/chat/completions", json={}, timeout=5).json()
    assert raw["error"]["type"] == "invalid_request_error"
    assert raw["error"]["code"] == "invalid_api_key"
    assert raw["error"]["param"] is None
    assert raw["error"]["message"].startswith("Incorrect API key provided")


def test_without_api_key_any_key_works() -> None:
    with FakeOpenAI() as server:
        client = openai.OpenAI(api_key="anything", base_url=server.base_url, max_retries=0)
        assert ask(client).choices


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": HELLO}, None),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": HELLO, "temperature": 3}, "temperature"),
        ({"model": MODEL, "messages": HELLO, "stream": True}, "stream"),
    ],
)
def test_bad_requests_are_400(model: FakeOpenAI, body: dict[str, Any], param: str | None) -> None:
    answer = requests.post(
        f"{model.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json=body,
        timeout=5,
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_unknown_path_is_404(model: FakeOpenAI) -> None:
    answer = requests.post(f"{model.url}/v1/completions", json={}, timeout=5)
    assert answer.status_code == 404


# -- faults ----------------------------------------------------------------------------------


def test_delay_next_makes_the_sdk_time_out(model: FakeOpenAI) -> None:
    model.delay_next(1.0)
    with pytest.raises(openai.APITimeoutError):
        ask(sdk(model, timeout=0.2))
    assert ask(sdk(model)).choices[0].message.content  # the next one is on time


def test_rate_limit_with_retry_after(model: FakeOpenAI) -> None:
    model.fail_next(429, retry_after=2)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(sdk(model))
    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    assert error.response.headers["retry-after"] == "2"


def test_sdk_retries_after_retry_after(model: FakeOpenAI) -> None:
    model.fail_next(429, retry_after=0.1)
    started = time.monotonic()
    assert ask(sdk(model, max_retries=1)).choices
    assert time.monotonic() - started >= 0.1
    assert len(model.requests) == 2


def test_insufficient_quota(model: FakeOpenAI) -> None:
    model.fail_next(429, code="insufficient_quota")
    with pytest.raises(openai.RateLimitError) as caught:
        ask(sdk(model))
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(model: FakeOpenAI, status: int) -> None:
    model.fail_next(status, times=2)
    client = sdk(model)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client)
        assert caught.value.status_code == status
        assert caught.value.type == "server_error"
    assert ask(client).choices


def test_malformed_body_raises_a_json_error_not_an_api_error(model: FakeOpenAI) -> None:
    model.malformed_next()
    with pytest.raises(json.JSONDecodeError):
        ask(sdk(model))
    # A non-JSON content type is worse: the SDK hands back the raw text, not a completion.
    model.malformed_next(body=b"<html>502 Bad Gateway</html>", content_type="text/html")
    assert ask(sdk(model)) == "<html>502 Bad Gateway</html>"
    model.malformed_next(body=b'{"choices": []}')
    assert ask(sdk(model)).choices == []  # the SDK does not check the shape


def test_refusal(model: FakeOpenAI) -> None:
    model.refuse_next("I can't help with that.")
    message = ask(sdk(model)).choices[0].message
    assert message.content is None
    assert message.refusal == "I can't help with that."
    model.refuse_next("No.")
    response = sdk(model).responses.create(model=MODEL, input="x")
    assert response.output[0].content[0].type == "refusal"  # type: ignore[union-attr]
    assert response.output_text == ""


def test_reset_connection(model: FakeOpenAI) -> None:
    model.reset_connection_next()
    with pytest.raises(openai.APIConnectionError):
        ask(sdk(model))
    assert ask(sdk(model)).choices


def test_faults_are_taken_in_order(model: FakeOpenAI) -> None:
    model.fail_next(500)
    model.refuse_next()
    client = sdk(model)
    with pytest.raises(openai.InternalServerError):
        ask(client)
    assert ask(client).choices[0].message.refusal
    assert ask(client).choices[0].message.content


def test_auth_is_checked_before_faults(model: FakeOpenAI) -> None:
    model.fail_next(500)
    bad = openai.OpenAI(api_key="sk-nope-nope", base_url=model.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        ask(bad)
    with pytest.raises(openai.InternalServerError):
        ask(sdk(model))


# -- recording, waiting, latency -------------------------------------------------------------


def test_wait_for_sees_requests_from_other_threads(model: FakeOpenAI) -> None:
    thread = threading.Thread(target=lambda: (time.sleep(0.1), ask(sdk(model))))
    thread.start()
    bodies = model.wait_for(lambda: model.requests, timeout=5)
    thread.join()
    assert bodies[0]["messages"] == HELLO
    with pytest.raises(TimeoutError):
        model.wait_for(lambda: len(model.requests) > 5, timeout=0.1)


def test_latency_is_added_to_every_answer() -> None:
    with FakeOpenAI(latency=0.2) as server:
        started = time.monotonic()
        ask(sdk(server))
        assert time.monotonic() - started >= 0.2


def test_clear(model: FakeOpenAI) -> None:
    ask(sdk(model))
    model.fail_next(500)
    model.clear()
    assert model.requests == []
    assert ask(sdk(model)).choices


# -- kinds of models and providers -----------------------------------------------------------


def test_a_gpt5_style_model_refuses_temperature_and_max_tokens_as_openai_does() -> None:
    with FakeOpenAI(profile="gpt-5") as server:
        client = sdk(server)
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, temperature=0.7)
        assert (caught.value.code, caught.value.param) == ("unsupported_value", "temperature")
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, max_tokens=10)
        assert (caught.value.code, caught.value.param) == ("unsupported_parameter", "max_tokens")
        assert ask(client, temperature=1, reasoning_effort="low", max_completion_tokens=99)


def test_a_classic_model_refuses_reasoning_effort_in_both_apis() -> None:
    with FakeOpenAI(profile="classic") as server:
        client = sdk(server)
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, reasoning_effort="low")
        assert caught.value.param == "reasoning_effort"
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model=MODEL, input="x", reasoning={"effort": "low"})
        assert caught.value.param == "reasoning.effort"
        assert ask(client, temperature=0.2).choices


def test_a_compatible_provider_has_its_own_quirks() -> None:
    with FakeOpenAI(profile="compatible") as server:
        client = sdk(server)
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, max_completion_tokens=10)
        assert caught.value.code is None and caught.value.param is None
        assert "max_completion_tokens" in caught.value.message
        usage = ask(client, max_tokens=10).usage
        assert usage is not None and usage.prompt_tokens_details is None
        assert usage.completion_tokens_details is None


def test_reasoning_tokens_are_spent_first_and_reported() -> None:
    with FakeOpenAI(answer="a" * 100, reasoning_tokens=30) as server:
        choice = ask(sdk(server), max_completion_tokens=35)
        response = sdk(server).responses.create(model=MODEL, input="x", max_output_tokens=20)
    assert choice.choices[0].message.content == "a" * 20
    assert choice.choices[0].finish_reason == "length"
    assert choice.usage.completion_tokens_details.reasoning_tokens == 30
    assert choice.usage.completion_tokens == 35
    assert response.status == "incomplete" and response.output_text == ""
    assert response.usage.output_tokens_details.reasoning_tokens == 20


def test_image_parts_are_taken_and_counted_unless_the_model_has_no_vision() -> None:
    photo = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    messages = [{"role": "user", "content": photo}]
    with FakeOpenAI(answer="A dot.") as server:
        client = sdk(server)
        plain = client.chat.completions.create(model=MODEL, messages=HELLO)
        seen = client.chat.completions.create(model=MODEL, messages=messages)
        [_, body] = server.requests
    assert seen.choices[0].message.content == "A dot."
    assert seen.usage.prompt_tokens - plain.usage.prompt_tokens > 200
    assert image_url_of(image_parts(body)[0]).startswith("data:image/png;base64,")
    with FakeOpenAI(vision=False) as blind, pytest.raises(openai.BadRequestError) as caught:
        sdk(blind).chat.completions.create(model=MODEL, messages=messages)
    assert "image_url is only supported by certain models" in caught.value.message


def test_each_api_refuses_the_other_ones_parameters() -> None:
    with FakeOpenAI() as server:
        with pytest.raises(openai.BadRequestError):
            ask(sdk(server), extra_body={"max_output_tokens": 5})
        with pytest.raises(openai.BadRequestError):
            sdk(server).responses.create(model=MODEL, input="x", extra_body={"max_tokens": 5})


def test_transcriptions_read_the_multipart_upload_and_report_usage() -> None:
    with FakeOpenAI(api_key=KEY, transcript=lambda audio: f"{len(audio)} bytes") as server:
        client = sdk(server)
        heard = client.audio.transcriptions.create(
            model="gpt-4o-mini-transcribe", file=("v.mp4", b"a" * 32_000, "audio/mp4")
        )
        whisper = client.audio.transcriptions.create(
            model="whisper-1", file=("v.mp3", b"a" * 32_000, "audio/mpeg")
        )
        first, second = server.transcriptions
        server.fail_next(503)
        with pytest.raises(openai.InternalServerError):
            client.audio.transcriptions.create(
                model="whisper-1", file=("v.mp3", b"a", "audio/mpeg")
            )
    assert heard.text == "32000 bytes"
    assert heard.usage.type == "tokens" and heard.usage.input_tokens == 20
    assert whisper.usage.type == "duration" and whisper.usage.seconds == 2
    assert (first.model, first.filename, first.content_type) == (
        "gpt-4o-mini-transcribe",
        "v.mp4",
        "audio/mp4",
    )
    assert second.model == "whisper-1" and second.audio == b"a" * 32_000


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="profile"):
        FakeOpenAI(profile="gpt-9")  # type: ignore[arg-type]
