"""The Lambda's environment: every variable ``handler.settings`` reads, and no secret value.

Secrets travel as the *names* of their SSM parameters; the handler fetches the values itself.
So do the owner's free texts (system prompt, privacy page, welcome, ice breakers): Lambda's
4 KB, counted JSON-escaped, would hold a fifth of a 2,000-character welcome in Cyrillic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TypeVar

from handler.settings import SECRET_SOURCES, Env

from .config import OPENAI_MAX_RETRIES, OPENAI_TIMEOUT_SECONDS, BridgeSettings, ConfigError
from .naming import QUEUE_NAME_LIMIT

T = TypeVar("T")

# Lambda refuses an environment over 4 KB, measured as the JSON object it stores.
MAX_ENVIRONMENT_BYTES = 4096
# The queue's URL is known only once the queue exists (``with_resources``): keep room for the
# longest, a 12-digit account and an 80-character name, in a region of up to 20 characters
# (the longest today has 14) and the partition with the longest domain (China's).
LONGEST_QUEUE_URL = f"https://sqs.{'r' * 20}.amazonaws.com.cn/{'0' * 12}/{'q' * QUEUE_NAME_LIMIT}"
# The owner's topic is named like the queue, "-owner" for ".fifo", in the longest partition.
LONGEST_TOPIC_ARN = f"arn:aws-us-gov:sns:{'r' * 20}:{'0' * 12}:{'t' * (QUEUE_NAME_LIMIT + 1)}"


def _number(value: float) -> str:
    return f"{value:g}"


def environment_size(variables: Mapping[str, str]) -> int:
    """What Lambda counts: the variables as compact JSON, in bytes. Non-ASCII text counts as
    the larger of its UTF-8 bytes and its JSON escapes, whichever way Lambda encodes it."""
    return max(
        len(json.dumps(variables, separators=(",", ":"), ensure_ascii=ascii).encode())
        for ascii in (True, False)
    )


# The settings whose length is the owner's to choose, by the variable that carries them: what
# to shorten when the environment is too large.
LONG_SETTINGS = {
    Env.ADMIN_PSIDS: "adminPsids",
    Env.OPENAI_BASE_URL: "openaiBaseUrl",
    Env.PRIVACY_CONTACT: "privacyContact",
    Env.OPENAI_MODEL: "model",
    Env.MODEL_PRICES: "modelPrices",
    Env.TRANSCRIPTION_MODEL: "transcriptionModel",
}
LONG_SETTING_BYTES = 100  # smaller ones are not worth naming


def compact_list(items: Sequence[str]) -> str:
    """A list variable (``MODEL_PRICES``) or the ice breakers' parameter: a compact JSON array
    of strings, in their order."""
    return json.dumps(list(items), separators=(",", ":"), ensure_ascii=False)


def _optional_number(value: float | None) -> str | None:
    return None if value is None else _number(value)


def function_environment(
    settings: BridgeSettings,
    table_name: str,
    secret_parameters: Mapping[str, str],
    system_prompt_parameter: str | None = None,
    privacy_text_parameter: str | None = None,
    metrics_stack: str | None = None,
    welcome_message_parameter: str | None = None,
    ice_breakers_parameter: str | None = None,
) -> dict[str, str]:
    """Variables for the function; ``secret_parameters`` maps secret name -> parameter name.
    A system prompt, privacy text, welcome or ice breakers never ride in the environment:
    their parameter's name does. ``metrics_stack`` names the metrics' namespace and dimension
    (none: no metric lines)."""
    if set(secret_parameters) != set(SECRET_SOURCES):
        raise ValueError(f"need a parameter for each of {sorted(SECRET_SOURCES)}")
    if bool(settings.system_prompt) != bool(system_prompt_parameter):
        raise ValueError("a system prompt needs its parameter, and a parameter its prompt")
    if bool(settings.privacy_text) != bool(privacy_text_parameter):
        raise ValueError("a privacy text needs its parameter, and a parameter its text")
    if bool(settings.welcome_message) != bool(welcome_message_parameter):
        raise ValueError("a welcome needs its parameter, and a parameter its welcome")
    if bool(settings.ice_breakers) != bool(ice_breakers_parameter):
        raise ValueError("ice breakers need their parameter, and a parameter its questions")
    variables = {
        Env.TABLE_NAME: table_name,
        Env.OPENAI_MODEL: settings.model,
        Env.OPENAI_REASONING_EFFORT: settings.reasoning_effort,
        Env.OPENAI_MAX_TOKENS: str(settings.max_tokens),
        Env.OPENAI_API: settings.openai_api,
        # Fixed here so the timeout check in config and the running function agree.
        Env.OPENAI_TIMEOUT_SECONDS: _number(OPENAI_TIMEOUT_SECONDS),
        Env.OPENAI_MAX_RETRIES: str(OPENAI_MAX_RETRIES),
        Env.DAILY_LIMIT: str(settings.daily_limit),
        Env.ADMIN_PSIDS: ",".join(settings.admin_psids),
        Env.QUOTA_TIMEZONE: settings.quota_timezone,
        Env.GRAPH_API_URL: settings.graph_api_url,
        Env.HISTORY_TURNS: str(settings.history_turns),
        Env.HISTORY_MAX_CHARS: str(settings.history_max_chars),
        Env.HISTORY_TTL_HOURS: str(settings.history_ttl_hours),
        Env.LOG_LEVEL: settings.log_level,
        # One setting: the queue's redrive policy moves a message after the same count.
        Env.MAX_RECEIVES: str(settings.max_receive_count),
        Env.RETRY_DELAY_SECONDS: str(settings.retry_delay_seconds),
        # The privacy page says how long the logs are kept ("0": forever).
        Env.LOG_RETENTION_DAYS: str(settings.log_retention_days),
        # Photos and voice messages; the budgets and the prices they are counted in.
        Env.VISION: "true" if settings.vision else "false",
        Env.MEDIA_MAX_MB: str(settings.media_max_mb),
        Env.TRANSCRIPTION_MODEL: settings.transcription_model,
        Env.DAILY_TOKEN_LIMIT: str(settings.daily_token_limit),
        Env.DAILY_SPEND_LIMIT_USD: _number(settings.daily_spend_limit_usd),
        Env.MODEL_PRICES: compact_list(settings.model_prices),
        # The owner in the conversation: the bot's pause when a human answers, the notices.
        Env.HUMAN_PAUSE_MINUTES: str(settings.human_pause_minutes),
        Env.TAKEOVER_NOTICES: "true" if settings.takeover_notices else "false",
    }
    optional = {
        # Sent to the model only when set: GPT-5 and o-series models refuse them.
        Env.OPENAI_TEMPERATURE: _optional_number(settings.temperature),
        Env.OPENAI_TOP_P: _optional_number(settings.top_p),
        Env.OPENAI_BASE_URL: settings.openai_base_url,
        Env.SYSTEM_PROMPT_PARAMETER: system_prompt_parameter,
        Env.WELCOME_MESSAGE_PARAMETER: welcome_message_parameter,
        Env.ICE_BREAKERS_PARAMETER: ice_breakers_parameter,
        Env.APP_ID: settings.app_id,
        Env.PAGE_ID: settings.page_id,
        Env.PRIVACY_CONTACT: settings.privacy_contact,
        Env.PRIVACY_TEXT_PARAMETER: privacy_text_parameter,
        Env.METRICS_STACK: metrics_stack,
    }
    variables.update({name: value for name, value in optional.items() if value})
    for secret, (variable, _plain) in SECRET_SOURCES.items():
        variables[variable] = secret_parameters[secret]
    size = environment_size(with_resources(variables, LONGEST_QUEUE_URL, LONGEST_TOPIC_ARN))
    if size > MAX_ENVIRONMENT_BYTES:
        raise ConfigError([_too_large(variables, size)])
    return variables


def _too_large(variables: Mapping[str, str], size: int) -> str:
    """The problem, naming the owner's settings that take the most room, largest first."""
    room = {
        key: environment_size({name: variables[name]})
        for name, key in LONG_SETTINGS.items()
        if variables.get(name)
    }
    largest = sorted(room, key=lambda key: -room[key])
    named = [key for key in largest[:3] if room[key] >= LONG_SETTING_BYTES] or largest[:1]
    listed = ", ".join(f"{key} ({room[key]} bytes)" for key in named)
    return (
        f"the function's environment would be {size} bytes, over Lambda's "
        f"{MAX_ENVIRONMENT_BYTES}: shorten the longest settings: {listed}"
    )


def with_resources(variables: Mapping[str, str], queue_url: T, topic_arn: T) -> dict[str, str | T]:
    """The environment plus what is known once it exists: the queue the webhook sends to and
    the worker backs off on, and the owner's topic."""
    return {**variables, Env.QUEUE_URL: queue_url, Env.OWNER_TOPIC_ARN: topic_arn}
