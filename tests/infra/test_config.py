"""Settings parsing (pure) and its agreement with Pulumi.yaml and the handler's defaults."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from handler import profile
from handler.batch import MAX_BACKOFF_SECONDS
from handler.settings import (
    DEFAULT_MODEL,
    DEFAULT_SYSTEM_PROMPT,
    SECRET_SOURCES,
    Price,
    Settings,
)
from infra.config import (
    MAX_RETRY_DELAY_SECONDS,
    MODEL_CALL_BUDGET_SECONDS,
    REQUIRED_SECRET_KEYS,
    SECRET_KEYS,
    SETTING_KEYS,
    BridgeSecrets,
    BridgeSettings,
    ConfigError,
    config_key,
    parse_settings,
    unknown_keys,
    unpriced_models,
)
from infra.defaults import generated_text
from tests.infra.capture import PROJECT_ROOT, config_text, project_defaults

PROJECT_FILE = PROJECT_ROOT / "Pulumi.yaml"
DEV_STACK_FILE = PROJECT_ROOT / "Pulumi.dev.yaml"


def parse(stack: str = "dev", region: str | None = "us-east-1", **raw: str) -> BridgeSettings:
    return parse_settings(raw, stack=stack, region=region)


def problems(**raw: str) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse(**raw)
    return error.value.problems


# --- defaults -------------------------------------------------------------------------------


def test_defaults_from_the_brief_and_the_handler() -> None:
    settings = parse()
    handler = Settings(table_name="t")
    assert settings.model == DEFAULT_MODEL
    assert settings.system_prompt is None  # the handler's own: DEFAULT_SYSTEM_PROMPT
    assert handler.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert settings.temperature is handler.temperature is None  # not sent: GPT-5 refuses it
    assert settings.top_p is handler.top_p is None
    assert settings.reasoning_effort == handler.reasoning_effort == "low"
    assert settings.max_tokens == handler.max_tokens == 2000
    assert settings.openai_api == handler.openai_api == "chat"
    assert settings.vision is handler.vision is True
    assert settings.media_max_mb * 1024 * 1024 == handler.media_max_bytes == 5 * 1024 * 1024
    assert settings.transcription_model == handler.transcription_model
    assert handler.transcription_model == "gpt-4o-mini-transcribe"
    assert settings.daily_token_limit == handler.daily_token_limit == 50_000
    assert settings.daily_spend_limit_usd == handler.daily_spend_limit_usd == 5.0
    assert set(handler.model_prices) == {p.split("=")[0] for p in settings.model_prices}
    assert {"gpt-5-mini", "gpt-5-nano", "gpt-4.1-mini", "gpt-4o-mini"} <= set(handler.model_prices)
    assert handler.model_prices["gpt-5-mini"] == Price(0.25, 0.025, 2.00)
    assert settings.daily_limit == handler.daily_limit == 10
    assert settings.quota_timezone == handler.timezone == "UTC"
    assert settings.history_turns == handler.history_turns == 6
    assert settings.history_max_chars == handler.history_max_chars == 6000
    assert settings.history_ttl_hours == handler.history_ttl_hours == 24
    assert settings.graph_api_url == handler.graph_api_url
    assert settings.log_level == handler.log_level
    assert settings.admin_psids == ()
    assert settings.keep_warm_minutes == 20
    assert settings.memory_mb == 512
    assert settings.timeout_seconds == 120
    assert settings.architecture == "arm64"
    assert settings.log_retention_days == 14
    assert settings.reserved_concurrency is None
    assert settings.graph_api_version == "v26.0"
    assert settings.openai_base_url is None
    assert settings.kms_key_arn is None
    assert settings.protect_table is False
    assert settings.batch_size == 1  # one message a receive: see Pulumi.yaml
    assert settings.max_concurrency == 5
    assert settings.max_receive_count == handler.max_receives == 5
    assert settings.retry_delay_seconds == handler.retry_delay_seconds == 10
    # Messenger left to the dashboard; the handler's own welcome and privacy page.
    assert (settings.app_id, settings.page_id, settings.sets_up_messenger) == (None, None, False)
    assert settings.greeting is None and settings.greetings == ()
    assert settings.ice_breakers == () and settings.menu_links == ()
    assert settings.welcome_message is None
    assert settings.privacy_contact is None and settings.privacy_text is None
    assert settings.messenger_profile() == profile.messenger_profile()


def test_default_timeout_outlives_a_model_call_with_retries() -> None:
    handler = Settings(table_name="t")
    budget = handler.openai_timeout_seconds * (handler.openai_max_retries + 1)
    assert MODEL_CALL_BUDGET_SECONDS == budget == 75
    assert parse().timeout_seconds > budget


def test_first_retry_delay_is_bounded_by_the_handlers_longest_backoff() -> None:
    assert MAX_RETRY_DELAY_SECONDS == MAX_BACKOFF_SECONDS


@pytest.mark.parametrize(("stack", "protected"), [("prod", True), ("dev", False), ("test", False)])
def test_table_protection_defaults_to_prod_only(stack: str, protected: bool) -> None:
    assert parse(stack=stack).protect_table is protected
    assert parse(stack=stack, protectTable="auto").protect_table is protected


def test_empty_values_mean_the_default() -> None:
    assert parse(systemPrompt="", openaiBaseUrl="", kmsKeyArn="", adminPsids="") == parse()
    empty = ("appId", "pageId", "greeting", "welcomeMessage", "privacyContact", "privacyText")
    assert parse(**dict.fromkeys(empty, ""), iceBreakers="[]", greetings="[]") == parse()
    assert parse(temperature="", topP="", modelPrices="") == parse()


# --- parsing --------------------------------------------------------------------------------


def test_values_are_parsed() -> None:
    settings = parse(
        temperature="1.25",
        topP="0.9",
        reasoningEffort="omit",
        openaiApi="responses",
        vision="false",
        mediaMaxMb="25",
        transcriptionModel="gpt-transcribe",
        dailyTokenLimit="0",
        dailySpendLimitUsd="0.5",
        modelPrices='["my-model=1/0.1/2", "other=3/4"]',
        maxTokens="100",
        adminPsids='["42", 7]',
        reservedConcurrency="3",
        maxConcurrency="2",
        batchSize="3",
        maxReceiveCount="8",
        retryDelaySeconds="0",
        logLevel="warning",
        protectTable="true",
        openaiBaseUrl="http://localhost:8080/v1/",
        kmsKeyArn="arn:aws:kms:us-east-1:123456789012:key/abcd-1234",
        quotaTimezone="Europe/Paris",
        logRetentionDays="0",
    )
    assert settings.temperature == 1.25
    assert settings.top_p == 0.9
    assert settings.reasoning_effort == "omit"
    assert settings.openai_api == "responses"
    assert settings.vision is False
    assert settings.media_max_mb == 25
    assert settings.transcription_model == "gpt-transcribe"
    assert settings.daily_token_limit == 0
    assert settings.daily_spend_limit_usd == 0.5
    assert settings.model_prices == ("my-model=1/0.1/2", "other=3/4")
    assert settings.max_tokens == 100
    assert settings.admin_psids == ("42", "7")
    assert settings.reserved_concurrency == 3
    assert settings.max_concurrency == 2
    assert settings.batch_size == 3
    assert settings.max_receive_count == 8
    assert settings.retry_delay_seconds == 0
    assert settings.log_level == "WARN"  # Lambda's name for Python's WARNING
    assert settings.protect_table is True
    assert settings.openai_base_url == "http://localhost:8080/v1"
    assert settings.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/abcd-1234"
    assert settings.quota_timezone == "Europe/Paris"
    assert settings.log_retention_days == 0


def test_psids_set_without_type_string_keep_every_digit_or_are_refused_clearly() -> None:
    assert parse(adminPsids='[1234567890123456789, "42"]').admin_psids == (
        "1234567890123456789",
        "42",
    )
    [problem] = problems(adminPsids="[1.2345678901234568e+18]")
    assert "--type string" in problem and problem.startswith("adminPsids")


@pytest.mark.parametrize(
    ("given", "level"),
    [("debug", "DEBUG"), ("WARN", "WARN"), ("warning", "WARN"), ("fatal", "FATAL"),
     ("CRITICAL", "FATAL")],
)  # fmt: skip
def test_log_levels_are_lambdas_names_and_pythons_are_taken_too(given: str, level: str) -> None:
    assert parse(logLevel=given).log_level == level


def test_a_long_system_prompt_comes_from_a_file_of_the_project(tmp_path) -> None:
    prompt = "You answer questions about the bakery.\n" * 200  # 7.8 KB
    (tmp_path / "prompt.txt").write_text(prompt)
    settings = parse_settings({"systemPromptFile": "prompt.txt"}, stack="dev", root=tmp_path)
    assert settings.system_prompt == prompt.strip()
    assert settings.system_prompt_file == "prompt.txt"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"systemPrompt": "a", "systemPromptFile": "p.txt"}, "not both"),
        ({"systemPromptFile": "missing.txt"}, "systemPromptFile: cannot read 'missing.txt'"),
        ({"systemPrompt": "é" * 4100}, "systemPrompt: the prompt is 8200 bytes, over SSM's 8192"),
    ],
)
def test_system_prompt_problems_name_their_key(tmp_path, raw: dict, fragment: str) -> None:
    (tmp_path / "p.txt").write_text("prompt")
    with pytest.raises(ConfigError) as error:
        parse_settings(raw, stack="dev", root=tmp_path)
    assert any(fragment in problem for problem in error.value.problems), error.value.problems


def test_first_contact_and_going_live_values_are_parsed() -> None:
    settings = parse(
        appId="1234567890123",
        pageId=" 100000000000001 ",
        greeting="Hi {{user_first_name}}!",
        greetings='["fr_FR=Bonjour !", "de_DE = Hallo! 2=2"]',
        iceBreakers='["What can you do?", " Who made you? "]',
        menuLinks='["Our site=https://example.com/?a=b&c=d", "Docs=https://docs.example.com"]',
        welcomeMessage="Welcome! I am an automated assistant.",
        privacyContact="privacy@example.com",
    )
    assert (settings.app_id, settings.page_id) == ("1234567890123", "100000000000001")
    assert settings.sets_up_messenger
    assert settings.greetings == (("fr_FR", "Bonjour !"), ("de_DE", "Hallo! 2=2"))
    assert settings.ice_breakers == ("What can you do?", "Who made you?")
    assert settings.menu_links == (
        ("Our site", "https://example.com/?a=b&c=d"),  # split at the first "="
        ("Docs", "https://docs.example.com"),
    )
    assert settings.welcome_message == "Welcome! I am an automated assistant."
    assert settings.privacy_contact == "privacy@example.com"
    assert settings.messenger_profile() == profile.messenger_profile(
        {"default": "Hi {{user_first_name}}!", "fr_FR": "Bonjour !", "de_DE": "Hallo! 2=2"},
        ["What can you do?", "Who made you?"],
        [("Our site", "https://example.com/?a=b&c=d"), ("Docs", "https://docs.example.com")],
    )


def test_messenger_is_set_up_only_with_both_ids() -> None:
    assert not parse(appId="123").sets_up_messenger
    assert not parse(pageId="456").sets_up_messenger
    assert parse(appId="123", pageId="456").sets_up_messenger


def test_a_privacy_text_comes_inline_or_from_a_file_of_the_project(tmp_path) -> None:
    (tmp_path / "privacy.md").write_text("\nOur privacy page.\n")
    settings = parse_settings({"privacyTextFile": "privacy.md"}, stack="dev", root=tmp_path)
    assert settings.privacy_text == "Our privacy page."
    assert settings.privacy_text_file == "privacy.md"
    assert parse(privacyText=" Ours. ").privacy_text == "Ours."


@pytest.mark.parametrize("key", ["iceBreakers", "greetings", "menuLinks"])
@pytest.mark.parametrize("stored", ["[42]", "[true]", "[1.5]", '["ok", 7]'])
def test_text_items_set_without_type_string_are_refused_with_the_fix(key: str, stored: str) -> None:
    [problem] = problems(**{key: stored})
    assert problem.startswith(f"{key}: every item must be stored as text")
    assert f"--path '{key}[0]' --type string" in problem


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"privacyText": "a", "privacyTextFile": "p.txt"}, "privacyTextFile: set privacyText or"),
        ({"privacyTextFile": "missing.txt"}, "privacyTextFile: cannot read 'missing.txt'"),
        ({"privacyTextFile": "empty.txt"}, "privacyTextFile: 'empty.txt' is empty"),
        (
            {"privacyText": "é" * 4100},
            "privacyText: the privacy text is 8200 bytes, over SSM's 8192",
        ),
    ],
)
def test_privacy_text_problems_name_their_key(tmp_path, raw: dict, fragment: str) -> None:
    (tmp_path / "p.txt").write_text("privacy")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ConfigError) as error:
        parse_settings(raw, stack="dev", root=tmp_path)
    assert any(fragment in problem for problem in error.value.problems), error.value.problems


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"appId": "my-app"}, "appId: must be the Meta app's numeric id, got 'my-app'"),
        ({"pageId": "12a"}, "pageId: must be the Facebook page's numeric id"),
        ({"greeting": "x" * 161}, "greeting: greeting for default is 161 characters, over 160"),
        ({"greetings": '["fr_FR=' + "x" * 161 + '"]'}, "greetings: greeting for fr_FR is 161"),
        ({"greetings": '["Bonjour"]'}, "greetings: each item is locale=text"),
        ({"greetings": '["french=Bonjour"]'}, "greetings: 'french' is not a Messenger locale"),
        ({"greetings": '["default=Hi"]'}, "greetings: the default locale's greeting is the"),
        ({"greetings": '["fr_FR=a", "fr_FR=b"]'}, "greetings: a locale is given twice"),
        ({"greetings": "fr_FR=Bonjour"}, "greetings: must be a list of texts"),
        ({"iceBreakers": '["a", "b", "c", "d", "e"]'}, "iceBreakers: 5 ice breakers, over"),
        ({"iceBreakers": '["a", " "]'}, "iceBreakers: an item is empty"),
        ({"menuLinks": '["https://example.com"]'}, "menuLinks: each item is Title=https://url"),
        ({"menuLinks": '["Site=http://example.com"]'}, "menuLinks: menu link 'http://example.com'"),
        ({"menuLinks": '["' + "T" * 31 + '=https://x.com"]'}, "is over 30 characters"),
        ({"menuLinks": '["Site=https://"]'}, "menuLinks: 'https://' (for 'Site') is not a URL"),
        (
            {"menuLinks": json.dumps([f"L{i}=https://x.com/{i}" for i in range(17)])},
            "menuLinks: 17 menu links, over 16",
        ),
        ({"welcomeMessage": "w" * 2001}, "welcomeMessage: is 2001 characters, over Messenger's"),
        ({"privacyContact": "nobody"}, "privacyContact: must be an e-mail address or an http(s)"),
        ({"privacyContact": "https://x.com/" + "c" * 200}, "privacyContact: must be at most 200"),
    ],
)
def test_messenger_settings_problems_name_their_key(raw: dict[str, str], fragment: str) -> None:
    reported = problems(**raw)
    assert any(fragment in p for p in reported), reported


def test_text_lists_are_arrays_of_strings_in_pulumi_yaml() -> None:
    schema = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    for key in ("adminPsids", "greetings", "iceBreakers", "menuLinks"):
        assert schema[key]["type"] == "array", key
        assert schema[key]["items"] == {"type": "string"}, key
        assert schema[key]["default"] == [], key


def test_the_handlers_defaults_are_generated_from_pulumi_yaml() -> None:
    assert (PROJECT_ROOT / "handler" / "defaults.py").read_text() == generated_text(), (
        "run python -m infra.defaults"
    )
    declared = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    handler = Settings(table_name="t")
    assert handler.model == declared["model"]["default"]
    assert handler.daily_limit == declared["dailyLimit"]["default"]
    assert handler.graph_api_url.endswith("/" + declared["graphApiVersion"]["default"])
    assert handler.max_receives == declared["maxReceiveCount"]["default"]


def test_reserved_concurrency_minus_one_means_none() -> None:
    assert parse(reservedConcurrency="-1").reserved_concurrency is None


def test_a_small_max_tokens_is_refused_only_with_the_responses_api() -> None:
    assert parse(maxTokens="8").max_tokens == 8  # Chat Completions takes it
    assert parse(maxTokens="16", openaiApi="responses").max_tokens == 16


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"temperature": "hot"}, "temperature: must be a number"),
        ({"temperature": "2.5"}, "temperature: must be between 0.0 and 2.0"),
        ({"topP": "1.5"}, "topP: must be between 0.0 and 1.0"),
        ({"reasoningEffort": "extreme"}, "reasoningEffort: must be one of none, minimal, low"),
        ({"openaiApi": "completions"}, "openaiApi: must be one of chat, responses"),
        ({"vision": "maybe"}, "vision: must be true or false"),
        ({"mediaMaxMb": "26"}, "mediaMaxMb: must be between 1 and 25"),
        ({"mediaMaxMb": "0"}, "mediaMaxMb: must be between 1 and 25"),
        ({"dailyTokenLimit": "-1"}, "dailyTokenLimit: must be at least 0"),
        ({"dailySpendLimitUsd": "five"}, "dailySpendLimitUsd: must be a number"),
        ({"dailySpendLimitUsd": "-1"}, "dailySpendLimitUsd: must be between"),
        ({"modelPrices": '["gpt-5-mini 0.25"]'}, "modelPrices: 'gpt-5-mini 0.25' is not model="),
        ({"modelPrices": "gpt-5-mini=1/2/3"}, "modelPrices: must be a list of texts"),
        ({"maxTokens": "0"}, "maxTokens: must be at least 1"),
        ({"maxTokens": "many"}, "maxTokens: must be a whole number"),
        (
            {"maxTokens": "15", "openaiApi": "responses"},
            "maxTokens: must be at least 16 with openaiApi responses",
        ),
        ({"dailyLimit": "-1"}, "dailyLimit"),
        ({"keepWarmMinutes": "1441"}, "keepWarmMinutes: must be between 0 and 1440"),
        ({"memoryMb": "64"}, "memoryMb: must be between 128 and 10240"),
        ({"timeoutSeconds": "75"}, "timeoutSeconds: must be more than 75s"),
        ({"timeoutSeconds": "901"}, "timeoutSeconds: must be between 1 and 900"),
        ({"architecture": "arm"}, "architecture: must be one of arm64, x86_64"),
        ({"logRetentionDays": "10"}, "logRetentionDays: must be one of"),
        ({"reservedConcurrency": "0"}, "reservedConcurrency: 0 would throttle"),
        ({"reservedConcurrency": "-2"}, "reservedConcurrency: must be at least -1"),
        ({"batchSize": "0"}, "batchSize: must be between 1 and 10"),
        ({"batchSize": "11"}, "batchSize: must be between 1 and 10"),
        ({"batchSize": "ten"}, "batchSize: must be a whole number"),
        ({"maxConcurrency": "1"}, "maxConcurrency: must be between 2 and 1000"),
        ({"maxConcurrency": "1001"}, "maxConcurrency: must be between 2 and 1000"),
        (
            {"maxConcurrency": "5", "reservedConcurrency": "5"},
            "maxConcurrency: must be less than reservedConcurrency (5)",
        ),
        ({"maxReceiveCount": "0"}, "maxReceiveCount: must be between 1 and 1000"),
        ({"maxReceiveCount": "1001"}, "maxReceiveCount: must be between 1 and 1000"),
        ({"retryDelaySeconds": "-1"}, "retryDelaySeconds: must be between 0 and 900"),
        ({"retryDelaySeconds": "901"}, "retryDelaySeconds: must be between 0 and 900"),
        ({"graphApiVersion": "24"}, "graphApiVersion: must look like v26.0"),
        ({"openaiBaseUrl": "llm.local"}, "openaiBaseUrl: must be an http(s) URL"),
        ({"quotaTimezone": "Mars/Olympus"}, "quotaTimezone: is not a known IANA time zone"),
        ({"historyTtlHours": "0"}, "historyTtlHours: must be at least 1"),
        ({"historyTurns": "-1"}, "historyTurns"),
        ({"logLevel": "loud"}, "logLevel: must be one of"),
        ({"protectTable": "yes"}, "protectTable: must be true, false or auto"),
        ({"adminPsids": "123"}, "adminPsids: must be a list of PSIDs"),
        ({"adminPsids": '["12a"]'}, "adminPsids: a PSID is digits only"),
        ({"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:alias/x"}, "not an alias"),
        ({"kmsKeyArn": "my-key"}, "kmsKeyArn: must look like"),
        ({"kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/abc"}, "key is in eu-west-1"),
    ],
)
def test_invalid_values_are_reported_with_their_key(raw: dict[str, str], fragment: str) -> None:
    reported = problems(**raw)
    assert any(fragment in p for p in reported), reported


def test_models_missing_from_the_price_table_are_named() -> None:
    assert unpriced_models(parse()) == []
    assert unpriced_models(parse(model="gpt-5-mini-2025-08-07")) == []  # a dated snapshot
    assert unpriced_models(parse(model="o4-mini", transcriptionModel="whisper-1")) == [
        "o4-mini",
        "whisper-1",
    ]


def test_reserved_concurrency_above_the_queues_leaves_the_webhook_room() -> None:
    settings = parse(reservedConcurrency="6", maxConcurrency="5")
    assert (settings.reserved_concurrency, settings.max_concurrency) == (6, 5)


def test_every_problem_is_reported_at_once() -> None:
    reported = problems(architecture="z80", memoryMb="1", logLevel="noisy")
    assert [p.split(":")[0] for p in reported] == ["memoryMb", "architecture", "logLevel"]


def test_unknown_keys_are_found_in_the_project_namespace_only() -> None:
    keys = ["messenger-bridge:memoryMB", "messenger-bridge:memoryMb", "aws:region", "other:x"]
    assert unknown_keys(keys, "messenger-bridge") == ["memoryMB"]


# --- one naming rule, one schema ------------------------------------------------------------


def test_config_keys_are_camel_case_field_names() -> None:
    assert config_key("log_retention_days") == "logRetentionDays"
    assert config_key("model") == "model"
    assert SECRET_KEYS == ("appSecret", "pageAccessToken", "verifyToken", "openaiApiKey")
    assert set(REQUIRED_SECRET_KEYS) == {"appSecret", "pageAccessToken", "openaiApiKey"}


def test_secret_fields_are_the_handlers_secrets() -> None:
    assert {f.name for f in dataclasses.fields(BridgeSecrets)} == set(SECRET_SOURCES)


def test_pulumi_yaml_declares_every_key_and_nothing_else() -> None:
    schema = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    assert set(schema) == set(SETTING_KEYS) | set(SECRET_KEYS)
    for key, spec in schema.items():
        assert spec.get("type") in {"string", "integer", "boolean", "array"}, key
        assert spec.get("description"), key


def test_pulumi_yaml_secrets_are_secret_without_default() -> None:
    schema = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    for key in REQUIRED_SECRET_KEYS:
        assert schema[key].get("secret") is True and "default" not in schema[key], key
    # A secret key cannot have a default (the CLI would insert it unencrypted and then
    # refuse it), so the optional verifyToken is a plain key whose empty default means
    # "generate one".
    assert schema["verifyToken"]["default"] == ""


def test_pulumi_yaml_defaults_are_the_programs_defaults() -> None:
    schema = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    for key in SETTING_KEYS:
        assert "default" in schema[key], key
    defaults = {k: v for k, v in project_defaults().items() if k in SETTING_KEYS}
    raw = {k: config_text(v) for k, v in defaults.items()}  # as the CLI passes them
    for stack in ("dev", "prod"):
        assert parse_settings(raw, stack=stack) == parse_settings({}, stack=stack)


def test_pulumi_yaml_runs_python_from_the_project_venv() -> None:
    project = yaml.safe_load(PROJECT_FILE.read_text())
    assert project["name"] == "messenger-bridge"
    assert project["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }


def test_dev_stack_file_is_valid_and_holds_no_secret() -> None:
    config = yaml.safe_load(DEV_STACK_FILE.read_text())["config"]
    assert config["aws:region"] == "us-east-1"
    own = {
        k.split(":", 1)[1]: str(v) for k, v in config.items() if k.startswith("messenger-bridge:")
    }
    assert not set(own) & set(SECRET_KEYS)
    assert set(own) <= set(SETTING_KEYS)
    parse_settings(own, stack="dev", region=config["aws:region"])


def test_deploy_guide_lists_every_setting() -> None:
    guide = (PROJECT_ROOT / "docs" / "DEPLOY.md").read_text()
    for key in (*SETTING_KEYS, *SECRET_KEYS):
        assert f"| `{key}` |" in guide, key
    for key in REQUIRED_SECRET_KEYS:
        assert f"pulumi config set --secret {key}" in guide, key
