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
