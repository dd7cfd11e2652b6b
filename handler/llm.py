"""The model call, through the openai SDK, imported only here so the webhook path stays light."""

from __future__ import annotations

import functools
from typing import Any

from .settings import Settings


class ModelError(RuntimeError):
    """The model gave no usable answer after the SDK's own retries. ``reason`` is loggable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@functools.cache
def _client(api_key: str, base_url: str | None, timeout: float, retries: int) -> Any:
    import openai  # about half a second of imports: paid by the worker, never the webhook

    return openai.OpenAI(
        api_key=api_key or "unused",
        base_url=base_url,  # None lets the SDK read OPENAI_BASE_URL, else api.openai.com
        timeout=timeout,
        max_retries=retries,
    )


def _reason(error: Exception) -> str:
    import openai

    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    if isinstance(error, openai.RateLimitError):
        return "rate_limited"
    if isinstance(error, openai.AuthenticationError):
        return "authentication"
    if isinstance(error, openai.APIStatusError):
        return f"status_{error.status_code}"
    return f"bad_response:{type(error).__name__}"


def complete(settings: Settings, api_key: str, messages: list[dict[str, str]]) -> str:
    """The assistant's answer to ``messages`` (system prompt first), or ``ModelError``."""
    client = _client(
        api_key,
        settings.openai_base_url,
        settings.openai_timeout_seconds,
        settings.openai_max_retries,
    )
    try:
        response = client.chat.completions.create(
            model=settings.model,
            messages=messages,
            temperature=settings.temperature,
            max_completion_tokens=settings.max_tokens,
        )
        choice = response.choices[0]
        answer = choice.message.content or getattr(choice.message, "refusal", None) or ""
    except Exception as error:  # the SDK raises many types; all mean "no answer"
        raise ModelError(_reason(error)) from None
    if not isinstance(answer, str) or not answer.strip():
        raise ModelError("empty_answer")
    return answer.strip()
