"""The model calls, through the openai SDK, imported only here so the webhook path stays light:
one answer (Chat Completions or the Responses API) and one transcription.

Retries are ours, not the SDK's: each one must fit in the time the invocation has left, so
a long ``Retry-After`` or a slow provider ends in an apology, never in a Lambda timeout.

Only what the owner set is sent: no ``temperature`` or ``top_p`` unless configured (GPT-5 and
o-series models refuse any but their own). A parameter the provider refuses anyway (400
``unsupported_value`` / ``unsupported_parameter``, or a compatible provider's own words for
it) is logged once, dropped for the rest of the container's life, and the request made again
at once: a refused request costs nothing and the person still gets an answer. The caller
learns which parameters were dropped (``Completion.dropped``) and tells the owner.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from .logs import log
from .settings import RESPONSES_MIN_OUTPUT_TOKENS, Settings

T = TypeVar("T")
Message = dict[str, Any]

MIN_ATTEMPT_SECONDS = 2.0  # an attempt with less time than this is not worth starting
# What OpenAI calls a parameter the model does not take (400, with the parameter's name).
UNSUPPORTED_CODES = frozenset({"unsupported_value", "unsupported_parameter"})
# How compatible providers word the same refusal when they give no code.
_REFUSAL_WORDS = (
    "unsupported",
    "not supported",
    "unrecognized",
    "unknown parameter",
    "not allowed",
    "extra inputs",
    "does not support",
    "not permitted",
)
# What OpenAI answers (400, no parameter named) for a photo it cannot open: the photo's fault,
# not the model's; and how providers word it without a code.
BAD_IMAGE_CODES = frozenset(
    {"invalid_image_format", "image_parse_error", "invalid_image", "image_too_large"}
)
_BAD_IMAGE_WORDS = (
    "unsupported image",
    "invalid image",
    "could not process image",
    "image could not be",
    "image is too large",
    "image exceeds",
    "failed to decode",
)
# The answer's length cap, by preference: GPT-5 and o-series take only the first, older
# compatible servers only the second.
CHAT_CAPS = ("max_completion_tokens", "max_tokens")
RESPONSES_CAPS = ("max_output_tokens",)

# Parameters the provider refused, for the rest of this container's life.
_dropped: set[str] = set()
_dropped_lock = threading.Lock()


class ModelError(RuntimeError):
    """The model gave no answer in the time there was. ``reason`` is loggable; ``retryable``
    says whether asking again later may help (the queue backs the message off)."""

    def __init__(self, reason: str, retryable: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.dropped: tuple[str, ...] = ()  # parameters first refused during this call


@dataclass(frozen=True)
class Usage:
    """What one call was billed, as the provider reports it."""

    model: str
    input_tokens: int = 0  # cached ones included
    cached_tokens: int = 0
    output_tokens: int = 0  # reasoning ones included
    reasoning_tokens: int = 0
    audio_seconds: float = 0.0  # transcription billed by duration (whisper-1)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Completion:
    """The model's answer (HTTP 200, so billed), possibly empty."""

    text: str
    finish_reason: str | None = None  # "length": the answer was cut at the token cap
    usage: tuple[Usage, ...] = ()
    dropped: tuple[str, ...] = ()  # parameters first refused during this call


@dataclass(frozen=True)
class Transcript:
    """What a voice message says (HTTP 200, so billed), possibly nothing."""

    text: str
    usage: tuple[Usage, ...] = ()


def dropped_parameters() -> frozenset[str]:
    with _dropped_lock:
        return frozenset(_dropped)


def forget_container_state() -> None:
    """Forget the dropped parameters, as a new container would (tests, ``app.reset``)."""
    with _dropped_lock:
        _dropped.clear()


def _drop(parameter: str) -> bool:
    """Stop sending ``parameter``; True the first time in this container."""
    with _dropped_lock:
        if parameter in _dropped:
            return False
        _dropped.add(parameter)
        return True


@functools.cache
def _client(api_key: str, base_url: str | None) -> Any:
    import openai  # about half a second of imports: paid by the worker, never the webhook

    return openai.OpenAI(
        api_key=api_key or "unused",
        base_url=base_url,  # None lets the SDK read OPENAI_BASE_URL, else api.openai.com
        max_retries=0,
    )


# -- errors -----------------------------------------------------------------------------------


def _status(error: Exception) -> int | None:
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


def _message(error: Exception) -> str:
    message = getattr(error, "message", None)
    return message if isinstance(message, str) else str(error)


def _canonical(parameter: str) -> str:
    """The request's name for what an error names (``reasoning.effort`` -> reasoning_effort)."""
    name = parameter.strip().strip("'\"`")
    if name in ("reasoning", "reasoning.effort"):
        return "reasoning_effort"
    return name


def refused_parameter(error: Exception, sent: tuple[str, ...]) -> str | None:
    """Which of the optional parameters ``sent`` the provider refused, if that is what the
    error says: OpenAI names it in ``param`` with an ``unsupported_*`` code; compatible
    providers often only in the message."""
    if _status(error) not in (400, 422):
        return None
    code = getattr(error, "code", None)
    param = getattr(error, "param", None)
    message = _message(error)
    lowered = message.lower()
    worded = any(word in lowered for word in _REFUSAL_WORDS)
    if isinstance(param, str) and param:
        name = _canonical(param)
        if name in sent and (code in UNSUPPORTED_CODES or worded):
            return name
    if not (code in UNSUPPORTED_CODES or worded):
        return None
    found: list[tuple[int, str]] = []
    for name in sent:
        for wire in {name, "reasoning"} if name == "reasoning_effort" else {name}:
            match = re.search(rf"(?<![A-Za-z0-9_]){re.escape(wire)}(?![A-Za-z0-9_])", message)
            if match:
                found.append((match.start(), name))
    return min(found)[1] if found else None


def _bad_image(error: Exception) -> bool:
    """A 400 about the photo itself (a format the provider cannot open, a corrupt or too large
    file): OpenAI's ``invalid_image_format``, ``image_parse_error``, ``invalid_image``,
    ``image_too_large`` and the like, with no parameter named. Not a model without vision."""
    if _status(error) != 400:
        return False
    code = str(getattr(error, "code", None) or "").lower()
    if code in BAD_IMAGE_CODES:
        return True
    if getattr(error, "param", None):
        return False
    if "image" in code:
        return True
    message = _message(error).lower()
    return not code and any(words in message for words in _BAD_IMAGE_WORDS)


def _refuses_images(error: Exception) -> bool:
    """A 400 about the request's image parts: the model (or provider) has no vision."""
    if _status(error) != 400 or _bad_image(error):
        return False
    param = str(getattr(error, "param", None) or "").lower()
    return "image" in _message(error).lower() or ("content" in param and "type" in param)


def _reason(error: Exception, images: bool = False) -> tuple[str, bool]:
    """A loggable name for the failure, and whether another attempt may succeed."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return "timeout", True
    if isinstance(error, openai.APIConnectionError):
        return "connection", True
    if isinstance(error, openai.RateLimitError):
        code = getattr(error, "code", None)
        if code == "insufficient_quota":  # a billing problem: asking again cannot help
            return "insufficient_quota", False
        return "rate_limited", True
    if isinstance(error, openai.AuthenticationError):
        return "authentication", False
    if images and _bad_image(error):
        return "image_invalid", False
    if images and _refuses_images(error):
        return "image_unsupported", False
    if isinstance(error, openai.APIStatusError):
        return f"status_{error.status_code}", error.status_code >= 500 or error.status_code == 409
    if isinstance(error, NotAnAnswer):
        return "bad_response:not_an_answer", False
    return f"bad_response:{type(error).__name__}", False


def retry_delay(error: Exception, attempt: int) -> float:
    """The provider's ``Retry-After`` when it gives one, else exponential backoff."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name in ("retry-after-ms", "retry-after"):
        raw = headers.get(name)
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
        if value is not None and value >= 0:
            return value / 1000 if name == "retry-after-ms" else value
    return min(8.0, 0.5 * 2**attempt)


def _retrying(
    settings: Settings, deadline: float, call: Callable[[float], T], images: bool = False
) -> T:
    """``call(timeout)`` until it answers, retrying what may pass while the deadline allows."""
    attempt = 0
    while True:
        budget = deadline - time.monotonic()
        if budget < MIN_ATTEMPT_SECONDS:
            raise ModelError("no_time_left", retryable=True)
        try:
            return call(min(settings.openai_timeout_seconds, budget))
        except ModelError:
            raise
        except Exception as error:  # the SDK raises many types; all mean "no answer"
            reason, retryable = _reason(error, images)
            wait = retry_delay(error, attempt)
            if not retryable or attempt >= settings.openai_max_retries:
                raise ModelError(reason, retryable, wait if retryable else None) from None
            left = deadline - time.monotonic()
            if wait + MIN_ATTEMPT_SECONDS > left:
                raise ModelError(reason, True, wait) from None
            time.sleep(wait)
            attempt += 1


# -- the request ------------------------------------------------------------------------------


def has_images(messages: list[Message]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )


def _optional(settings: Settings, caps: tuple[str, ...]) -> dict[str, Any]:
    """The optional parameters by our name, without those refused in this container."""
    dropped = dropped_parameters()
    wanted: dict[str, Any] = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "reasoning_effort": settings.reasoning_effort,
    }
    chosen = {k: v for k, v in wanted.items() if v is not None and k not in dropped}
    cap = next((name for name in caps if name not in dropped), None)
    if cap == "max_output_tokens":  # the Responses API refuses less (integer_below_min_value)
        chosen[cap] = max(settings.max_tokens, RESPONSES_MIN_OUTPUT_TOKENS)
    elif cap is not None:
        chosen[cap] = settings.max_tokens
    return chosen


def responses_input(messages: list[Message]) -> list[Message]:
    """Chat messages as Responses API input items: typed parts become input parts."""
    items = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    parts.append({"type": "input_image", "image_url": url, "detail": "auto"})
                else:
                    parts.append({"type": "input_text", "text": part.get("text", "")})
            content = parts
        items.append({"role": message["role"], "content": content})
    return items


class _Refused(Exception):
    """A request refused for one of its optional parameters (or any other error, carried)."""

    def __init__(self, error: Exception, parameter: str | None) -> None:
        super().__init__(parameter)
        self.error = error
        self.parameter = parameter

    @classmethod
    def of(cls, error: Exception, sent: tuple[str, ...]) -> _Refused:
        return cls(error, refused_parameter(error, sent))


def _chat(client: Any, settings: Settings, messages: list[Message], timeout: float) -> Completion:
    optional = _optional(settings, CHAT_CAPS)
    try:
        response = client.chat.completions.create(
            model=settings.model, messages=messages, timeout=timeout, **optional
        )
    except Exception as error:
        raise _Refused.of(error, tuple(optional)) from None
    return chat_answer(response, settings.model)


def _responses(
    client: Any, settings: Settings, messages: list[Message], timeout: float
) -> Completion:
    optional = _optional(settings, RESPONSES_CAPS)
    wire = dict(optional)
    if "reasoning_effort" in wire:
        wire["reasoning"] = {"effort": wire.pop("reasoning_effort")}
    try:
        response = client.responses.create(
            model=settings.model,
            input=responses_input(messages),
            store=False,  # nothing kept at OpenAI beyond the call
            timeout=timeout,
            **wire,
        )
    except Exception as error:
        raise _Refused.of(error, tuple(optional)) from None
    return responses_answer(response, settings.model)


def complete(
    settings: Settings, api_key: str, messages: list[Message], deadline: float
) -> Completion:
    """The assistant's answer to ``messages`` before ``deadline`` (``time.monotonic()``): the
    caller keeps back the time it needs after the call."""
    client = _client(api_key, settings.openai_base_url)
    ask = _responses if settings.openai_api == "responses" else _chat
    newly: list[str] = []

    def once(timeout: float) -> Completion:
        while True:  # each turn sends one refused parameter fewer, so this ends
            try:
                return ask(client, settings, messages, timeout)
            except _Refused as refused:
                if refused.parameter is None:
                    raise refused.error from None
                if _drop(refused.parameter):
                    newly.append(refused.parameter)
                    log.error(
                        "model.parameter_dropped",
                        parameter=refused.parameter,
                        model=settings.model,
                        api=settings.openai_api,
                        status=_status(refused.error),
                        code=getattr(refused.error, "code", None),
                    )

    try:
        completion = _retrying(settings, deadline, once, has_images(messages))
    except ModelError as error:
        error.dropped = tuple(newly)
        raise
    return replace(completion, dropped=tuple(newly))


# -- the answer -------------------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage(model: str, usage: Any, prompt: str, completion: str) -> tuple[Usage, ...]:
    """Usage from either API's names; a provider may leave the details out."""
    if usage is None:
        return ()
    input_details = getattr(usage, f"{prompt}_tokens_details", None)
    output_details = getattr(usage, f"{completion}_tokens_details", None)
    return (
        Usage(
            model=model,
            input_tokens=_int(getattr(usage, f"{prompt}_tokens", 0)),
            cached_tokens=_int(getattr(input_details, "cached_tokens", 0)),
            output_tokens=_int(getattr(usage, f"{completion}_tokens", 0)),
            reasoning_tokens=_int(getattr(output_details, "reasoning_tokens", 0)),
        ),
    )


class NotAnAnswer(Exception):
    """A 200 whose body is no completion (no choices; a proxy's HTML page, which the SDK
    hands back as text): an error, not a billed empty answer."""


def chat_answer(response: Any, model: str) -> Completion:
    usage = _usage(model, getattr(response, "usage", None), "prompt", "completion")
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise NotAnAnswer("no choices")
    choice = choices[0]
    message = getattr(choice, "message", None)
    answer = getattr(message, "content", None) or getattr(message, "refusal", None) or ""
    text = answer if isinstance(answer, str) and answer.strip() else ""
    return Completion(text, getattr(choice, "finish_reason", None), usage)


def responses_answer(response: Any, model: str) -> Completion:
    """The Responses API's answer; ``incomplete`` for the token cap is a cut answer."""
    usage = _usage(model, getattr(response, "usage", None), "input", "output")
    if not isinstance(getattr(response, "output", None), list):
        raise NotAnAnswer("no output")
    texts: list[str] = []
    refusals: list[str] = []
    for item in response.output:
        if getattr(item, "type", None) != "message":
            continue
        for part in getattr(item, "content", None) or []:
            kind = getattr(part, "type", None)
            if kind == "output_text" and isinstance(getattr(part, "text", None), str):
                texts.append(part.text)
            elif kind == "refusal" and isinstance(getattr(part, "refusal", None), str):
                refusals.append(part.refusal)
    answer = "".join(texts) or "".join(refusals)
    status = getattr(response, "status", None)
    finish = "stop"
    if status == "incomplete":
        details = getattr(response, "incomplete_details", None)
        why = getattr(details, "reason", None)
        finish = "content_filter" if why == "content_filter" else "length"
    return Completion(answer if answer.strip() else "", finish, usage)


# -- transcription ----------------------------------------------------------------------------


def transcription_usage(model: str, usage: Any) -> tuple[Usage, ...]:
    """Tokens for the gpt-4o transcription models, seconds for whisper-1."""
    if usage is None:
        return ()
    if getattr(usage, "type", None) == "duration":
        seconds = getattr(usage, "seconds", 0)
        return (Usage(model, audio_seconds=float(seconds or 0)),)
    return (
        Usage(
            model,
            input_tokens=_int(getattr(usage, "input_tokens", 0)),
            output_tokens=_int(getattr(usage, "output_tokens", 0)),
        ),
    )


def transcribe(
    settings: Settings,
    api_key: str,
    audio: bytes,
    filename: str,
    content_type: str,
    deadline: float,
) -> Transcript:
    """What ``audio`` says, before ``deadline``, with ``settings.transcription_model``."""
    client = _client(api_key, settings.openai_base_url)
    model = settings.transcription_model

    def once(timeout: float) -> Transcript:
        response = client.audio.transcriptions.create(
            model=model,
            file=(filename, audio, content_type),
            response_format="json",
            timeout=timeout,
        )
        text = getattr(response, "text", None)
        usage = transcription_usage(model, getattr(response, "usage", None))
        return Transcript(text.strip() if isinstance(text, str) else "", usage)

    return _retrying(settings, deadline, once)
