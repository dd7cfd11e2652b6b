"""An OpenAI-compatible server for the openai SDK (``base_url=<url>/v1``, ``OPENAI_BASE_URL``).

It speaks chat completions, the Responses API and audio transcriptions with the same bodies,
headers and error envelopes as api.openai.com, so the handler's real SDK client is
exercised: retries, timeouts, refusals, truncation and garbage included. The answer text
comes from a pluggable responder; ``echo_responder`` is the offline model that ``make
local`` uses when no API key is configured.

``profile`` makes it behave as a kind of model or provider:

- ``"any"`` (default): takes every parameter, as a permissive server does;
- ``"gpt-5"``: a reasoning model: refuses ``temperature`` and ``top_p`` other than 1 (400
  ``unsupported_value``) and ``max_tokens`` (400 ``unsupported_parameter``);
- ``"classic"``: a non-reasoning model (gpt-4.1): refuses ``reasoning_effort``;
- ``"compatible"``: another provider's quirks: refuses ``max_completion_tokens`` and
  ``reasoning_effort`` in its own words (no code, no param), wants ``max_tokens``, and
  reports ``usage`` without the token details.

``reasoning_tokens`` makes it think: those tokens count against the answer's cap (and show
in ``usage``), so a small cap leaves an empty answer cut for ``length``. ``vision=False``
refuses image parts as a model without vision does. As OpenAI does, it refuses an inline
image that is no PNG, JPEG, GIF or WebP (400 ``invalid_image_format``, no param), and a
Responses API ``max_output_tokens`` below 16 (400 ``integer_below_min_value``).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from local._http import RESET, FaultQueue, LocalServer, Request, Reset, Response, random_token

T = TypeVar("T")
Responder = Callable[[dict[str, Any]], str]

DEFAULT_MODEL = "gpt-5-mini"
DEFAULT_TRANSCRIPT = "What is the weather like today?"
Profile = Literal["any", "gpt-5", "classic", "compatible"]
PROFILES = ("any", "gpt-5", "classic", "compatible")
# What one image costs in input tokens here (OpenAI's count depends on size and detail).
IMAGE_TOKENS = 255
# Audio tokens a second of speech, roughly, for the transcription's usage.
AUDIO_TOKENS_PER_SECOND = 10
# Parameters that belong to one wire format only: sending one to the other is refused.
CHAT_ONLY = ("max_completion_tokens", "max_tokens", "reasoning_effort", "messages")
RESPONSES_ONLY = ("max_output_tokens", "reasoning", "input", "instructions")
Transcriber = Callable[[bytes], str]
ECHO_NOTE = "(Offline echo model: no OpenAI API key is configured, so this reply is an echo.)"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def _content_text(content: Any) -> str:
    """Text of a message's content: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") if isinstance(part, dict) else str(part) for part in content]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


IMAGE_PART_TYPES = ("image_url", "input_image")
# The Responses API's smallest max_output_tokens (400 integer_below_min_value below it).
RESPONSES_MIN_OUTPUT_TOKENS = 16
# The image formats OpenAI opens, by their first bytes (a data URL's, as the handler sends
# them): PNG, JPEG, GIF and WebP ("RIFF....WEBP").
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"RIFF")


def _unreadable_image(body: dict[str, Any]) -> Response | None:
    """A ``data:`` image that is none of the formats OpenAI opens (HEIC, BMP, TIFF, junk):
    400 ``invalid_image_format`` with no parameter named, as OpenAI answers it."""
    for part in image_parts(body):
        url = image_url_of(part)
        if not url.startswith("data:") or ";base64," not in url:
            continue
        encoded = url.split(";base64,", 1)[1][:64]
        try:
            head = base64.b64decode(encoded[: len(encoded) - len(encoded) % 4])
        except (ValueError, binascii.Error):
            head = b"?"
        # (a sample cut shorter than the magic is given the benefit of the doubt)
        if not any(head.startswith(magic) or magic.startswith(head) for magic in IMAGE_MAGIC):
            return openai_error(
                400,
                "You uploaded an unsupported image. Please make sure your image has of one the "
                "following formats: ['png', 'jpeg', 'gif', 'webp'].",
                "invalid_request_error",
                "invalid_image_format",
            )
    return None


def image_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every image part of a request (chat ``image_url`` or Responses ``input_image``)."""
    items = body.get("messages") or body.get("input")
    found = []
    for item in items if isinstance(items, list) else []:
        content = item.get("content") if isinstance(item, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") in IMAGE_PART_TYPES:
                found.append(part)
    return found


def image_url_of(part: dict[str, Any]) -> str:
    """The URL (often a ``data:`` URL) of an image part, in either format."""
    url = part.get("image_url")
    return str(url.get("url", "")) if isinstance(url, dict) else str(url or "")


def last_user_text(body: dict[str, Any]) -> str:
    """The latest user message of a chat-completions or Responses API request."""
    items = body.get("messages")
    if items is None:
        items = body.get("input")
        if isinstance(items, str):
            return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            return _content_text(item.get("content"))
    return ""


def echo_responder(body: dict[str, Any]) -> str:
    """The offline model: echoes the last user message and says it is an echo."""
    return f"Echo: {last_user_text(body)}\n\n{ECHO_NOTE}"


def fixed_responder(text: str) -> Responder:
    """A responder that always answers ``text``."""
    return lambda _body: text


def estimate_tokens(text: str) -> int:
    """About four characters a token: enough for usage figures and max_tokens cut-offs."""
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class _Delay:
    seconds: float


@dataclass(frozen=True)
class _Fail:
    status: int
    retry_after: float | None
    message: str | None
    code: str | None


@dataclass(frozen=True)
class _Malformed:
    body: bytes
    content_type: str


@dataclass(frozen=True)
class _Refuse:
    text: str


_Fault = _Delay | _Fail | _Malformed | _Refuse | Reset


@dataclass(frozen=True)
class Transcription:
    """One request to /v1/audio/transcriptions, as the fake read its multipart form."""

    model: str
    filename: str
    content_type: str
    audio: bytes
    fields: dict[str, str]


def openai_error(
    status: int,
    message: str,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An answer in OpenAI's error envelope."""
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    request_id = {"x-request-id": f"req_{random_token(24)}"}
    return Response.json(status, body, {**request_id, **(headers or {})})


def _fault_error(fail: _Fail, model: str) -> Response:
    """The error the API gives for a status (and code), worded as OpenAI words it."""
    headers = {}
    if fail.retry_after is not None:
        headers["Retry-After"] = f"{fail.retry_after:g}"
    status, code = fail.status, fail.code
    if status == 429 and code == "insufficient_quota":
        message, error_type = (
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
        )
    elif status == 429:
        wait = f"{fail.retry_after:g}s" if fail.retry_after is not None else "20s"
        message, error_type, code = (
            f"Rate limit reached for {model} in organization org-local on requests per min "
            f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {wait}.",
            "requests",
            code or "rate_limit_exceeded",
        )
    elif status == 503:
        message, error_type = (
            "The engine is currently overloaded, please try again later.",
            "server_error",
        )
    elif status >= 500:
        message, error_type = (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        )
    elif status == 401:
        message, error_type, code = (
            "Incorrect API key provided.",
            "invalid_request_error",
            code or "invalid_api_key",
        )
    else:
        message, error_type = "Injected error.", "invalid_request_error"
    return openai_error(status, fail.message or message, error_type, code, None, headers)


class FakeOpenAI(LocalServer):
    """A local OpenAI API: chat completions, the Responses API and the model list.

    ``responder`` turns a request body into the answer text (``answer=`` is the fixed-text
    shorthand; the default is ``echo_responder``). ``api_key``: require this bearer key.
    ``model``: accept only this model (None = any). ``latency``: seconds before each answer.
    """

    name = "openai"

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        answer: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        latency: float = 0.0,
        profile: Profile = "any",
        reasoning_tokens: int = 0,
        vision: bool = True,
        transcript: str | Transcriber = DEFAULT_TRANSCRIPT,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
        if responder is not None and answer is not None:
            raise ValueError("give a responder or an answer, not both")
        self.responder: Responder = (
            fixed_responder(answer) if answer is not None else responder or echo_responder
        )
        self.api_key = api_key
        self.model = model
        self.latency = latency
        self.profile: Profile = profile
        self.reasoning_tokens = reasoning_tokens
        self.vision = vision
        self.transcript: str | Transcriber = transcript
        self._requests: list[dict[str, Any]] = []
        self._transcriptions: list[Transcription] = []
        self._faults: FaultQueue[_Fault] = FaultQueue()

    @property
    def base_url(self) -> str:
        """What the SDK's ``base_url`` (``OPENAI_BASE_URL``) should be."""
        return f"{self.url}/v1"

    # -- fault injection -------------------------------------------------------------------

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Stall before answering (normally) so a client timeout fires first."""
        self._faults.add(_Delay(seconds), times)

    def fail_next(
        self,
        status: int,
        retry_after: float | None = None,
        *,
        times: int = 1,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer an API error: 429 (``code="insufficient_quota"`` for the quota kind), 5xx..."""
        self._faults.add(_Fail(status, retry_after, message, code), times)

    def malformed_next(
        self,
        times: int = 1,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer 200 with a body the SDK cannot use; by default JSON cut off mid-way.

        The openai SDK raises a bare ``json.JSONDecodeError`` (not ``openai.APIError``) for
        unparsable bodies, and accepts well-formed JSON of the wrong shape without complaint
        (e.g. ``body=b'{"choices": []}'``): both are worth a handler test.
        """
        garbage = body if body is not None else b'{"id": "chatcmpl-garbled", "object": "chat.comp'
        self._faults.add(_Malformed(garbage, content_type), times)

    def refuse_next(self, text: str = "I'm sorry, I can't help with that.", times: int = 1) -> None:
        """Answer with ``content: null`` and ``refusal`` set, as a safety refusal does."""
        self._faults.add(_Refuse(text), times)

    def reset_connection_next(self, times: int = 1) -> None:
        """Drop the connection without answering (the SDK raises APIConnectionError)."""
        self._faults.add(RESET, times)

    # -- recordings ------------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the generation requests received, in order (a copy)."""
        with self._changed:
            return list(self._requests)

    @property
    def transcriptions(self) -> list[Transcription]:
        """The transcription requests received, in order (a copy)."""
        with self._changed:
            return list(self._transcriptions)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Block until ``predicate()`` is truthy and return its value; TimeoutError if not."""
        return self._wait_for(predicate, timeout, lambda: f"{len(self.requests)} requests recorded")

    def clear(self) -> None:
        """Forget recorded requests and queued faults."""
        with self._changed:
            self._requests.clear()
            self._transcriptions.clear()
            self._faults.clear()
            self._changed.notify_all()

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | Reset:
        path = request.path.rstrip("/")
        denied = self._check_key(request)
        if path in ("/v1/chat/completions", "/v1/responses") and request.method == "POST":
            return self._generate(request, denied, chat=path.endswith("completions"))
        if path == "/v1/audio/transcriptions" and request.method == "POST":
            return self._transcribe(request, denied)
        if path.startswith("/v1/models") and request.method == "GET":
            return denied or self._models(path.removeprefix("/v1/models").lstrip("/"))
        return openai_error(
            404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error"
        )

    def _check_key(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        scheme, _, key = request.header("Authorization").partition(" ")
        if scheme.lower() == "bearer" and key.strip() == self.api_key:
            return None
        shown = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
        return openai_error(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )

    def _models(self, model_id: str) -> Response:
        known = [self.model] if self.model else [DEFAULT_MODEL]
        entries = [
            {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
            for name in known
        ]
        if not model_id:
            return Response.json(200, {"object": "list", "data": entries})
        for entry in entries:
            if entry["id"] == model_id or self.model is None:
                return Response.json(200, {**entry, "id": model_id})
        return self._no_such_model(model_id)

    @staticmethod
    def _no_such_model(model: str) -> Response:
        return openai_error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )

    def _generate(self, request: Request, denied: Response | None, chat: bool) -> Response | Reset:
        try:
            body = request.json()
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return openai_error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)",
                "invalid_request_error",
            )
        with self._changed:
            self._requests.append(body)
            self._changed.notify_all()
        if denied is not None:
            return denied
        if not self._pause(self.latency):
            return RESET
        fault = self._faults.take()
        if isinstance(fault, _Delay):
            if not self._pause(fault.seconds):
                return RESET
            fault = None
        if isinstance(fault, Reset):
            return RESET
        model = str(body.get("model") or "")
        if isinstance(fault, _Fail):
            return _fault_error(fault, model or DEFAULT_MODEL)
        if isinstance(fault, _Malformed):
            return Response(200, fault.body, {"Content-Type": fault.content_type})
        invalid = self._validate(body, chat)
        if invalid is not None:
            return invalid
        refusal = fault.text if isinstance(fault, _Refuse) else None
        text = "" if refusal is not None else self.responder(body)
        if chat:
            return Response.json(
                200,
                self._chat_completion(body, model, text, refusal),
                {"x-request-id": f"req_{random_token(24)}"},
            )
        return Response.json(
            200,
            self._response(body, model, text, refusal),
            {"x-request-id": f"req_{random_token(24)}"},
        )

    def _validate(self, body: dict[str, Any], chat: bool) -> Response | None:
        model = body.get("model")
        if not model:
            return openai_error(400, "you must provide a model parameter", "invalid_request_error")
        if self.model is not None and model != self.model:
            return self._no_such_model(str(model))
        if body.get("stream"):
            return openai_error(
                400,
                "The local fake does not stream; call without stream=True.",
                "invalid_request_error",
                param="stream",
            )
        refused = self._profile_refusal(body, chat) or self._wire_refusal(body, chat)
        if refused is not None:
            return refused
        cap = body.get("max_output_tokens")
        if not chat and isinstance(cap, int) and cap < RESPONSES_MIN_OUTPUT_TOKENS:
            return openai_error(
                400,
                f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                f"{RESPONSES_MIN_OUTPUT_TOKENS}, but got {cap} instead.",
                "invalid_request_error",
                "integer_below_min_value",
                "max_output_tokens",
            )
        unreadable = _unreadable_image(body)
        if unreadable is not None:
            return unreadable
        temperature = body.get("temperature")
        if temperature is not None and not (
            isinstance(temperature, int | float) and 0 <= temperature <= 2
        ):
            return openai_error(
                400,
                f"Invalid 'temperature': expected a number between 0 and 2, got {temperature!r}.",
                "invalid_request_error",
                "invalid_value",
                "temperature",
            )
        key = "messages" if chat else "input"
        items = body.get(key)
        if not items:
            return openai_error(
                400,
                f"Missing required parameter: '{key}'.",
                "invalid_request_error",
                "missing_required_parameter",
                key,
            )
        if chat:
            if not isinstance(items, list):
                return openai_error(
                    400,
                    "Invalid type for 'messages': expected an array.",
                    "invalid_request_error",
                    "invalid_type",
                    "messages",
                )
            for index, message in enumerate(items):
                role = message.get("role") if isinstance(message, dict) else None
                if role not in ROLES:
                    return openai_error(
                        400,
                        f"Invalid value: {role!r}. Supported values are: 'system', 'assistant', "
                        "'user', 'function', 'tool', and 'developer'.",
                        "invalid_request_error",
                        "invalid_value",
                        f"messages[{index}].role",
                    )
        return None

    def _profile_refusal(self, body: dict[str, Any], chat: bool) -> Response | None:
        """What this kind of model or provider refuses, in its words."""
        profile = self.profile
        if profile == "gpt-5":
            for name in ("temperature", "top_p"):
                value = body.get(name)
                if value is not None and value != 1:
                    return openai_error(
                        400,
                        f"Unsupported value: '{name}' does not support {value!r} with this "
                        "model. Only the default (1) value is supported.",
                        "invalid_request_error",
                        "unsupported_value",
                        name,
                    )
            if "max_tokens" in body:
                return openai_error(
                    400,
                    "Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.",
                    "invalid_request_error",
                    "unsupported_parameter",
                    "max_tokens",
                )
        if profile == "classic":
            name = "reasoning_effort" if chat else "reasoning.effort"
            if body.get("reasoning_effort") is not None or body.get("reasoning") is not None:
                return openai_error(
                    400,
                    f"Unsupported parameter: '{name}' is not supported with this model.",
                    "invalid_request_error",
                    "unsupported_parameter",
                    name,
                )
        if profile == "compatible":
            for name in ("max_completion_tokens", "reasoning_effort"):
                if name in body:
                    return openai_error(
                        400,
                        f"Unrecognized request argument supplied: {name}",
                        "invalid_request_error",
                    )
        if not self.vision and image_parts(body):
            where = "messages" if chat else "input"
            return openai_error(
                400,
                "Invalid content type. image_url is only supported by certain models.",
                "invalid_request_error",
                "invalid_value",
                f"{where}.[1].content.[1].type",
            )
        return None

    @staticmethod
    def _wire_refusal(body: dict[str, Any], chat: bool) -> Response | None:
        """A parameter of the other API, as OpenAI refuses it."""
        for name in RESPONSES_ONLY if chat else CHAT_ONLY:
            if name in body:
                return openai_error(
                    400,
                    f"Unrecognized request argument supplied: {name}",
                    "invalid_request_error",
                    "unknown_parameter",
                    name,
                )
        return None

    def _think(self, text: str, limit: Any) -> tuple[str, int, bool]:
        """(the visible answer, the reasoning tokens spent, cut): thinking comes first and
        counts against ``limit``, as it does for reasoning models."""
        thinking = self.reasoning_tokens
        if isinstance(limit, int) and limit > 0:
            if thinking >= limit:
                return "", limit, True
            text, cut = self._cut(text, limit - thinking)
            return text, thinking, cut
        return text, thinking, False

    @staticmethod
    def _cut(text: str, limit: Any) -> tuple[str, bool]:
        """Truncate to ``limit`` tokens like a max-tokens cut-off; True when cut."""
        if isinstance(limit, int) and limit > 0 and estimate_tokens(text) > limit:
            return text[: limit * 4], True
        return text, False

    # -- transcription --------------------------------------------------------------------

    def _transcribe(self, request: Request, denied: Response | None) -> Response | Reset:
        """``/v1/audio/transcriptions``: a multipart form with the model and the file."""
        form = _multipart(request)
        upload = form.get("file")
        fields = {k: v.decode("utf-8", "replace") for k, (v, _n, _t) in form.items() if k != "file"}
        if upload is not None:
            audio, filename, content_type = upload
            record = Transcription(fields.get("model", ""), filename, content_type, audio, fields)
            with self._changed:
                self._transcriptions.append(record)
                self._changed.notify_all()
        if denied is not None:
            return denied
        if not self._pause(self.latency):
            return RESET
        fault = self._faults.take()
        if isinstance(fault, _Delay):
            if not self._pause(fault.seconds):
                return RESET
            fault = None
        if isinstance(fault, Reset):
            return RESET
        model = fields.get("model", "")
        if isinstance(fault, _Fail):
            return _fault_error(fault, model or "gpt-4o-mini-transcribe")
        if isinstance(fault, _Malformed):
            return Response(200, fault.body, {"Content-Type": fault.content_type})
        if not model:
            return openai_error(400, "you must provide a model parameter", "invalid_request_error")
        if upload is None or not upload[0]:
            return openai_error(
                400,
                "Missing required parameter: 'file'.",
                "invalid_request_error",
                "missing_required_parameter",
                "file",
            )
        audio = upload[0]
        text = self.transcript(audio) if callable(self.transcript) else self.transcript
        seconds = max(1, len(audio) // 16_000)  # about 16 kB a second of compressed speech
        if model == "whisper-1":
            usage: dict[str, Any] = {"type": "duration", "seconds": seconds}
        else:
            audio_tokens = seconds * AUDIO_TOKENS_PER_SECOND
            output = estimate_tokens(text)
            usage = {
                "type": "tokens",
                "input_tokens": audio_tokens,
                "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
                "output_tokens": output,
                "total_tokens": audio_tokens + output,
            }
        return Response.json(
            200, {"text": text, "usage": usage}, {"x-request-id": f"req_{random_token(24)}"}
        )

    def _chat_completion(
        self, body: dict[str, Any], model: str, text: str, refusal: str | None
    ) -> dict[str, Any]:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        text, thought, cut = self._think(text, limit)
        prompt = (
            sum(estimate_tokens(_content_text(m.get("content"))) + 4 for m in body["messages"])
            + 2
            + IMAGE_TOKENS * len(image_parts(body))
        )
        completion = estimate_tokens(refusal or text) + thought
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": thought,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        if self.profile == "compatible":  # the totals only, as many providers report them
            del usage["prompt_tokens_details"], usage["completion_tokens_details"]
        return {
            "id": f"chatcmpl-{random_token(29)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None if refusal is not None else text,
                        "refusal": refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "length" if cut else "stop",
                }
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_local",
        }

    def _response(
        self, body: dict[str, Any], model: str, text: str, refusal: str | None
    ) -> dict[str, Any]:
        text, thought, cut = self._think(text, body.get("max_output_tokens"))
        raw_input = body["input"]
        if isinstance(raw_input, str):
            prompt = estimate_tokens(raw_input)
        else:
            prompt = sum(
                estimate_tokens(_content_text(i.get("content"))) + 4
                for i in raw_input
                if isinstance(i, dict)
            )
        prompt += estimate_tokens(str(body.get("instructions") or ""))
        prompt += IMAGE_TOKENS * len(image_parts(body))
        completion = estimate_tokens(refusal or text) + thought
        content: dict[str, Any] = (
            {"type": "refusal", "refusal": refusal}
            if refusal is not None
            else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        )
        return {
            "id": f"resp_{random_token(40)}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "incomplete" if cut else "completed",
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model,
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{random_token(40)}",
                    "status": "incomplete" if cut else "completed",
                    "role": "assistant",
                    "content": [content] if (text or refusal is not None) else [],
                }
            ],
            "parallel_tool_calls": True,
            "temperature": body.get("temperature", 1.0),
            "tool_choice": "auto",
            "tools": [],
            "top_p": body.get("top_p", 1.0),
            "usage": {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": thought},
                "total_tokens": prompt + completion,
            },
        }


def _multipart(request: Request) -> dict[str, tuple[bytes, str, str]]:
    """A multipart/form-data body: name -> (bytes, file name, content type)."""
    content_type = request.header("Content-Type")
    if "multipart/form-data" not in content_type.lower():
        return {}
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body,
        policy=email.policy.HTTP,
    )
    form: dict[str, tuple[bytes, str, str]] = {}
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        form[name] = (
            payload if isinstance(payload, bytes) else b"",
            part.get_filename() or "",
            part.get_content_type(),
        )
    return form


__all__ = [
    "DEFAULT_MODEL",
    "FakeOpenAI",
    "Responder",
    "Transcription",
    "echo_responder",
    "estimate_tokens",
    "fixed_responder",
    "image_parts",
    "image_url_of",
    "last_user_text",
    "openai_error",
]
