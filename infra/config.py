"""The stack's settings, read once from Pulumi config into typed, validated objects.

Every config key is the camelCase form of a field name below (``memory_mb`` ->
``memoryMb``), so the Pulumi.yaml schema, the dataclass and the tests share one rule.
Defaults the handler also has are imported from ``handler.settings``, never copied.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pulumi

from handler import profile
from handler.defaults import DEFAULTS
from handler.settings import (
    GRAPH_API_HOST,
    LOG_LEVEL_ALIASES,
    LOG_LEVELS,
    MAX_MEDIA_MB,
    MAX_PAUSE_MINUTES,
    OPENAI_APIS,
    REASONING_EFFORTS,
    REASONING_OMIT,
    RESPONSES_MIN_OUTPUT_TOKENS,
    SECRET_SOURCES,
    Settings,
    SettingsError,
    parse_admin_psids,
    parse_model_prices,
)

# The handler's defaults for what the stack does not set (its model-call timing).
HANDLER_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(Settings) if f.default is not dataclasses.MISSING
}

ARCHITECTURES = ("arm64", "x86_64")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# An SSM parameter holds at most 8 KB (the advanced tier; Intelligent-Tiering picks it): the
# system prompt and the owner's privacy text each live in one.
MAX_PARAMETER_BYTES = 8192
# The Send API's limit on one text: the welcome is one message.
MAX_WELCOME_CHARS = 2000
MAX_PRIVACY_CONTACT_CHARS = 200
# The values CloudWatch Logs accepts for retention_in_days; 0 keeps logs forever.
LOG_RETENTION_DAYS = (
    0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
PROTECTED_STACKS = frozenset({"prod"})
# Secrets the stack can make up itself when none is configured.
GENERATED_SECRETS = frozenset({"verify_token"})

# What AWS accepts for an SQS FIFO queue feeding Lambda: at most 10 records a batch, a
# maximum concurrency of 2 to 1000, and 1 to 1000 receives before the dead-letter queue.
FIFO_MAX_BATCH_SIZE = 10
MAX_CONCURRENCY_RANGE = (2, 1000)
MAX_RECEIVE_COUNT = 1000
# The handler's longest backoff (handler.batch.MAX_BACKOFF_SECONDS): a first wait above it
# would be cut down anyway.
MAX_RETRY_DELAY_SECONDS = 900
# SQS keeps a message at most 14 days; an alarm on a day-old message has long been due.
MAX_ALARM_QUEUE_AGE_SECONDS = 86400

# How long one model call may take, retries included: the function must outlive it.
OPENAI_TIMEOUT_SECONDS: float = HANDLER_DEFAULTS["openai_timeout_seconds"]
OPENAI_MAX_RETRIES: int = HANDLER_DEFAULTS["openai_max_retries"]
MODEL_CALL_BUDGET_SECONDS = OPENAI_TIMEOUT_SECONDS * (OPENAI_MAX_RETRIES + 1)

_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:key/[A-Za-z0-9-]+$")
_GRAPH_VERSION = re.compile(r"^v\d+\.\d+$")
# Meta's ids (apps, pages) are decimal numbers, given as text.
_GRAPH_ID = re.compile(r"^\d{1,20}$")
# Messenger's locales: language and country, e.g. fr_FR, en_US (the default goes in greeting).
_LOCALE = re.compile(r"^[a-z]{2,3}_[A-Z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """One or more settings are invalid; the message lists every problem with its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def config_key(field_name: str) -> str:
    """``log_retention_days`` -> ``logRetentionDays``: the one naming rule for config keys."""
    head, *rest = field_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class BridgeSettings:
    """Every non-secret setting of one bridge, validated."""

    model: str = DEFAULTS["model"]
    system_prompt: str | None = None  # None: the handler's built-in prompt
    system_prompt_file: str | None = None  # where system_prompt was read from, if a file
    temperature: float | None = None  # empty in Pulumi.yaml: not sent
    top_p: float | None = None
    reasoning_effort: str = DEFAULTS["reasoningEffort"]  # "omit": not sent
    max_tokens: int = DEFAULTS["maxTokens"]
    openai_api: str = DEFAULTS["openaiApi"]
    vision: bool = DEFAULTS["vision"]
    media_max_mb: int = DEFAULTS["mediaMaxMb"]
    transcription_model: str = DEFAULTS["transcriptionModel"]
    daily_token_limit: int = DEFAULTS["dailyTokenLimit"]
    daily_spend_limit_usd: float = float(DEFAULTS["dailySpendLimitUsd"])
    model_prices: tuple[str, ...] = tuple(DEFAULTS["modelPrices"])
    daily_limit: int = DEFAULTS["dailyLimit"]
    admin_psids: tuple[str, ...] = ()
    keep_warm_minutes: int = DEFAULTS["keepWarmMinutes"]
    memory_mb: int = DEFAULTS["memoryMb"]
    timeout_seconds: int = DEFAULTS["timeoutSeconds"]
    architecture: str = DEFAULTS["architecture"]
    log_retention_days: int = DEFAULTS["logRetentionDays"]
    reserved_concurrency: int | None = None  # -1 in Pulumi.yaml: none reserved
    batch_size: int = DEFAULTS["batchSize"]
    max_concurrency: int = DEFAULTS["maxConcurrency"]
    max_receive_count: int = DEFAULTS["maxReceiveCount"]
    retry_delay_seconds: int = DEFAULTS["retryDelaySeconds"]
    graph_api_version: str = DEFAULTS["graphApiVersion"]
    openai_base_url: str | None = None
    quota_timezone: str = DEFAULTS["quotaTimezone"]
    history_turns: int = DEFAULTS["historyTurns"]
    history_max_chars: int = DEFAULTS["historyMaxChars"]
    history_ttl_hours: int = DEFAULTS["historyTtlHours"]
    protect_table: bool = False  # "auto" in Pulumi.yaml: decided by the stack's name
    kms_key_arn: str | None = None
    log_level: str = DEFAULTS["logLevel"]
    # Operations: alarms to the owner's topic (and e-mail), thresholds.
    alarms: bool = DEFAULTS["alarms"]
    alarm_queue_age_seconds: int = DEFAULTS["alarmQueueAgeSeconds"]
    alarm_errors: int = DEFAULTS["alarmErrors"]
    owner_email: str | None = None
    # Messenger set up by `pulumi up` (both ids set) and what a person sees first.
    app_id: str | None = None
    page_id: str | None = None
    greeting: str | None = None  # None: handler.profile.DEFAULT_GREETING
    greetings: tuple[tuple[str, str], ...] = ()  # (locale, text) for other locales
    ice_breakers: tuple[str, ...] = ()
    menu_links: tuple[tuple[str, str], ...] = ()  # (title, https URL)
    welcome_message: str | None = None  # None: the handler's built-in welcome
    # The owner in the conversation: the bot's pause when a human answers, and the notices.
    human_pause_minutes: int = DEFAULTS["humanPauseMinutes"]
    takeover_notices: bool = DEFAULTS["takeoverNotices"]
    # Going Live: the privacy page the function serves.
    privacy_contact: str | None = None
    privacy_text: str | None = None  # None: generated from the settings by the handler
    privacy_text_file: str | None = None  # where privacy_text was read from, if a file

    @property
    def graph_api_url(self) -> str:
        return f"{GRAPH_API_HOST}/{self.graph_api_version}"

    @property
    def sets_up_messenger(self) -> bool:
        """Both ids given: `pulumi up` subscribes the webhook and the page, and sets the profile."""
        return bool(self.app_id and self.page_id)

    @property
    def greeting_texts(self) -> dict[str, str]:
        """Greeting per locale, as ``handler.profile`` takes them (no default: its own)."""
        texts = dict(self.greetings)
        if self.greeting:
            texts[profile.DEFAULT_LOCALE] = self.greeting
        return texts

    def messenger_profile(self) -> dict[str, Any]:
        """The whole Messenger profile the page gets (one Graph call sets it)."""
        return profile.messenger_profile(self.greeting_texts, self.ice_breakers, self.menu_links)

    @property
    def system_log_level(self) -> str:
        """Lambda's platform lines (START, END, REPORT) at INFO, or DEBUG when debugging."""
        return "DEBUG" if self.log_level == "DEBUG" else "INFO"


SETTING_KEYS: tuple[str, ...] = tuple(
    config_key(f.name) for f in dataclasses.fields(BridgeSettings)
)
SECRET_KEYS: tuple[str, ...] = tuple(config_key(name) for name in SECRET_SOURCES)
REQUIRED_SECRET_KEYS: tuple[str, ...] = tuple(
    config_key(name) for name in SECRET_SOURCES if name not in GENERATED_SECRETS
)


@dataclass
class _Reader:
    """Turns raw config strings into typed values, collecting problems instead of stopping."""

    raw: Mapping[str, str | None]
    problems: list[str] = field(default_factory=list)

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        return value.strip() if value is not None and value.strip() else None

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def integer(self, key: str, default: int, low: int, high: int | None = None) -> int:
        value = self.text(key)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.fail(key, f"must be a whole number, got {value!r}")
            return default
        if number < low or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.fail(key, f"must be {bounds}, got {number}")
        return number

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.text(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.fail(key, f"must be a number, got {value!r}")
            return default
        if not low <= number <= high:
            self.fail(key, f"must be between {low} and {high}, got {number}")
        return number

    def optional_number(self, key: str, low: float, high: float) -> float | None:
        """A number sent only when it is set: empty means none."""
        if self.text(key) is None:
            return None
        return self.number(key, low, low, high)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.text(key)
        if value is None:
            return default
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(key, f"must be true or false, got {value!r}")
        return default

    def choice(self, key: str, default: str, choices: tuple[str, ...], upper: bool = False) -> str:
        value = self.text(key)
        if value is None:
            return default
        value = value.upper() if upper else value
        if value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value


def _set_item(key: str, example: str) -> str:
    """The command that sets a list setting's first item as text."""
    return f"`pulumi config set --path '{key}[0]' --type string {example}`"


def _json_list(reader: _Reader, key: str, noun: str, example: str) -> list[Any] | None:
    """A list setting as Pulumi passes it (JSON); None when unset or not a list (noted)."""
    value = reader.text(key)
    if value is None:
        return None
    try:
        items = json.loads(value)
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list):
        reader.fail(key, f"must be a list of {noun}, e.g. {_set_item(key, example)}")
        return None
    return items


def _admin_psids(reader: _Reader, key: str) -> tuple[str, ...]:
    items = _json_list(reader, key, "PSIDs", "1234567890123456")
    if items is None:
        return ()
    example = _set_item(key, "1234567890123456")
    # A PSID set without --type string arrives as a number; a whole one keeps every digit
    # here, one that went through a float (1.2e+15) has lost some.
    if not all(
        isinstance(i, str) or (isinstance(i, int) and not isinstance(i, bool)) for i in items
    ):
        reader.fail(key, f"a PSID must be stored as text: {example}; got {items!r}")
        return ()
    try:
        valid = parse_admin_psids(",".join(str(i) for i in items))
    except SettingsError:
        reader.fail(key, f"a PSID is digits only, got {items!r}")
        return ()
    return tuple(sorted(valid))


def _log_level(reader: _Reader, key: str, default: str) -> str:
    """Lambda's level name; Python's WARNING and CRITICAL are taken for WARN and FATAL."""
    value = (reader.text(key) or default).upper()
    value = LOG_LEVEL_ALIASES.get(value, value)
    if value not in LOG_LEVELS:
        reader.fail(key, f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value


def _parameter_text(
    reader: _Reader, key: str, file_key: str, root: Path, noun: str
) -> tuple[str | None, str | None]:
    """A text kept in an SSM parameter, given inline (``key``) or in a file of the project
    (``file_key``); (text, file). ``noun`` names it in problems ("the prompt")."""
    inline, file = reader.text(key), reader.text(file_key)
    if inline and file:
        reader.fail(file_key, f"set {key} or {file_key}, not both")
        return None, None
    text = inline
    if file:
        path = Path(file) if Path(file).is_absolute() else root / file
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            reader.fail(file_key, f"cannot read {file!r}: {error}")
            return None, file
        if not text:
            reader.fail(file_key, f"{file!r} is empty")
    if text and len(text.encode()) > MAX_PARAMETER_BYTES:
        reader.fail(
            file_key if file else key,
            f"{noun} is {len(text.encode())} bytes, over SSM's {MAX_PARAMETER_BYTES}",
        )
    return text or None, file


def _system_prompt(reader: _Reader, root: Path) -> tuple[str | None, str | None]:
    """The prompt, given inline or in a file of the project; (prompt, file)."""
    return _parameter_text(reader, "systemPrompt", "systemPromptFile", root, "the prompt")


def _privacy_text(reader: _Reader, root: Path) -> tuple[str | None, str | None]:
    """The owner's own privacy page, inline or in a file; (text, file)."""
    return _parameter_text(reader, "privacyText", "privacyTextFile", root, "the privacy text")


def _string_list(reader: _Reader, key: str, example: str) -> tuple[str, ...]:
    """A list of texts (Pulumi passes arrays as JSON). An item set with ``--path`` but
    without ``--type string`` arrives as a number or a boolean: refused, with the fix."""
    items = _json_list(reader, key, "texts", example)
    if items is None:
        return ()
    command = _set_item(key, example)
    if not all(isinstance(item, str) for item in items):
        reader.fail(key, f"every item must be stored as text: {command}; got {items!r}")
        return ()
    texts = tuple(item.strip() for item in items)
    if not all(texts):
        reader.fail(key, f"an item is empty, got {items!r}")
    return texts


def _pairs(reader: _Reader, key: str, example: str, shape: str) -> tuple[tuple[str, str], ...]:
    """``name=value`` items, split at the first ``=`` (a URL may hold more)."""
    pairs = []
    for item in _string_list(reader, key, example):
        name, equals, value = item.partition("=")
        if not equals or not name.strip() or not value.strip():
            reader.fail(key, f"each item is {shape}, like {example}; got {item!r}")
            continue
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def _model_prices(reader: _Reader, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """The price table, each item checked as the handler reads it."""
    if reader.text(key) is None:
        return default
    items = _string_list(reader, key, "'gpt-5-mini=0.25/0.025/2.00'")
    for item in items:
        try:
            parse_model_prices([item])
        except SettingsError:
            reader.fail(
                key,
                f"{item!r} is not model=input/cached/output dollars per million tokens, "
                "like 'gpt-5-mini=0.25/0.025/2.00'",
            )
    return items


def _graph_id(reader: _Reader, key: str, what: str) -> str | None:
    value = reader.text(key)
    if value is not None and not _GRAPH_ID.match(value):
        reader.fail(key, f"must be the {what}'s numeric id, got {value!r}")
    return value


def _greetings(reader: _Reader, key: str) -> tuple[tuple[str, str], ...]:
    found = _pairs(reader, key, "'fr_FR=Bonjour !'", "locale=text")
    for locale, _text in found:
        if locale == profile.DEFAULT_LOCALE:
            reader.fail(key, "the default locale's greeting is the setting greeting")
        elif not _LOCALE.match(locale):
            reader.fail(key, f"{locale!r} is not a Messenger locale like fr_FR or en_US")
    locales = [locale for locale, _text in found]
    if len(set(locales)) != len(locales):
        reader.fail(key, f"a locale is given twice: {locales}")
    return found


def _menu_links(reader: _Reader, key: str) -> tuple[tuple[str, str], ...]:
    links = _pairs(reader, key, "'Our site=https://example.com'", "Title=https://url")
    for title, url in links:
        parsed = urlparse(url)
        if parsed.scheme == "https" and not parsed.netloc:
            reader.fail(key, f"{url!r} (for {title!r}) is not a URL")
    return links


def _email(reader: _Reader, key: str) -> str | None:
    value = reader.text(key)
    if value is not None and not _EMAIL.match(value):
        reader.fail(key, f"must be an e-mail address, got {value!r}")
    return value


def _privacy_contact(reader: _Reader, key: str) -> str | None:
    value = reader.text(key)
    if value is None:
        return None
    parsed = urlparse(value)
    is_url = parsed.scheme in ("https", "http") and bool(parsed.netloc)
    if not (is_url or _EMAIL.match(value)):
        reader.fail(key, f"must be an e-mail address or an http(s) URL, got {value!r}")
    elif len(value) > MAX_PRIVACY_CONTACT_CHARS:
        reader.fail(key, f"must be at most {MAX_PRIVACY_CONTACT_CHARS} characters")
    return value


def _profile_problems(reader: _Reader, settings: BridgeSettings) -> None:
    """What Messenger's profile API would refuse, each under the key that causes it."""
    checks = {
        "greeting": ({profile.DEFAULT_LOCALE: settings.greeting or ""}, (), ()),
        "greetings": (dict(settings.greetings), (), ()),
        "iceBreakers": ({}, settings.ice_breakers, ()),
        "menuLinks": ({}, (), settings.menu_links),
    }
    for key, (greetings, questions, links) in checks.items():
        for problem in profile.problems(greetings, questions, links):
            reader.fail(key, problem)


def _timezone(reader: _Reader, key: str, default: str) -> str:
    value = reader.text(key) or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        # A machine without a time-zone database cannot judge; the handler checks at start.
        if available_timezones():
            reader.fail(key, f"is not a known IANA time zone, got {value!r}")
    return value


def _openai_base_url(reader: _Reader, key: str) -> str | None:
    value = reader.text(key)
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        reader.fail(key, f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _kms_key_arn(reader: _Reader, key: str, region: str | None) -> str | None:
    value = reader.text(key)
    if value is None:
        return None
    if ":alias/" in value:
        reader.fail(key, "must be a key ARN, not an alias: IAM grants kms:Decrypt on the key ARN")
        return value
    match = _KMS_KEY_ARN.match(value)
    if match is None:
        reader.fail(key, f"must look like arn:aws:kms:<region>:<account>:key/<id>, got {value!r}")
    elif region and match["region"] != region:
        reader.fail(key, f"the key is in {match['region']} but the stack deploys to {region}")
    return value


def _protect_table(reader: _Reader, key: str, stack: str) -> bool:
    value = (reader.text(key) or "auto").lower()
    if value == "auto":
        return stack in PROTECTED_STACKS
    if value in ("true", "false"):
        return value == "true"
    reader.fail(key, f"must be true, false or auto, got {value!r}")
    return True


def parse_settings(
    raw: Mapping[str, str | None],
    *,
    stack: str,
    region: str | None = None,
    root: Path = PROJECT_ROOT,
) -> BridgeSettings:
    """Validate raw config strings (keyed by config key) into settings, or raise ConfigError."""
    d = BridgeSettings()
    r = _Reader(raw)
    reserved = r.integer("reservedConcurrency", -1, -1)
    system_prompt, system_prompt_file = _system_prompt(r, root)
    privacy_text, privacy_text_file = _privacy_text(r, root)
    settings = BridgeSettings(
        model=r.text("model") or d.model,
        system_prompt=system_prompt,
        system_prompt_file=system_prompt_file,
        temperature=r.optional_number("temperature", 0.0, 2.0),
        top_p=r.optional_number("topP", 0.0, 1.0),
        reasoning_effort=r.choice(
            "reasoningEffort", d.reasoning_effort, (*REASONING_EFFORTS, REASONING_OMIT)
        ),
        max_tokens=r.integer("maxTokens", d.max_tokens, 1),
        openai_api=r.choice("openaiApi", d.openai_api, OPENAI_APIS),
        vision=r.boolean("vision", d.vision),
        media_max_mb=r.integer("mediaMaxMb", d.media_max_mb, 1, MAX_MEDIA_MB),
        transcription_model=r.text("transcriptionModel") or d.transcription_model,
        daily_token_limit=r.integer("dailyTokenLimit", d.daily_token_limit, 0),
        daily_spend_limit_usd=r.number(
            "dailySpendLimitUsd", d.daily_spend_limit_usd, 0.0, 1_000_000.0
        ),
        model_prices=_model_prices(r, "modelPrices", d.model_prices),
        daily_limit=r.integer("dailyLimit", d.daily_limit, 0),
        admin_psids=_admin_psids(r, "adminPsids"),
        keep_warm_minutes=r.integer("keepWarmMinutes", d.keep_warm_minutes, 0, 1440),
        memory_mb=r.integer("memoryMb", d.memory_mb, 128, 10240),
        timeout_seconds=r.integer("timeoutSeconds", d.timeout_seconds, 1, 900),
        architecture=r.choice("architecture", d.architecture, ARCHITECTURES),
        log_retention_days=r.integer("logRetentionDays", d.log_retention_days, 0),
        reserved_concurrency=None if reserved == -1 else reserved,
        batch_size=r.integer("batchSize", d.batch_size, 1, FIFO_MAX_BATCH_SIZE),
        max_concurrency=r.integer("maxConcurrency", d.max_concurrency, *MAX_CONCURRENCY_RANGE),
        max_receive_count=r.integer("maxReceiveCount", d.max_receive_count, 1, MAX_RECEIVE_COUNT),
        retry_delay_seconds=r.integer(
            "retryDelaySeconds", d.retry_delay_seconds, 0, MAX_RETRY_DELAY_SECONDS
        ),
        graph_api_version=r.text("graphApiVersion") or d.graph_api_version,
        openai_base_url=_openai_base_url(r, "openaiBaseUrl"),
        quota_timezone=_timezone(r, "quotaTimezone", d.quota_timezone),
        history_turns=r.integer("historyTurns", d.history_turns, 0),
        history_max_chars=r.integer("historyMaxChars", d.history_max_chars, 0),
        history_ttl_hours=r.integer("historyTtlHours", d.history_ttl_hours, 1),
        protect_table=_protect_table(r, "protectTable", stack),
        kms_key_arn=_kms_key_arn(r, "kmsKeyArn", region),
        log_level=_log_level(r, "logLevel", d.log_level),
        alarms=r.boolean("alarms", d.alarms),
        alarm_queue_age_seconds=r.integer(
            "alarmQueueAgeSeconds", d.alarm_queue_age_seconds, 60, MAX_ALARM_QUEUE_AGE_SECONDS
        ),
        alarm_errors=r.integer("alarmErrors", d.alarm_errors, 1),
        owner_email=_email(r, "ownerEmail"),
        app_id=_graph_id(r, "appId", "Meta app"),
        page_id=_graph_id(r, "pageId", "Facebook page"),
        greeting=r.text("greeting"),
        greetings=_greetings(r, "greetings"),
        ice_breakers=_string_list(r, "iceBreakers", "'What can you do?'"),
        menu_links=_menu_links(r, "menuLinks"),
        welcome_message=r.text("welcomeMessage"),
        human_pause_minutes=r.integer(
            "humanPauseMinutes", d.human_pause_minutes, 0, MAX_PAUSE_MINUTES
        ),
        takeover_notices=r.boolean("takeoverNotices", d.takeover_notices),
        privacy_contact=_privacy_contact(r, "privacyContact"),
        privacy_text=privacy_text,
        privacy_text_file=privacy_text_file,
    )
    _profile_problems(r, settings)
    if settings.welcome_message and len(settings.welcome_message) > MAX_WELCOME_CHARS:
        r.fail(
            "welcomeMessage",
            f"is {len(settings.welcome_message)} characters, over Messenger's "
            f"{MAX_WELCOME_CHARS} for one message",
        )
    if settings.timeout_seconds <= MODEL_CALL_BUDGET_SECONDS:
        r.fail(
            "timeoutSeconds",
            f"must be more than {MODEL_CALL_BUDGET_SECONDS:g}s, what one model call may take "
            f"({OPENAI_TIMEOUT_SECONDS:g}s x {OPENAI_MAX_RETRIES + 1} attempts), "
            f"got {settings.timeout_seconds}",
        )
    if settings.log_retention_days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
        r.fail("logRetentionDays", f"must be one of {allowed}, got {settings.log_retention_days}")
    if settings.reserved_concurrency == 0:
        r.fail("reservedConcurrency", "0 would throttle every request; leave it unset (-1)")
    elif (
        settings.reserved_concurrency is not None
        and settings.max_concurrency >= settings.reserved_concurrency
    ):
        # Throttled batches go back to the queue and count as receives: enough of them and
        # a message lands in the dead-letter queue unanswered.
        r.fail(
            "maxConcurrency",
            f"must be less than reservedConcurrency ({settings.reserved_concurrency}), so the "
            f"queue's invocations leave room for the webhook's, got {settings.max_concurrency}",
        )
    if not _GRAPH_VERSION.match(settings.graph_api_version):
        r.fail("graphApiVersion", f"must look like v26.0, got {settings.graph_api_version!r}")
    if settings.openai_api == "responses" and settings.max_tokens < RESPONSES_MIN_OUTPUT_TOKENS:
        r.fail(
            "maxTokens",
            f"must be at least {RESPONSES_MIN_OUTPUT_TOKENS} with openaiApi responses (OpenAI "
            f"refuses a smaller max_output_tokens with integer_below_min_value), got "
            f"{settings.max_tokens}",
        )
    if r.problems:
        raise ConfigError(r.problems)
    return settings


@dataclass(frozen=True)
class BridgeSecrets:
    """The secrets by handler name; verify_token None means the stack generates one."""

    app_secret: pulumi.Input[str]
    page_access_token: pulumi.Input[str]
    openai_api_key: pulumi.Input[str]
    verify_token: pulumi.Input[str] | None = None


def unknown_keys(full_keys: Iterable[str], namespace: str) -> list[str]:
    """Keys set in the project's namespace that no setting reads: most likely typos."""
    known = {f"{namespace}:{key}" for key in (*SETTING_KEYS, *SECRET_KEYS)}
    prefix = f"{namespace}:"
    return sorted(k[len(prefix) :] for k in full_keys if k.startswith(prefix) and k not in known)


def _configured_keys() -> list[str]:
    """Every config key the engine passed to the program (best effort: internal API)."""
    store = getattr(pulumi.runtime.config, "CONFIG", None)
    return list(store.get()) if store is not None else []


def unpriced_models(settings: BridgeSettings) -> list[str]:
    """The models the stack uses that the price table does not list (nor a dated name of)."""
    try:
        priced = parse_model_prices(list(settings.model_prices))
    except SettingsError:
        return []
    return [
        model
        for model in (settings.model, settings.transcription_model)
        if model not in priced and not any(model.startswith(f"{name}-") for name in priced)
    ]


def load_settings(config: pulumi.Config | None = None) -> BridgeSettings:
    """Read this stack's settings from Pulumi config (project namespace and aws:region)."""
    config = config or pulumi.Config()
    for key in unknown_keys(_configured_keys(), config.name):
        pulumi.log.warn(f"config key {key!r} is not a setting of this project; is it a typo?")
    raw = {key: config.get(key) for key in SETTING_KEYS}
    settings = parse_settings(
        raw, stack=pulumi.get_stack(), region=pulumi.Config("aws").get("region")
    )
    for model in unpriced_models(settings):
        pulumi.log.warn(
            f"modelPrices has no price for {model!r}: the spend cap and /stats price it at the "
            f"dearest listed row (an estimate on the high side); add "
            f"`{model}=input/cached/output` to modelPrices"
        )
    if settings.batch_size > 1:
        pulumi.log.warn(
            f"batchSize {settings.batch_size}: every message of a FIFO batch counts a receive, "
            "so a message that keeps failing uses up the retries of the person's next "
            "messages; 1 (the default) avoids it"
        )
    if settings.max_receive_count < ADVISED_MIN_RECEIVES:
        pulumi.log.warn(
            f"maxReceiveCount {settings.max_receive_count}: AWS advises at least "
            f"{ADVISED_MIN_RECEIVES} for a queue that feeds Lambda (a throttled invocation "
            "counts a receive too), or a brief outage sends messages to the dead-letter queue"
        )
    return settings


# AWS's advice for the redrive policy of a queue that feeds Lambda.
ADVISED_MIN_RECEIVES = 5


def load_secrets(config: pulumi.Config | None = None) -> BridgeSecrets:
    """Read the secrets as secret Outputs; a missing one fails with the command that sets it.

    An empty value counts as unset: Pulumi.yaml gives the optional ``verifyToken`` an empty
    default (a secret key cannot have a default), which means "generate one".
    """
    config = config or pulumi.Config()
    raw = {key: config.get(key) or None for key in SECRET_KEYS}
    missing = [key for key in REQUIRED_SECRET_KEYS if raw[key] is None]
    if missing:
        raise ConfigError(
            [f"{key}: not set; run `pulumi config set --secret {key}`" for key in missing]
        )
    for key, value in raw.items():
        if value is not None and not pulumi.runtime.is_config_secret(config.full_key(key)):
            pulumi.log.warn(f"{key} is stored in plain text; set it again with `--secret`")
    values = {key: None if v is None else pulumi.Output.secret(v) for key, v in raw.items()}
    return BridgeSecrets(**{name: values[config_key(name)] for name in SECRET_SOURCES})
