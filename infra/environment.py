"""The Lambda's environment: every variable ``handler.settings`` reads, and no secret value.

Secrets travel as the *names* of their SSM parameters; the handler fetches the values itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeVar

from handler.settings import SECRET_SOURCES, Env

from .config import OPENAI_MAX_RETRIES, OPENAI_TIMEOUT_SECONDS, BridgeSettings, ConfigError
from .naming import QUEUE_NAME_LIMIT

T = TypeVar("T")

# Lambda refuses an environment over 4 KB, measured as the JSON object it stores.
MAX_ENVIRONMENT_BYTES = 4096
# The queue's URL is known only once the queue exists (``with_queue``): keep room for the
# longest, a 12-digit account and an 80-character name, in a region of up to 20 characters
# (the longest today has 14) and the partition with the longest domain (China's).
LONGEST_QUEUE_URL = f"https://sqs.{'r' * 20}.amazonaws.com.cn/{'0' * 12}/{'q' * QUEUE_NAME_LIMIT}"


def _number(value: float) -> str:
    return f"{value:g}"


def environment_size(variables: Mapping[str, str]) -> int:
    """What Lambda counts: the variables as compact JSON, in bytes. Non-ASCII text counts as
    the larger of its UTF-8 bytes and its JSON escapes, whichever way Lambda encodes it."""
    return max(
        len(json.dumps(variables, separators=(",", ":"), ensure_ascii=ascii).encode())
        for ascii in (True, False)
    )


def function_environment(
    settings: BridgeSettings,
    table_name: str,
    secret_parameters: Mapping[str, str],
    system_prompt_parameter: str | None = None,
) -> dict[str, str]:
    """Variables for the function; ``secret_parameters`` maps secret name -> parameter name.
    A system prompt never rides in the environment: its parameter's name does."""
    if set(secret_parameters) != set(SECRET_SOURCES):
        raise ValueError(f"need a parameter for each of {sorted(SECRET_SOURCES)}")
    if bool(settings.system_prompt) != bool(system_prompt_parameter):
        raise ValueError("a system prompt needs its parameter, and a parameter its prompt")
    variables = {
        Env.TABLE_NAME: table_name,
        Env.OPENAI_MODEL: settings.model,
        Env.OPENAI_TEMPERATURE: _number(settings.temperature),
        Env.OPENAI_MAX_TOKENS: str(settings.max_tokens),
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
    }
    if settings.openai_base_url:
        variables[Env.OPENAI_BASE_URL] = settings.openai_base_url
    if system_prompt_parameter:
        variables[Env.SYSTEM_PROMPT_PARAMETER] = system_prompt_parameter
    for secret, (variable, _plain) in SECRET_SOURCES.items():
        variables[variable] = secret_parameters[secret]
    size = environment_size(with_queue(variables, LONGEST_QUEUE_URL))
    if size > MAX_ENVIRONMENT_BYTES:
        raise ConfigError(
            [
                f"the function's environment would be {size} bytes, over Lambda's "
                f"{MAX_ENVIRONMENT_BYTES}: shorten the longest settings (openaiBaseUrl, "
                "adminPsids)"
            ]
        )
    return variables


def with_queue(variables: Mapping[str, str], queue_url: T) -> dict[str, str | T]:
    """The environment plus the queue the webhook sends to and the worker backs off on."""
    return {**variables, Env.QUEUE_URL: queue_url}
