import pytest

from handler.settings import DEFAULT_GRAPH_API_URL, SettingsError, load_settings


def test_defaults_need_only_the_table_name():
    settings = load_settings({"TABLE_NAME": "bridge-dev"})
    assert settings.table_name == "bridge-dev"
    assert settings.daily_limit == 10
    assert settings.timezone == "UTC"
    assert settings.graph_api_url == DEFAULT_GRAPH_API_URL
    assert settings.admin_psids == frozenset()
    assert settings.secret_parameters == {}


def test_every_variable_is_read_and_typed():
    settings = load_settings(
        {
            "TABLE_NAME": "t1",
            "OPENAI_MODEL": "gpt-x",
            "SYSTEM_PROMPT": "Be brief.",
            "OPENAI_TEMPERATURE": "0.2",
            "OPENAI_MAX_TOKENS": "300",
            "OPENAI_TIMEOUT_SECONDS": "12",
            "OPENAI_MAX_RETRIES": "1",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "DAILY_LIMIT": "3",
            "ADMIN_PSIDS": "111, 222 333",
            "QUOTA_TIMEZONE": "Europe/Paris",
            "GRAPH_API_URL": "http://127.0.0.1:8/v99.0/",
            "HISTORY_TURNS": "0",
            "LOG_LEVEL": "debug",
            "APP_SECRET_PARAMETER": "/bridge/dev/app-secret",
        }
    )
    assert (settings.model, settings.system_prompt) == ("gpt-x", "Be brief.")
    assert (settings.temperature, settings.max_tokens) == (0.2, 300)
    assert (settings.openai_timeout_seconds, settings.openai_max_retries) == (12.0, 1)
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"
    assert settings.daily_limit == 3
    assert settings.admin_psids == {"111", "222", "333"}
    assert settings.is_admin("222") and not settings.is_admin("444")
    assert settings.tz.key == "Europe/Paris"
    assert settings.graph_api_url == "http://127.0.0.1:8/v99.0"
    assert settings.history_turns == 0
    assert settings.log_level == "DEBUG"
    assert settings.secret_parameters == {"app_secret": "/bridge/dev/app-secret"}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "TABLE_NAME"),
        ({"TABLE_NAME": "t", "DAILY_LIMIT": "ten"}, "DAILY_LIMIT"),
        ({"TABLE_NAME": "t", "DAILY_LIMIT": "-1"}, "DAILY_LIMIT"),
        ({"TABLE_NAME": "t", "OPENAI_TEMPERATURE": "3"}, "OPENAI_TEMPERATURE"),
        ({"TABLE_NAME": "t", "QUOTA_TIMEZONE": "Mars/Base"}, "QUOTA_TIMEZONE"),
        ({"TABLE_NAME": "t", "ADMIN_PSIDS": "123,alice"}, "ADMIN_PSIDS"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict, named: str):
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_the_model_layer_defaults_send_only_what_the_owner_set():
    settings = load_settings({"TABLE_NAME": "t"})
    assert (settings.model, settings.max_tokens) == ("gpt-5-mini", 2000)
    assert settings.temperature is None and settings.top_p is None
    assert settings.reasoning_effort == "low" and settings.openai_api == "chat"
    assert settings.vision is True and settings.media_max_bytes == 5 * 1024 * 1024
    assert settings.transcription_model == "gpt-4o-mini-transcribe"
    assert (settings.daily_token_limit, settings.daily_spend_limit_usd) == (50_000, 5.0)
    assert "gpt-5-mini" in settings.model_prices


def test_the_model_layer_variables_are_read():
    settings = load_settings(
        {
            "TABLE_NAME": "t",
            "OPENAI_TEMPERATURE": "0.3",
            "OPENAI_TOP_P": "0.9",
            "OPENAI_REASONING_EFFORT": "omit",
            "OPENAI_API": "responses",
            "VISION": "false",
            "MEDIA_MAX_MB": "2",
            "TRANSCRIPTION_MODEL": "whisper-1",
            "DAILY_TOKEN_LIMIT": "0",
            "DAILY_SPEND_LIMIT_USD": "0.25",
            "MODEL_PRICES": '["a=1/2/3"]',
        }
    )
    assert (settings.temperature, settings.top_p) == (0.3, 0.9)
    assert settings.reasoning_effort is None and settings.openai_api == "responses"
    assert settings.vision is False and settings.media_max_bytes == 2 * 1024 * 1024
    assert settings.transcription_model == "whisper-1"
    assert (settings.daily_token_limit, settings.daily_spend_limit_usd) == (0, 0.25)
    assert list(settings.model_prices) == ["a"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OPENAI_TOP_P": "2"}, "OPENAI_TOP_P"),
        ({"OPENAI_REASONING_EFFORT": "max"}, "OPENAI_REASONING_EFFORT"),
        ({"OPENAI_API": "completions"}, "OPENAI_API"),
        ({"VISION": "perhaps"}, "VISION"),
        ({"MEDIA_MAX_MB": "26"}, "MEDIA_MAX_MB"),
        ({"DAILY_SPEND_LIMIT_USD": "-1"}, "DAILY_SPEND_LIMIT_USD"),
        ({"MODEL_PRICES": "gpt=1/2/3"}, "MODEL_PRICES"),
        ({"MODEL_PRICES": '["gpt"]'}, "MODEL_PRICES"),
    ],
)
def test_bad_model_layer_values_are_refused_with_the_variable_named(env: dict, named: str):
    with pytest.raises(SettingsError, match=named):
        load_settings({"TABLE_NAME": "t", **env})
