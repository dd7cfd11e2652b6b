"""The IAM documents, names, queue policies, schedule and environment as pure functions."""

from __future__ import annotations

import pytest

from handler.permissions import HANDLER_ACTIONS
from handler.settings import SECRET_SOURCES, Env, Price, load_settings
from infra.config import BridgeSettings, ConfigError
from infra.environment import (
    LONGEST_QUEUE_URL,
    LONGEST_TOPIC_ARN,
    MAX_ENVIRONMENT_BYTES,
    compact_list,
    environment_size,
    function_environment,
    with_resources,
)
from infra.keep_warm import rate_expression
from infra.naming import QUEUE_NAME_LIMIT, Names, NamingError, names_for
from infra.policies import handler_policy, handler_resources, lambda_trust_policy
from infra.queues import redrive_allow_policy, redrive_policy, visibility_timeout

TABLE = "arn:aws:dynamodb:eu-west-1:111122223333:table/t"
QUEUE = "arn:aws:sqs:eu-west-1:111122223333:q.fifo"
TOPIC_ARN = "arn:aws:sns:eu-west-1:111122223333:p-owner"
RESOURCES = handler_resources(
    table_arn=TABLE,
    parameter_arns=[
        "arn:aws:ssm:eu-west-1:111122223333:parameter/p/b",
        "arn:aws:ssm:eu-west-1:111122223333:parameter/p/a",
    ],
    key_arn="arn:aws:kms:eu-west-1:111122223333:key/k",
    log_group_arn="arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/f",
    queue_arn=QUEUE,
    topic_arn=TOPIC_ARN,
)


def test_trust_policy_names_only_lambda() -> None:
    (statement,) = lambda_trust_policy()["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


def test_resources_cover_every_handler_group() -> None:
    assert set(RESOURCES) == set(HANDLER_ACTIONS)
    assert RESOURCES["table_indexes"] == (f"{TABLE}/index/*",)
    assert RESOURCES["queue"] == (QUEUE,)
    assert RESOURCES["log_group"] == (
        "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/f:*",
    )
    assert RESOURCES["secret_parameters"] == (
        "arn:aws:ssm:eu-west-1:111122223333:parameter/p/a",
        "arn:aws:ssm:eu-west-1:111122223333:parameter/p/b",
    )


def test_policy_has_exactly_the_handlers_actions_on_exactly_its_resources() -> None:
    policy = handler_policy(RESOURCES)
    assert policy["Version"] == "2012-10-17"
    assert len(policy["Statement"]) == len(HANDLER_ACTIONS)
    for statement, (group, actions) in zip(
        policy["Statement"], HANDLER_ACTIONS.items(), strict=True
    ):
        assert statement["Effect"] == "Allow"
        assert sorted(statement["Action"]) == sorted(actions)
        assert statement["Resource"] == list(RESOURCES[group])


def test_policy_sids_are_unique_and_alphanumeric() -> None:
    sids = [s["Sid"] for s in handler_policy(RESOURCES)["Statement"]]
    assert len(set(sids)) == len(sids)
    assert all(sid.isalnum() for sid in sids)


def test_policy_refuses_a_missing_group() -> None:
    partial = {k: v for k, v in RESOURCES.items() if k != "queue"}
    with pytest.raises(ValueError, match="queue"):
        handler_policy(partial)


def test_policy_grants_no_lambda_action() -> None:
    # The function no longer invokes itself: the queue's event source mapping does.
    actions = [a for s in handler_policy(RESOURCES)["Statement"] for a in s["Action"]]
    assert not [a for a in actions if a.startswith("lambda:")]


def test_policy_refuses_a_group_the_handler_does_not_have() -> None:
    with pytest.raises(ValueError, match="extra"):
        handler_policy({**RESOURCES, "bucket": ("arn:aws:s3:::b",)})


@pytest.mark.parametrize(
    ("actions", "resources"),
    [
        ({**HANDLER_ACTIONS, "table": ("dynamodb:*",)}, RESOURCES),
        ({**HANDLER_ACTIONS, "table": ("*",)}, RESOURCES),
        (HANDLER_ACTIONS, {**RESOURCES, "table": ("*",)}),
        (HANDLER_ACTIONS, {**RESOURCES, "table": ()}),
    ],
)
def test_policy_refuses_wildcards(actions: dict, resources: dict) -> None:
    with pytest.raises(ValueError):
        handler_policy(resources, actions)


# --- names ----------------------------------------------------------------------------------


def test_names_derive_from_project_and_stack() -> None:
    names = names_for("messenger-bridge", "dev", "us-east-1")
    tag = names.tag
    assert len(tag) == 6
    assert names.function == names.table == f"messenger-bridge-dev-{tag}"
    assert names.role == f"messenger-bridge-dev-{tag}-us-east-1"
    assert names.log_group == f"/aws/lambda/messenger-bridge-dev-{tag}"
    assert names.queue == f"messenger-bridge-dev-{tag}.fifo"
    assert names.dead_letter_queue == f"messenger-bridge-dev-{tag}-dead.fifo"
    assert names.keep_warm_rule == f"messenger-bridge-dev-{tag}-keep-warm"
    assert names.key_alias == f"alias/messenger-bridge-dev-{tag}-secrets"
    assert names.parameter("app_secret") == "/messenger-bridge/dev/app-secret"


def _all_names(names: Names) -> set[str]:
    attributes = ("function", "table", "role", "log_group", "queue", "dead_letter_queue")
    more = ("keep_warm_rule", "key_alias", "topic", "dashboard")
    return {getattr(names, a) for a in (*attributes, *more)} | {names.parameter("app_secret")}


def test_projects_and_stacks_that_join_alike_share_no_name() -> None:
    one, other = names_for("x", "a-b", "us-east-1"), names_for("x-a", "b", "us-east-1")
    assert not _all_names(one) & _all_names(other)


def test_one_stack_in_two_regions_has_two_roles_and_two_dashboards() -> None:
    east, west = names_for("p", "prod", "us-east-1"), names_for("p", "prod", "eu-west-1")
    # IAM roles and CloudWatch dashboards are account-wide; the rest is regional.
    assert east.role != west.role
    assert east.dashboard != west.dashboard
    assert east.function == west.function


def test_several_bots_in_one_stack_get_their_own_names() -> None:
    a, b = (
        names_for("messenger-bridge", "prod", "us-east-1", "page-a"),
        names_for("messenger-bridge", "prod", "us-east-1", "page-b"),
    )
    assert a.function.startswith("messenger-bridge-prod-page-a-") and a.function != b.function
    assert a.parameter("verify_token") == "/messenger-bridge/prod/page-a/verify-token"


@pytest.mark.parametrize("stack", ["my.stack", "a b", ""])
def test_names_refuse_characters_aws_refuses(stack: str) -> None:
    with pytest.raises(NamingError):
        names_for("messenger-bridge", stack, "us-east-1")


def test_names_refuse_a_region_that_is_not_one() -> None:
    with pytest.raises(NamingError, match="region"):
        names_for("messenger-bridge", "dev", "US East")


def test_names_refuse_what_is_too_long() -> None:
    with pytest.raises(NamingError, match="longer than 64 characters"):
        names_for("messenger-bridge", "s" * 40, "us-east-1")


def test_the_longest_accepted_names_make_valid_queue_names() -> None:
    accepted = []
    for length in range(1, 100):
        try:
            accepted.append(names_for("messenger-bridge", "s" * length, "ap-southeast-7"))
        except NamingError:
            break
    longest = accepted[-1]
    for name in (longest.queue, longest.dead_letter_queue):
        assert name.endswith(".fifo")
        assert len(name) <= QUEUE_NAME_LIMIT == 80


# --- queues ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "visibility"), [(76, 456), (120, 720), (900, 5400)])
def test_visibility_timeout_is_six_function_timeouts(timeout: int, visibility: int) -> None:
    assert visibility_timeout(timeout) == visibility
    assert visibility <= 12 * 3600  # SQS's longest


def test_redrive_policy_names_the_dead_letter_queue_and_the_receives() -> None:
    dead = "arn:aws:sqs:eu-west-1:111122223333:q-dead.fifo"
    assert redrive_policy(dead, 7) == {"deadLetterTargetArn": dead, "maxReceiveCount": 7}


def test_redrive_allow_policy_admits_only_the_one_queue() -> None:
    assert redrive_allow_policy(QUEUE) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [QUEUE],
    }


# --- schedule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "expression"),
    [(1, "rate(1 minute)"), (2, "rate(2 minutes)"), (20, "rate(20 minutes)")],
)
def test_rate_expression(minutes: int, expression: str) -> None:
    assert rate_expression(minutes) == expression


def test_rate_expression_needs_a_minute() -> None:
    with pytest.raises(ValueError):
        rate_expression(0)


# --- environment ----------------------------------------------------------------------------


def parameters() -> dict[str, str]:
    return {secret: f"/p/{secret}" for secret in SECRET_SOURCES}


def test_the_handler_reads_back_what_the_environment_says() -> None:
    settings = BridgeSettings(
        model="m",
        temperature=0.3,
        top_p=0.5,
        reasoning_effort="omit",
        openai_api="responses",
        vision=False,
        media_max_mb=7,
        transcription_model="gpt-transcribe",
        daily_token_limit=1234,
        daily_spend_limit_usd=2.5,
        model_prices=("m=1/0.5/2",),
        admin_psids=("1", "2"),
        openai_base_url="https://x.test/v1",
        quota_timezone="Asia/Tokyo",
        log_level="DEBUG",
        history_turns=2,
        max_receive_count=3,
        retry_delay_seconds=45,
    )
    queue_url = "https://sqs.eu-west-1.amazonaws.com/111122223333/q.fifo"
    environment = function_environment(settings, "table-x", parameters(), metrics_stack="p-1")
    env = with_resources(environment, queue_url, TOPIC_ARN)
    loaded = load_settings(env)
    assert loaded.table_name == "table-x"
    assert loaded.model == "m"
    assert loaded.temperature == 0.3
    assert loaded.top_p == 0.5
    assert loaded.reasoning_effort is None  # omit: not sent
    assert loaded.openai_api == "responses"
    assert loaded.vision is False
    assert loaded.media_max_bytes == 7 * 1024 * 1024
    assert loaded.transcription_model == "gpt-transcribe"
    assert loaded.daily_token_limit == 1234
    assert loaded.daily_spend_limit_usd == 2.5
    assert dict(loaded.model_prices) == {"m": Price(1.0, 0.5, 2.0)}
    assert loaded.admin_psids == frozenset({"1", "2"})
    assert loaded.openai_base_url == "https://x.test/v1"
    assert loaded.timezone == "Asia/Tokyo"
    assert loaded.log_level == "DEBUG"
    assert loaded.history_turns == 2
    assert loaded.graph_api_url == settings.graph_api_url
    assert loaded.queue_url == queue_url
    assert loaded.owner_topic_arn == TOPIC_ARN
    assert loaded.metrics_stack == "p-1"
    assert loaded.max_receives == 3
    assert loaded.retry_delay_seconds == 45
    assert dict(loaded.secret_parameters) == parameters()


def test_the_handler_and_the_stack_agree_on_retry_defaults() -> None:
    loaded = load_settings(function_environment(BridgeSettings(), "t", parameters()))
    handler = load_settings({Env.TABLE_NAME: "t"})
    assert loaded.max_receives == handler.max_receives
    assert loaded.retry_delay_seconds == handler.retry_delay_seconds


def test_the_room_kept_for_the_queue_url_and_topic_holds_the_longest_real_ones() -> None:
    names = Names(("p" * 25, "s" * 24, "b" * 6), "ap-southeast-7")
    assert len(names.function) == 64  # Lambda's limit, which bounds every other name
    longest = f"https://sqs.ap-southeast-7.amazonaws.com/111122223333/{names.queue}"
    assert len(longest) <= len(LONGEST_QUEUE_URL)
    topic = f"arn:aws-us-gov:sns:us-gov-west-1:111122223333:{names.topic}"
    assert len(topic) <= len(LONGEST_TOPIC_ARN)


def test_environment_needs_every_secret_parameter() -> None:
    partial = {k: v for k, v in parameters().items() if k != "verify_token"}
    with pytest.raises(ValueError):
        function_environment(BridgeSettings(), "t", partial)


def test_the_environment_is_measured_as_lambda_measures_it_as_compact_json() -> None:
    variables = {"A": 'say "hi"\n', "B": "é"}
    compact = '{"A":"say \\"hi\\"\\n","B":"\\u00e9"}'
    assert environment_size(variables) == len(compact)  # quotes and newlines count twice


def test_environment_over_lambdas_limit_is_a_config_error() -> None:
    environment = function_environment(BridgeSettings(), "t", parameters())
    base = environment_size(with_resources(environment, LONGEST_QUEUE_URL, LONGEST_TOPIC_ARN))
    room = MAX_ENVIRONMENT_BYTES - base - len(f',"{Env.OPENAI_BASE_URL}":""')
    fits = BridgeSettings(openai_base_url="https://x/" + "p" * (room - len("https://x/")))
    function_environment(fits, "t", parameters())
    too_long = BridgeSettings(openai_base_url="https://x/" + "p" * (room - len("https://x/") + 1))
    with pytest.raises(ConfigError, match="environment would be 4097 bytes"):
        function_environment(too_long, "t", parameters())


# Where the welcome and the ice breakers are kept (bridge.py: beside the secrets).
FIRST_CONTACT_PARAMETERS = {
    "welcome_message_parameter": "/p/welcome-message",
    "ice_breakers_parameter": "/p/ice-breakers",
}


def test_first_contact_variables_are_set_only_when_configured() -> None:
    plain = function_environment(BridgeSettings(), "t", parameters())
    optional = {
        Env.WELCOME_MESSAGE,
        Env.WELCOME_MESSAGE_PARAMETER,
        Env.ICE_BREAKERS,
        Env.ICE_BREAKERS_PARAMETER,
        Env.APP_ID,
        Env.PAGE_ID,
        Env.PRIVACY_CONTACT,
        Env.PRIVACY_TEXT_PARAMETER,
    }
    assert not optional & set(plain)
    assert plain[Env.LOG_RETENTION_DAYS] == "14"
    settings = BridgeSettings(
        welcome_message="Bienvenue ! Je suis un assistant automatique.",
        ice_breakers=("Qu'est-ce que tu sais faire ?", 'Say "hi"'),
        app_id="123",
        page_id="456",
        privacy_contact="https://example.com/contact",
        privacy_text="Ours.",
        log_retention_days=0,
    )
    env = function_environment(
        settings, "t", parameters(), None, "/p/privacy-text", **FIRST_CONTACT_PARAMETERS
    )
    assert env[Env.WELCOME_MESSAGE_PARAMETER] == "/p/welcome-message"
    assert env[Env.ICE_BREAKERS_PARAMETER] == "/p/ice-breakers"
    assert Env.WELCOME_MESSAGE not in env and Env.ICE_BREAKERS not in env
    # The ice breakers' parameter: a compact JSON array, non-ASCII kept as is.
    assert (
        compact_list(settings.ice_breakers) == '["Qu\'est-ce que tu sais faire ?","Say \\"hi\\""]'
    )
    assert (env[Env.APP_ID], env[Env.PAGE_ID]) == ("123", "456")
    assert env[Env.PRIVACY_CONTACT] == "https://example.com/contact"
    assert env[Env.PRIVACY_TEXT_PARAMETER] == "/p/privacy-text"
    assert env[Env.LOG_RETENTION_DAYS] == "0"
    assert "Ours." not in env.values()
    assert settings.welcome_message not in env.values()


def test_a_privacy_text_needs_its_parameter_and_a_parameter_its_text() -> None:
    with pytest.raises(ValueError):
        function_environment(BridgeSettings(privacy_text="x"), "t", parameters())
    with pytest.raises(ValueError):
        function_environment(BridgeSettings(), "t", parameters(), None, "/p/privacy-text")


@pytest.mark.parametrize(
    ("settings", "parameter"),
    [
        (BridgeSettings(welcome_message="Hi"), {}),
        (BridgeSettings(ice_breakers=("Why?",)), {}),
        (BridgeSettings(), {"welcome_message_parameter": "/p/welcome-message"}),
        (BridgeSettings(), {"ice_breakers_parameter": "/p/ice-breakers"}),
    ],
)
def test_a_welcome_or_ice_breakers_need_their_parameter_and_the_reverse(
    settings: BridgeSettings, parameter: dict[str, str]
) -> None:
    with pytest.raises(ValueError):
        function_environment(settings, "t", parameters(), **parameter)


def test_an_environment_too_large_names_the_settings_taking_the_room() -> None:
    settings = BridgeSettings(
        openai_base_url="https://x/" + "p" * 2000,
        privacy_contact=("https://пример.рф/" + "контакты" * 30)[:200],
    )
    with pytest.raises(ConfigError) as error:
        function_environment(settings, "t", parameters())
    [problem] = error.value.problems
    assert "shorten the longest settings: openaiBaseUrl (2032 bytes), privacyContact" in problem


# The free texts at their most, in the scripts JSON escapes the most (12 bytes an emoji, 6 a
# Cyrillic or Japanese character).
LONGEST_FIRST_CONTACT = BridgeSettings(
    welcome_message="👋🤖" * 1000,  # Messenger's 2,000 characters
    ice_breakers=("営業時間と定休日、それから駐車場があるかどうかを教えてください。" * 4,) * 4,
    app_id="1" * 17,
    page_id="1" * 17,
    privacy_contact=("https://пример.рф/" + "контакты" * 30)[:200],  # MAX_PRIVACY_CONTACT_CHARS
    admin_psids=("1" * 17,) * 5,
    system_prompt="Be brief.",
    privacy_text="Ours.",
)


def test_the_longest_allowed_first_contact_fits_the_environment_in_any_script() -> None:
    """What the settings allow (a 2,000-character welcome, four long ice breakers, the ids, a
    200-character contact, five admins) leaves the rest of the environment its room, in any
    script: the free texts ride in parameters, only their names in the environment."""
    names = names_for("p" * 23, "s" * 23, "us-east-1")  # as long as the role's 64 allow
    texts = ("system_prompt", "privacy_text", "welcome_message", "ice_breakers")
    text_parameter = {text: names.parameter(text) for text in texts}
    environment = function_environment(
        LONGEST_FIRST_CONTACT,
        names.table,
        {secret: names.parameter(secret) for secret in SECRET_SOURCES},
        text_parameter["system_prompt"],
        text_parameter["privacy_text"],
        metrics_stack=names.prefix,
        welcome_message_parameter=text_parameter["welcome_message"],
        ice_breakers_parameter=text_parameter["ice_breakers"],
    )
    env = with_resources(environment, LONGEST_QUEUE_URL, LONGEST_TOPIC_ARN)
    assert environment_size(env) <= MAX_ENVIRONMENT_BYTES
    assert LONGEST_FIRST_CONTACT.welcome_message not in env.values()


def test_the_handler_reads_back_the_first_contact_the_environment_says() -> None:
    settings = BridgeSettings(
        welcome_message="Bienvenue !",
        ice_breakers=("Qu'est-ce que tu sais faire ?", 'Say "hi"'),
        app_id="123",
        page_id="456",
        privacy_contact="privacy@example.com",
        privacy_text="Ours.",
        log_retention_days=30,
    )
    env = function_environment(
        settings, "t", parameters(), None, "/p/privacy-text", **FIRST_CONTACT_PARAMETERS
    )
    loaded = load_settings(env)
    assert loaded.welcome_message_parameter == "/p/welcome-message"  # its text comes from it
    assert loaded.ice_breakers_parameter == "/p/ice-breakers"
    assert loaded.welcome_message is None and loaded.ice_breakers == ()  # until fetched
    assert (loaded.app_id, loaded.page_id) == ("123", "456")
    assert loaded.privacy_contact == "privacy@example.com"
    assert loaded.privacy_text_parameter == "/p/privacy-text"
    assert loaded.log_retention_days == 30
    defaults = load_settings(function_environment(BridgeSettings(), "t", parameters()))
    assert defaults.ice_breakers == () and defaults.welcome_message is None
    assert defaults.log_retention_days == BridgeSettings().log_retention_days
