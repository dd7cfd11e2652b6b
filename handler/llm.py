"""The model call, through the openai SDK, imported only here so the webhook path stays light.

Retries are ours, not the SDK's: each one must fit in the time the invocation has left, so
a long ``Retry-After`` or a slow provider ends in an apology, never in a Lambda timeout.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from .settings import Settings

MIN_ATTEMPT_SECONDS = 2.0  # an attempt with less time than this is not worth starting


class ModelError(RuntimeError):
    """The model gave no answer in the time there was. ``reason`` is loggable; ``retryable``
    says whether asking again later may help (the queue backs the message off)."""

    def __init__(self, reason: str, retryable: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Completion:
    """The model's answer (HTTP 200, so billed), possibly empty."""

    text: str
    finish_reason: str | None = None


@functools.cache
def _client(api_key: str, base_url: str | None) -> Any:
    import openai  # about half a second of imports: paid by the worker, never the webhook

    return openai.OpenAI(
        api_key=api_key or "unused",
        base_url=base_url,  # None lets the SDK read OPENAI_BASE_URL, else api.openai.com
        max_retries=0,
    )


def _reason(error: Exception) -> tuple[str, bool]:
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
    if isinstance(error, openai.APIStatusError):
        return f"status_{error.status_code}", error.status_code >= 500 or error.status_code == 409
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


def _answer_of(response: Any) -> Completion:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return Completion("", None)
    choice = choices[0]
    message = getattr(choice, "message", None)
    answer = getattr(message, "content", None) or getattr(message, "refusal", None) or ""
    text = answer.strip() if isinstance(answer, str) else ""
    return Completion(text, getattr(choice, "finish_reason", None))


def complete(
    settings: Settings, api_key: str, messages: list[dict[str, str]], deadline: float
) -> Completion:
    """The assistant's answer to ``messages`` before ``deadline`` (``time.monotonic()``): the
    caller keeps back the time it needs after the call."""
    client = _client(api_key, settings.openai_base_url)
    attempt = 0
    while True:
        budget = deadline - time.monotonic()
        if budget < MIN_ATTEMPT_SECONDS:
            raise ModelError("no_time_left", retryable=True)
        try:
            response = client.chat.completions.create(
                model=settings.model,
                messages=messages,
                temperature=settings.temperature,
                max_completion_tokens=settings.max_tokens,
                timeout=min(settings.openai_timeout_seconds, budget),
            )
            return _answer_of(response)
        except Exception as error:  # the SDK raises many types; all mean "no answer"
            reason, retryable = _reason(error)
            wait = retry_delay(error, attempt)
            if not retryable or attempt >= settings.openai_max_retries:
                raise ModelError(reason, retryable, wait if retryable else None) from None
            left = deadline - time.monotonic()
            if wait + MIN_ATTEMPT_SECONDS > left:
                raise ModelError(reason, True, wait) from None
            time.sleep(wait)
            attempt += 1
