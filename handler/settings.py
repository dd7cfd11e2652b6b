"""Every setting the handler reads, read once from the environment into one typed object.

The Pulumi program sets these variables (see ``infra/``); ``make local`` sets them for the
local stack. Secrets are not here: only the names of the SSM parameters that hold them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .defaults import DEFAULTS

GRAPH_API_HOST = "https://graph.facebook.com"
# The stack's defaults (Pulumi.yaml, through the generated handler/defaults.py): what a run
# that sets no variable uses, so a local run behaves as a fresh stack does.
DEFAULT_GRAPH_API_VERSION: str = DEFAULTS["graphApiVersion"]
DEFAULT_GRAPH_API_URL = f"{GRAPH_API_HOST}/{DEFAULT_GRAPH_API_VERSION}"
DEFAULT_MODEL: str = DEFAULTS["model"]
DEFAULT_TRANSCRIPTION_MODEL: str = DEFAULTS["transcriptionModel"]
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant chatting through Facebook Messenger. "
    "Answer clearly and concisely in the language of the question; use plain text, not Markdown."
)
# Receives of one queued message before SQS moves it to the dead-letter queue (the stack's
# redrive policy says the same number), and the first of the growing waits between them.
DEFAULT_MAX_RECEIVES: int = DEFAULTS["maxReceiveCount"]
DEFAULT_RETRY_DELAY_SECONDS: int = DEFAULTS["retryDelaySeconds"]
# Lambda's level names, which its log filter and CloudWatch read; Python's names map to them.
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LOG_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}
# What OpenAI's models take as reasoning effort; ``omit`` sends none (the model's own
# default), for models and providers that refuse the parameter.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
REASONING_OMIT = "omit"
# The wire formats, both through the openai SDK: Chat Completions (what compatible providers
# speak) or OpenAI's Responses API.
OPENAI_APIS = ("chat", "responses")
# The Responses API refuses a max_output_tokens below this (400 integer_below_min_value).
RESPONSES_MIN_OUTPUT_TOKENS = 16
MB = 1024 * 1024
# The longest pause of the bot for one person a human takes over (a week): longer is surely a
# typo, and a forgotten pause should end on its own.
MAX_PAUSE_MINUTES = 7 * 24 * 60
# OpenAI's transcription endpoint takes files up to 25 MB: a larger cap could never be used.
MAX_MEDIA_MB = 25
# A price table entry: model=input/cached/output dollars per million tokens (or input/output).
_PRICE = re.compile(
    r"^\s*([A-Za-z0-9._:/-]+)\s*=\s*([0-9.]+)\s*/\s*([0-9.]+)\s*(?:/\s*([0-9.]+))?\s*$"
)


class SettingsError(ValueError):
    """A setting is missing or malformed: raised at cold start, with the variable's name."""


# Environment variable names: the contract between the Pulumi program and the handler.
class Env:
    TABLE_NAME = "TABLE_NAME"
    OPENAI_MODEL = "OPENAI_MODEL"
    SYSTEM_PROMPT = "SYSTEM_PROMPT"
    OPENAI_TEMPERATURE = "OPENAI_TEMPERATURE"  # unset: not sent (GPT-5 models refuse it)
    OPENAI_TOP_P = "OPENAI_TOP_P"  # unset: not sent
    OPENAI_REASONING_EFFORT = "OPENAI_REASONING_EFFORT"  # "omit": not sent
    OPENAI_MAX_TOKENS = "OPENAI_MAX_TOKENS"
    OPENAI_API = "OPENAI_API"  # chat or responses
    OPENAI_TIMEOUT_SECONDS = "OPENAI_TIMEOUT_SECONDS"
    OPENAI_MAX_RETRIES = "OPENAI_MAX_RETRIES"
    OPENAI_BASE_URL = "OPENAI_BASE_URL"
    DAILY_LIMIT = "DAILY_LIMIT"
    ADMIN_PSIDS = "ADMIN_PSIDS"
    QUOTA_TIMEZONE = "QUOTA_TIMEZONE"
    GRAPH_API_URL = "GRAPH_API_URL"
    HISTORY_TURNS = "HISTORY_TURNS"
    HISTORY_MAX_CHARS = "HISTORY_MAX_CHARS"
    HISTORY_TTL_HOURS = "HISTORY_TTL_HOURS"
    LOG_LEVEL = "LOG_LEVEL"
    # Photos and voice messages.
    VISION = "VISION"  # "false": photos are not read
    MEDIA_MAX_MB = "MEDIA_MAX_MB"  # the largest photo or voice message downloaded
    TRANSCRIPTION_MODEL = "TRANSCRIPTION_MODEL"
    # Budgets: tokens per person per day, dollars per day for the whole page, and the prices.
    DAILY_TOKEN_LIMIT = "DAILY_TOKEN_LIMIT"
    DAILY_SPEND_LIMIT_USD = "DAILY_SPEND_LIMIT_USD"
    MODEL_PRICES = "MODEL_PRICES"  # JSON list of model=input/cached/output
    # The name of the SSM parameter holding a system prompt too long for the environment.
    SYSTEM_PROMPT_PARAMETER = "SYSTEM_PROMPT_PARAMETER"
    # First contact and going Live.
    WELCOME_MESSAGE = "WELCOME_MESSAGE"  # said on Get Started; built in when unset
    ICE_BREAKERS = "ICE_BREAKERS"  # JSON list of the profile's questions (quick replies too)
    # The deployed function's welcome and ice breakers, in SSM: free text in any script, which
    # the environment's 4 KB (counted JSON-escaped) would cut to a fifth. WELCOME_MESSAGE and
    # ICE_BREAKERS are for local runs, as SYSTEM_PROMPT is.
    WELCOME_MESSAGE_PARAMETER = "WELCOME_MESSAGE_PARAMETER"
    ICE_BREAKERS_PARAMETER = "ICE_BREAKERS_PARAMETER"  # the same JSON list
    APP_ID = "APP_ID"  # the Meta app: its token ({app-id}|{app-secret}) asks Graph for PSIDs
    PAGE_ID = "PAGE_ID"
    PRIVACY_CONTACT = "PRIVACY_CONTACT"  # where people write about their data (e-mail, URL)
    PRIVACY_TEXT_PARAMETER = "PRIVACY_TEXT_PARAMETER"  # the owner's own privacy page, in SSM
    LOG_RETENTION_DAYS = "LOG_RETENTION_DAYS"  # said on the privacy page
    # The FIFO queue between the webhook and the worker, and how it retries.
    QUEUE_URL = "QUEUE_URL"
    MAX_RECEIVES = "MAX_RECEIVES"
    RETRY_DELAY_SECONDS = "RETRY_DELAY_SECONDS"
    # Names of the SSM SecureString parameters holding the secrets (deployed function).
    APP_SECRET_PARAMETER = "APP_SECRET_PARAMETER"
    PAGE_ACCESS_TOKEN_PARAMETER = "PAGE_ACCESS_TOKEN_PARAMETER"
    VERIFY_TOKEN_PARAMETER = "VERIFY_TOKEN_PARAMETER"
    OPENAI_API_KEY_PARAMETER = "OPENAI_API_KEY_PARAMETER"
    # The owner in the conversation: how long a human's reply pauses the bot for that person
    # (0: never), and whether the owners hear of each takeover.
    HUMAN_PAUSE_MINUTES = "HUMAN_PAUSE_MINUTES"
    TAKEOVER_NOTICES = "TAKEOVER_NOTICES"  # "true": a notice when a takeover starts or ends
    # Operations: the metrics' namespace and Stack dimension (unset: no metric lines), and
    # the owner's SNS topic (e-mail, when ownerEmail is set).
    METRICS_STACK = "METRICS_STACK"
    OWNER_TOPIC_ARN = "OWNER_TOPIC_ARN"


# Secret name -> (parameter-name variable, plain variable allowed only when no parameter is named).
SECRET_SOURCES: dict[str, tuple[str, str]] = {
    "app_secret": (Env.APP_SECRET_PARAMETER, "APP_SECRET"),
    "page_access_token": (Env.PAGE_ACCESS_TOKEN_PARAMETER, "PAGE_ACCESS_TOKEN"),
    "verify_token": (Env.VERIFY_TOKEN_PARAMETER, "VERIFY_TOKEN"),
    "openai_api_key": (Env.OPENAI_API_KEY_PARAMETER, "OPENAI_API_KEY"),
}


@dataclass(frozen=True)
class Settings:
    table_name: str
    model: str = DEFAULT_MODEL
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    temperature: float | None = None  # None: not sent, the model's own default
    top_p: float | None = None
    reasoning_effort: str | None = (  # None: not sent
        None if DEFAULTS["reasoningEffort"] == REASONING_OMIT else DEFAULTS["reasoningEffort"]
    )
    max_tokens: int = DEFAULTS["maxTokens"]
    openai_api: str = DEFAULTS["openaiApi"]
    openai_timeout_seconds: float = 25.0
    openai_max_retries: int = 2
    openai_base_url: str | None = None
    daily_limit: int = DEFAULTS["dailyLimit"]
    admin_psids: frozenset[str] = field(default_factory=frozenset)
    timezone: str = DEFAULTS["quotaTimezone"]
    graph_api_url: str = DEFAULT_GRAPH_API_URL
    history_turns: int = DEFAULTS["historyTurns"]
    history_max_chars: int = DEFAULTS["historyMaxChars"]
    history_ttl_hours: int = DEFAULTS["historyTtlHours"]
    log_level: str = DEFAULTS["logLevel"]
    queue_url: str | None = None
    max_receives: int = DEFAULT_MAX_RECEIVES
    retry_delay_seconds: int = DEFAULT_RETRY_DELAY_SECONDS
    secret_parameters: Mapping[str, str] = field(default_factory=dict)
    system_prompt_parameter: str | None = None
    welcome_message: str | None = None  # None: replies.welcome's built-in text
    welcome_message_parameter: str | None = None  # fetched with the secrets into the above
    ice_breakers: tuple[str, ...] = ()
    ice_breakers_parameter: str | None = None  # fetched with the secrets into the above
    app_id: str | None = None
    page_id: str | None = None
    privacy_contact: str | None = None
    privacy_text_parameter: str | None = None
    privacy_text: str | None = None  # fetched from its parameter with the secrets
    log_retention_days: int = DEFAULTS["logRetentionDays"]
    vision: bool = DEFAULTS["vision"]
    media_max_bytes: int = DEFAULTS["mediaMaxMb"] * MB
    transcription_model: str = DEFAULT_TRANSCRIPTION_MODEL
    daily_token_limit: int = DEFAULTS["dailyTokenLimit"]  # 0: none
    daily_spend_limit_usd: float = float(DEFAULTS["dailySpendLimitUsd"])  # 0: none
    model_prices: Mapping[str, Price] = field(
        default_factory=lambda: parse_model_prices(DEFAULTS["modelPrices"])
    )
    metrics_stack: str | None = None  # None: no metric lines (local runs)
    owner_topic_arn: str | None = None
    human_pause_minutes: int = DEFAULTS["humanPauseMinutes"]  # 0: human takeover off
    takeover_notices: bool = DEFAULTS["takeoverNotices"]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_admin(self, psid: str) -> bool:
        return psid in self.admin_psids


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _optional_float(env: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    """A number that is sent only when it is set."""
    if not env.get(name, "").strip():
        return None
    return _float(env, name, low, low, high)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def reasoning_effort(raw: str, name: str = "") -> str | None:
    """The effort to send, or None for ``omit``."""
    value = raw.strip().lower()
    if value == REASONING_OMIT:
        return None
    if value not in REASONING_EFFORTS:
        allowed = ", ".join((*REASONING_EFFORTS, REASONING_OMIT))
        raise SettingsError(
            f"{name or Env.OPENAI_REASONING_EFFORT} must be one of {allowed}, got {raw!r}"
        )
    return value


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens: fresh input, cached input, output (reasoning included)."""

    input: float
    cached: float
    output: float


def parse_model_prices(items: Any) -> dict[str, Price]:
    """``["gpt-5-mini=0.25/0.025/2.00", ...]`` (or ``model=input/output``, cached priced as
    input) into prices by model; ``SettingsError`` names the item that is not one."""
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingsError(f"{Env.MODEL_PRICES} must be a list of model=input/cached/output")
    prices: dict[str, Price] = {}
    for item in items:
        match = _PRICE.match(item)
        try:
            numbers = [float(n) for n in match.groups()[1:] if n is not None] if match else []
        except ValueError:
            numbers = []
        if not match or not numbers:
            raise SettingsError(
                f"{Env.MODEL_PRICES}: {item!r} is not model=input/cached/output dollars per "
                "million tokens, e.g. gpt-5-mini=0.25/0.025/2.00"
            )
        if len(numbers) == 2:
            numbers = [numbers[0], numbers[0], numbers[1]]
        prices[match.group(1)] = Price(*numbers)
    return prices


def log_level(raw: str) -> str:
    """Lambda's name for a level, from either Lambda's or Python's name."""
    level = raw.strip().upper()
    level = LOG_LEVEL_ALIASES.get(level, level)
    if level not in LOG_LEVELS:
        raise SettingsError(f"{Env.LOG_LEVEL} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def parse_ice_breakers(raw: str) -> tuple[str, ...]:
    """A JSON list of questions (the stack writes it); empty when unset."""
    if not raw.strip():
        return ()
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise SettingsError(f"{Env.ICE_BREAKERS} must be a JSON list of questions")
    return tuple(i.strip() for i in items if i.strip())


def parse_admin_psids(raw: str) -> frozenset[str]:
    """Comma- or space-separated page-scoped ids; PSIDs are digits only."""
    ids = [part for part in raw.replace(",", " ").split() if part]
    bad = [part for part in ids if not part.isdigit()]
    if bad:
        raise SettingsError(f"{Env.ADMIN_PSIDS} holds something that is not a PSID: {bad[0]!r}")
    return frozenset(ids)


_DEFAULT: dict[str, Any] = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    table = env.get(Env.TABLE_NAME, "").strip()
    if not table:
        raise SettingsError(f"{Env.TABLE_NAME} is not set")
    timezone = env.get(Env.QUOTA_TIMEZONE, "").strip() or _DEFAULT["timezone"]
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{Env.QUOTA_TIMEZONE} is not a known time zone: {timezone!r}"
        ) from None
    graph = (env.get(Env.GRAPH_API_URL, "").strip() or DEFAULT_GRAPH_API_URL).rstrip("/")
    secret_parameters = {
        name: env[variable].strip()
        for name, (variable, _plain) in SECRET_SOURCES.items()
        if env.get(variable, "").strip()
    }
    d = _DEFAULT
    return Settings(
        table_name=table,
        model=env.get(Env.OPENAI_MODEL, "").strip() or d["model"],
        system_prompt=env.get(Env.SYSTEM_PROMPT, "").strip() or d["system_prompt"],
        temperature=_optional_float(env, Env.OPENAI_TEMPERATURE, 0.0, 2.0),
        top_p=_optional_float(env, Env.OPENAI_TOP_P, 0.0, 1.0),
        reasoning_effort=(
            reasoning_effort(env[Env.OPENAI_REASONING_EFFORT])
            if env.get(Env.OPENAI_REASONING_EFFORT, "").strip()
            else d["reasoning_effort"]
        ),
        max_tokens=_int(env, Env.OPENAI_MAX_TOKENS, d["max_tokens"], minimum=1),
        openai_api=_choice(env, Env.OPENAI_API, d["openai_api"], OPENAI_APIS),
        openai_timeout_seconds=_float(
            env, Env.OPENAI_TIMEOUT_SECONDS, d["openai_timeout_seconds"], 1.0, 900.0
        ),
        openai_max_retries=_int(env, Env.OPENAI_MAX_RETRIES, d["openai_max_retries"]),
        openai_base_url=env.get(Env.OPENAI_BASE_URL, "").strip() or None,
        daily_limit=_int(env, Env.DAILY_LIMIT, d["daily_limit"]),
        admin_psids=parse_admin_psids(env.get(Env.ADMIN_PSIDS, "")),
        timezone=timezone,
        graph_api_url=graph,
        history_turns=_int(env, Env.HISTORY_TURNS, d["history_turns"]),
        history_max_chars=_int(env, Env.HISTORY_MAX_CHARS, d["history_max_chars"]),
        history_ttl_hours=_int(env, Env.HISTORY_TTL_HOURS, d["history_ttl_hours"], minimum=1),
        log_level=log_level(env.get(Env.LOG_LEVEL, "") or d["log_level"]),
        queue_url=env.get(Env.QUEUE_URL, "").strip() or None,
        max_receives=_int(env, Env.MAX_RECEIVES, d["max_receives"], minimum=1),
        retry_delay_seconds=_int(env, Env.RETRY_DELAY_SECONDS, d["retry_delay_seconds"]),
        secret_parameters=secret_parameters,
        system_prompt_parameter=env.get(Env.SYSTEM_PROMPT_PARAMETER, "").strip() or None,
        welcome_message=env.get(Env.WELCOME_MESSAGE, "").strip() or None,
        welcome_message_parameter=env.get(Env.WELCOME_MESSAGE_PARAMETER, "").strip() or None,
        ice_breakers=parse_ice_breakers(env.get(Env.ICE_BREAKERS, "")),
        ice_breakers_parameter=env.get(Env.ICE_BREAKERS_PARAMETER, "").strip() or None,
        app_id=env.get(Env.APP_ID, "").strip() or None,
        page_id=env.get(Env.PAGE_ID, "").strip() or None,
        privacy_contact=env.get(Env.PRIVACY_CONTACT, "").strip() or None,
        privacy_text_parameter=env.get(Env.PRIVACY_TEXT_PARAMETER, "").strip() or None,
        log_retention_days=_int(env, Env.LOG_RETENTION_DAYS, d["log_retention_days"]),
        vision=_bool(env, Env.VISION, d["vision"]),
        media_max_bytes=_media_max_mb(env, d["media_max_bytes"] // MB) * MB,
        transcription_model=(
            env.get(Env.TRANSCRIPTION_MODEL, "").strip() or d["transcription_model"]
        ),
        daily_token_limit=_int(env, Env.DAILY_TOKEN_LIMIT, d["daily_token_limit"]),
        daily_spend_limit_usd=_float(
            env, Env.DAILY_SPEND_LIMIT_USD, d["daily_spend_limit_usd"], 0.0, 1_000_000.0
        ),
        model_prices=_prices(env),
        metrics_stack=env.get(Env.METRICS_STACK, "").strip() or None,
        owner_topic_arn=env.get(Env.OWNER_TOPIC_ARN, "").strip() or None,
        human_pause_minutes=_pause_minutes(env, d["human_pause_minutes"]),
        takeover_notices=_bool(env, Env.TAKEOVER_NOTICES, d["takeover_notices"]),
    )


def _pause_minutes(env: Mapping[str, str], default: int) -> int:
    value = _int(env, Env.HUMAN_PAUSE_MINUTES, default)
    if value > MAX_PAUSE_MINUTES:
        raise SettingsError(
            f"{Env.HUMAN_PAUSE_MINUTES} must be at most {MAX_PAUSE_MINUTES}, got {value}"
        )
    return value


def _media_max_mb(env: Mapping[str, str], default: int) -> int:
    value = _int(env, Env.MEDIA_MAX_MB, default, minimum=1)
    if value > MAX_MEDIA_MB:
        raise SettingsError(f"{Env.MEDIA_MAX_MB} must be at most {MAX_MEDIA_MB}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _prices(env: Mapping[str, str]) -> dict[str, Price]:
    raw = env.get(Env.MODEL_PRICES, "").strip()
    if not raw:
        return parse_model_prices(DEFAULTS["modelPrices"])
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        raise SettingsError(f"{Env.MODEL_PRICES} must be a JSON list") from None
    return parse_model_prices(items)
