"""The real Pulumi program under mocks: each property the bridge depends on, one by one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from handler import profile, schema
from handler.permissions import HANDLER_ACTIONS
from handler.settings import DEFAULT_MODEL, SECRET_SOURCES, Env
from infra.config import ConfigError
from infra.messenger_setup import WEBHOOK_FIELDS
from infra.naming import names_for
from tests.infra.capture import (
    ACCOUNT_ID,
    PROJECT_ROOT,
    REGION,
    CapturedResource,
    CapturedStack,
    is_secret,
    plain_strings,
)
from tests.infra.conftest import SECRETS, VERIFY_TOKEN

FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
PARAMETER = "aws:ssm/parameter:Parameter"
TABLE = "aws:dynamodb/table:Table"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
QUEUE = "aws:sqs/queue:Queue"
REDRIVE_ALLOW = "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
ASYNC_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
PASSWORD = "random:index/randomPassword:RandomPassword"
COMPONENT = "messenger-bridge:index:MessengerBridge"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
WEBHOOK_SUBSCRIPTION = "pulumi-python:dynamic/messenger:WebhookSubscription"
PAGE_SUBSCRIPTION = "pulumi-python:dynamic/messenger:PageSubscription"
MESSENGER_PROFILE = "pulumi-python:dynamic/messenger:MessengerProfile"
MESSENGER_SETUP = (WEBHOOK_SUBSCRIPTION, PAGE_SUBSCRIPTION, MESSENGER_PROFILE)

ALL_ENV_NAMES = {value for key, value in vars(Env).items() if not key.startswith("_")}
# Set only when configured: an OpenAI-compatible server, a system prompt, a privacy text, the
# welcome and the ice breakers (each in its parameter), the Meta ids, the privacy contact.
OPTIONAL_ENV_NAMES = {
    Env.OPENAI_TEMPERATURE,
    Env.OPENAI_TOP_P,
    Env.OPENAI_BASE_URL,
    Env.SYSTEM_PROMPT_PARAMETER,
    Env.WELCOME_MESSAGE_PARAMETER,
    Env.ICE_BREAKERS_PARAMETER,
    Env.APP_ID,
    Env.PAGE_ID,
    Env.PRIVACY_CONTACT,
    Env.PRIVACY_TEXT_PARAMETER,
}
# The free texts themselves, as local runs give them: a deployed function reads their parameters.
LOCAL_ONLY_ENV_NAMES = {Env.SYSTEM_PROMPT, Env.WELCOME_MESSAGE, Env.ICE_BREAKERS}
# appId and pageId: `pulumi up` sets Messenger up; the rest is what a person sees first.
APP_ID = "1234567890123"
PAGE_ID = "100000000000001"
FIRST_CONTACT = {
    "greeting": "Hi {{user_first_name}}! An AI answers here.",
    "greetings": ["fr_FR=Bonjour ! Une IA répond ici."],
    "iceBreakers": ["What can you do?", "Who made you?"],
    "menuLinks": ["Our site=https://example.com/?a=b"],
}
SETUP = {"appId": APP_ID, "pageId": PAGE_ID, **FIRST_CONTACT}
NAMES = names_for("messenger-bridge", "test", REGION)
FUNCTION_NAME = NAMES.function  # messenger-bridge-test-<tag>
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"
WORK_QUEUE = NAMES.queue
DEAD_LETTER_QUEUE = NAMES.dead_letter_queue
DAYS = 24 * 3600
BYO_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0000aaaa-bbbb-cccc-dddd-eeeeffff0000"

Capture = Callable[..., CapturedStack]


def env_of(stack: CapturedStack) -> dict[str, str]:
    return stack.one(FUNCTION).inputs["environment"]["variables"]


def policy_of(stack: CapturedStack) -> dict:
    return json.loads(stack.one(ROLE_POLICY).inputs["policy"])


def statements_by_sid(stack: CapturedStack) -> dict[str, dict]:
    return {s["Sid"]: s for s in policy_of(stack)["Statement"]}


def sid(group: str) -> str:
    return "".join(part.capitalize() for part in group.split("_"))


def queue_named(stack: CapturedStack, name: str) -> CapturedResource:
    (found,) = [q for q in stack.of_type(QUEUE) if q.inputs["name"] == name]
    return found


def work_queue(stack: CapturedStack) -> CapturedResource:
    return queue_named(stack, WORK_QUEUE)


def dead_letter_queue(stack: CapturedStack) -> CapturedResource:
    return queue_named(stack, DEAD_LETTER_QUEUE)


def redrive_of(stack: CapturedStack) -> dict:
    return json.loads(work_queue(stack).inputs["redrivePolicy"])


def permission(stack: CapturedStack, action: str, principal: str) -> CapturedResource:
    found = [
        p
        for p in stack.of_type(PERMISSION)
        if p.inputs["action"] == action and p.inputs["principal"] == principal
    ]
    assert len(found) == 1, [p.inputs for p in stack.of_type(PERMISSION)]
    return found[0]


# --- the function --------------------------------------------------------------------------


def test_function_runs_the_handler_on_python_313(stack: CapturedStack) -> None:
    function = stack.one(FUNCTION).inputs
    assert function["runtime"] == "python3.13"
    assert function["handler"] == "handler.app.lambda_handler"
    assert function["name"] == FUNCTION_NAME


def test_function_memory_timeout_and_architecture_defaults(stack: CapturedStack) -> None:
    function = stack.one(FUNCTION).inputs
    assert function["architectures"] == ["arm64"]
    assert function["memorySize"] == 512
    assert function["timeout"] == 120
    assert "reservedConcurrentExecutions" not in function


def test_function_settings_follow_config(capture: Capture) -> None:
    config = {"architecture": "x86_64", "memoryMb": 1024, "timeoutSeconds": 200}
    function = capture({**config, "reservedConcurrency": 10}).one(FUNCTION).inputs
    assert function["architectures"] == ["x86_64"]
    assert function["memorySize"] == 1024
    assert function["timeout"] == 200
    assert function["reservedConcurrentExecutions"] == 10


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_function_code_is_the_built_archive_for_its_architecture(
    capture: Capture, architecture: str
) -> None:
    code = capture({"architecture": architecture}).one(FUNCTION).inputs["code"]
    path = Path(code.path)
    assert path == PROJECT_ROOT / ".cache" / "build" / f"lambda-{architecture}.zip"
    assert path.is_file()


def test_function_logs_json_to_its_own_log_group_at_the_stacks_level(stack: CapturedStack) -> None:
    logging = stack.one(FUNCTION).inputs["loggingConfig"]
    assert logging == {
        "logFormat": "JSON",
        "logGroup": NAMES.log_group,
        "applicationLogLevel": "INFO",
        "systemLogLevel": "INFO",
    }


@pytest.mark.parametrize(
    ("level", "application", "system"),
    [("debug", "DEBUG", "DEBUG"), ("WARNING", "WARN", "INFO"), ("critical", "FATAL", "INFO")],
)
def test_lambda_filters_logs_by_the_configured_level_in_its_own_names(
    capture: Capture, level: str, application: str, system: str
) -> None:
    stack = capture({"logLevel": level})
    logging = stack.one(FUNCTION).inputs["loggingConfig"]
    assert (logging["applicationLogLevel"], logging["systemLogLevel"]) == (application, system)
    assert env_of(stack)[Env.LOG_LEVEL] == application  # the handler writes the same names


def test_environment_sets_every_variable_the_handler_reads(stack: CapturedStack) -> None:
    assert set(env_of(stack)) == ALL_ENV_NAMES - OPTIONAL_ENV_NAMES - LOCAL_ONLY_ENV_NAMES


def test_a_system_prompt_lives_in_a_parameter_not_in_the_environment(capture: Capture) -> None:
    prompt = "You are the page's assistant. " * 300  # 9 KB: far over the environment's 4 KB
    stack = capture({"systemPrompt": prompt[:8000]})
    env = env_of(stack)
    [parameter] = [p for p in stack.of_type(PARAMETER) if p.inputs["type"] == "String"]
    assert parameter.inputs["name"] == "/messenger-bridge/test/system-prompt"
    assert parameter.inputs["value"] == prompt[:8000].strip()
    assert parameter.inputs["tier"] == "Intelligent-Tiering"  # over 4 KB: advanced, to 8 KB
    assert env[Env.SYSTEM_PROMPT_PARAMETER] == parameter.inputs["name"]
    assert Env.SYSTEM_PROMPT not in env and prompt[:100] not in str(env)
    [grant] = [s for s in policy_of(stack)["Statement"] if s["Sid"] == "SecretParameters"]
    assert parameter.state["arn"] in grant["Resource"]


def test_without_a_system_prompt_there_is_no_prompt_parameter(stack: CapturedStack) -> None:
    assert all(p.inputs["type"] == "SecureString" for p in stack.of_type(PARAMETER))


def test_environment_values(stack: CapturedStack) -> None:
    env = env_of(stack)
    assert env[Env.TABLE_NAME] == stack.one(TABLE).inputs["name"]
    assert env[Env.OPENAI_MODEL] == DEFAULT_MODEL
    assert env[Env.GRAPH_API_URL] == "https://graph.facebook.com/v26.0"
    assert Env.OPENAI_TEMPERATURE not in env and Env.OPENAI_TOP_P not in env
    assert env[Env.OPENAI_REASONING_EFFORT] == "low"
    assert env[Env.OPENAI_MAX_TOKENS] == "2000"
    assert env[Env.OPENAI_API] == "chat"
    assert env[Env.VISION] == "true"
    assert env[Env.TRANSCRIPTION_MODEL] == "gpt-4o-mini-transcribe"
    assert env[Env.DAILY_TOKEN_LIMIT] == "50000"
    assert env[Env.DAILY_SPEND_LIMIT_USD] == "5"
    assert json.loads(env[Env.MODEL_PRICES])[0] == "gpt-5-mini=0.25/0.025/2.00"
    assert env[Env.DAILY_LIMIT] == "10"
    assert env[Env.QUOTA_TIMEZONE] == "UTC"
    assert env[Env.ADMIN_PSIDS] == ""
    assert env[Env.RETRY_DELAY_SECONDS] == "10"
    assert env[Env.LOG_RETENTION_DAYS] == "14"


def test_environment_follows_config(capture: Capture) -> None:
    config = {
        "openaiBaseUrl": "https://llm.example.com/v1",
        "graphApiVersion": "v25.0",
        "adminPsids": ["123", "456"],
        "temperature": "0.2",
        "logLevel": "debug",
        "retryDelaySeconds": 30,
    }
    env = env_of(capture(config))
    assert set(env) == ALL_ENV_NAMES - LOCAL_ONLY_ENV_NAMES - (
        OPTIONAL_ENV_NAMES - {Env.OPENAI_BASE_URL, Env.OPENAI_TEMPERATURE}
    )
    assert env[Env.OPENAI_BASE_URL] == "https://llm.example.com/v1"
    assert env[Env.GRAPH_API_URL] == "https://graph.facebook.com/v25.0"
    assert env[Env.ADMIN_PSIDS] == "123,456"
    assert env[Env.OPENAI_TEMPERATURE] == "0.2"
    assert env[Env.LOG_LEVEL] == "DEBUG"
    assert env[Env.RETRY_DELAY_SECONDS] == "30"


def test_environment_names_the_secret_parameters(stack: CapturedStack) -> None:
    env = env_of(stack)
    parameters = {p.inputs["name"] for p in stack.of_type(PARAMETER)}
    named = {env[variable] for variable, _plain in SECRET_SOURCES.values()}
    assert named == parameters
    for _variable, plain in SECRET_SOURCES.values():
        assert plain not in env


def test_no_secret_value_travels_in_plain_text(capture: Capture) -> None:
    stack = capture({"verifyToken": VERIFY_TOKEN}, secrets={**SECRETS, "verifyToken": VERIFY_TOKEN})
    secrets = {*SECRETS.values(), VERIFY_TOKEN}
    for resource in stack.resources:
        leaked = secrets.intersection(plain_strings(resource.raw_inputs))
        assert not leaked, f"{resource.name} has {leaked} outside a secret"
    for name, output in stack.outputs.items():
        if not output.secret:
            assert not secrets.intersection(plain_strings(output.value)), name


def test_generated_verify_token_stays_secret(stack: CapturedStack) -> None:
    generated = stack.one(PASSWORD).state["result"]
    for resource in stack.resources:
        if resource.typ != PASSWORD:
            assert generated not in plain_strings(resource.raw_inputs), resource.name


# --- the public URL -------------------------------------------------------------------------


def test_function_url_is_public(stack: CapturedStack) -> None:
    url = stack.one("aws:lambda/functionUrl:FunctionUrl").inputs
    assert url["authorizationType"] == "NONE"
    assert url["functionName"] == FUNCTION_NAME


def test_url_grants_invoke_function_url_with_auth_type_none(stack: CapturedStack) -> None:
    grant = permission(stack, "lambda:InvokeFunctionUrl", "*").inputs
    assert grant["functionUrlAuthType"] == "NONE"
    assert grant["function"] == FUNCTION_NAME
    assert "invokedViaFunctionUrl" not in grant


def test_url_grants_invoke_function_only_through_the_url(stack: CapturedStack) -> None:
    grant = permission(stack, "lambda:InvokeFunction", "*").inputs
    assert grant["invokedViaFunctionUrl"] is True
    assert grant["function"] == FUNCTION_NAME
    assert "functionUrlAuthType" not in grant  # AWS refuses it with this action


def test_permissions_have_their_own_statement_ids(stack: CapturedStack) -> None:
    ids = [p.inputs["statementId"] for p in stack.of_type(PERMISSION)]
    assert len(ids) == len(set(ids)) == 3


# --- the table ------------------------------------------------------------------------------


def test_table_is_on_demand_encrypted_recoverable(stack: CapturedStack) -> None:
    table = stack.one(TABLE).inputs
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert table["pointInTimeRecovery"] == {"enabled": True}
    assert table["serverSideEncryption"] == {"enabled": True}
    assert table["ttl"] == {"attributeName": schema.TTL_ATTRIBUTE, "enabled": True}


def test_table_keys_and_index_come_from_the_schema(stack: CapturedStack) -> None:
    table = stack.one(TABLE).inputs
    assert table["hashKey"] == schema.PARTITION_KEY
    assert table["rangeKey"] == schema.SORT_KEY
    attributes = {(a["name"], a["type"]) for a in table["attributes"]}
    assert attributes == {
        (a["AttributeName"], a["AttributeType"]) for a in schema.ATTRIBUTE_DEFINITIONS
    }
    (index,) = table["globalSecondaryIndexes"]
    assert index["name"] == schema.USERS_INDEX
    assert index["projectionType"] == "ALL"
    assert index["keySchemas"] == [
        {"attributeName": schema.USERS_INDEX_PARTITION_KEY, "keyType": "HASH"},
        {"attributeName": schema.USERS_INDEX_SORT_KEY, "keyType": "RANGE"},
    ]


def test_table_is_unprotected_outside_prod(stack: CapturedStack) -> None:
    table = stack.one(TABLE)
    assert table.inputs["deletionProtectionEnabled"] is False
    assert table.protect is False


def test_prod_table_is_protected(capture: Capture) -> None:
    table = capture(stack="prod").one(TABLE)
    assert table.inputs["deletionProtectionEnabled"] is True
    assert table.protect is True


@pytest.mark.parametrize(
    ("stack_name", "value", "protected"), [("prod", "false", False), ("dev", "true", True)]
)
def test_protect_table_setting_overrides_the_stack_rule(
    capture: Capture, stack_name: str, value: str, protected: bool
) -> None:
    table = capture({"protectTable": value}, stack=stack_name).one(TABLE)
    assert table.inputs["deletionProtectionEnabled"] is protected
    assert table.protect is protected


# --- keep-warm ------------------------------------------------------------------------------


def test_keep_warm_rule_targets_the_function(stack: CapturedStack) -> None:
    rule = stack.one(RULE)
    assert rule.inputs["scheduleExpression"] == "rate(20 minutes)"
    target = stack.one(TARGET).inputs
    assert target["rule"] == rule.inputs["name"]
    assert target["arn"] == stack.one(FUNCTION).arn
    assert "input" not in target  # the handler recognises the scheduled-event payload


def test_keep_warm_permission_is_limited_to_the_rule(stack: CapturedStack) -> None:
    grant = permission(stack, "lambda:InvokeFunction", "events.amazonaws.com").inputs
    assert grant["sourceArn"] == stack.one(RULE).arn
    assert grant["function"] == FUNCTION_NAME


def test_keep_warm_of_one_minute_is_singular(capture: Capture) -> None:
    assert (
        capture({"keepWarmMinutes": 1}).one(RULE).inputs["scheduleExpression"] == "rate(1 minute)"
    )


def test_keep_warm_zero_creates_nothing(capture: Capture) -> None:
    stack = capture({"keepWarmMinutes": 0})
    assert stack.of_type(RULE) == []
    assert stack.of_type(TARGET) == []
    assert [p.inputs["principal"] for p in stack.of_type(PERMISSION)] == ["*", "*"]


# --- secrets --------------------------------------------------------------------------------


def test_four_secure_string_parameters_under_the_stack_path(stack: CapturedStack) -> None:
    parameters = {p.inputs["name"]: p for p in stack.of_type(PARAMETER)}
    assert set(parameters) == {
        "/messenger-bridge/test/app-secret",
        "/messenger-bridge/test/page-access-token",
        "/messenger-bridge/test/verify-token",
        "/messenger-bridge/test/openai-api-key",
    }
    for parameter in parameters.values():
        assert parameter.inputs["type"] == "SecureString"
        assert is_secret(parameter.raw_inputs["value"])


def test_parameters_hold_the_configured_secrets(stack: CapturedStack) -> None:
    values = {
        p.inputs["name"].rsplit("/", 1)[1]: p.inputs["value"] for p in stack.of_type(PARAMETER)
    }
    assert values["app-secret"] == SECRETS["appSecret"]
    assert values["page-access-token"] == SECRETS["pageAccessToken"]
    assert values["openai-api-key"] == SECRETS["openaiApiKey"]
    assert values["verify-token"] == stack.one(PASSWORD).state["result"]


def test_parameters_are_encrypted_with_the_stacks_rotating_key(stack: CapturedStack) -> None:
    key = stack.one(KEY)
    assert key.inputs["enableKeyRotation"] is True
    assert stack.one(ALIAS).inputs == {
        "name": NAMES.key_alias,
        "targetKeyId": key.state["keyId"],
    }
    assert {p.inputs["keyId"] for p in stack.of_type(PARAMETER)} == {key.arn}


def test_verify_token_is_generated_without_special_characters(stack: CapturedStack) -> None:
    password = stack.one(PASSWORD).inputs
    assert password["length"] == 32
    assert password["special"] is False


def test_configured_verify_token_is_used_instead_of_a_generated_one(capture: Capture) -> None:
    stack = capture(secrets={**SECRETS, "verifyToken": VERIFY_TOKEN})
    assert stack.of_type(PASSWORD) == []
    (parameter,) = [
        p for p in stack.of_type(PARAMETER) if p.inputs["name"].endswith("verify-token")
    ]
    assert parameter.inputs["value"] == VERIFY_TOKEN
    assert stack.outputs["verifyToken"].value == VERIFY_TOKEN
    assert stack.outputs["verifyToken"].secret


def test_own_kms_key_replaces_the_stack_key(capture: Capture) -> None:
    stack = capture({"kmsKeyArn": BYO_KEY})
    assert stack.of_type(KEY) == [] and stack.of_type(ALIAS) == []
    assert {p.inputs["keyId"] for p in stack.of_type(PARAMETER)} == {BYO_KEY}
    assert statements_by_sid(stack)["SecretsKey"]["Resource"] == [BYO_KEY]


# --- IAM ------------------------------------------------------------------------------------


def test_role_is_trusted_by_lambda_only(stack: CapturedStack) -> None:
    role = stack.one(ROLE).inputs
    assert json.loads(role["assumeRolePolicy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    assert not role.get("managedPolicyArns")
    assert stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []


def test_inline_policy_is_attached_to_the_role(stack: CapturedStack) -> None:
    assert stack.one(ROLE_POLICY).inputs["role"] == stack.one(ROLE).inputs["name"]


def test_policy_has_one_statement_per_handler_resource_group(stack: CapturedStack) -> None:
    statements = statements_by_sid(stack)
    assert set(statements) == {sid(group) for group in HANDLER_ACTIONS}
    for group, actions in HANDLER_ACTIONS.items():
        statement = statements[sid(group)]
        assert statement["Effect"] == "Allow"
        assert set(statement["Action"]) == set(actions), group


def test_policy_resources_are_exactly_each_groups_arns(stack: CapturedStack) -> None:
    table_arn = stack.one(TABLE).arn
    expected = {
        "table": [table_arn],
        "table_indexes": [f"{table_arn}/index/*"],
        "queue": [work_queue(stack).arn],
        "secret_parameters": sorted(p.arn for p in stack.of_type(PARAMETER)),
        "secrets_key": [stack.one(KEY).arn],
        "log_group": [f"{stack.one(LOG_GROUP).arn}:*"],
        "owner_topic": [stack.one("aws:sns/topic:Topic").arn],
    }
    assert set(expected) == set(HANDLER_ACTIONS)
    statements = statements_by_sid(stack)
    for group, resources in expected.items():
        assert statements[sid(group)]["Resource"] == resources, group


def test_queue_statement_is_the_handlers_sqs_actions_on_the_queue_only(
    stack: CapturedStack,
) -> None:
    statement = statements_by_sid(stack)[sid("queue")]
    assert statement["Action"] == sorted(HANDLER_ACTIONS["queue"])
    assert statement["Resource"] == [work_queue(stack).arn]
    # SQS moves failures to the dead-letter queue itself: the role needs nothing on it.
    assert dead_letter_queue(stack).arn not in json.dumps(policy_of(stack))


def test_role_policy_cannot_invoke_any_function(stack: CapturedStack) -> None:
    actions = [action for s in policy_of(stack)["Statement"] for action in s["Action"]]
    assert "lambda:InvokeFunction" not in actions
    assert not [action for action in actions if action.startswith("lambda:")]
    assert FUNCTION_ARN not in json.dumps(policy_of(stack))


def test_no_wildcard_action_or_resource(stack: CapturedStack) -> None:
    for statement in policy_of(stack)["Statement"]:
        assert all("*" not in action for action in statement["Action"])
        assert "*" not in statement["Resource"]
        assert all(arn.startswith("arn:aws:") for arn in statement["Resource"])


# --- logs and dependencies -------------------------------------------------------------------


def test_log_group_name_and_retention(stack: CapturedStack, capture: Capture) -> None:
    group = stack.one(LOG_GROUP).inputs
    assert group["name"] == NAMES.log_group
    assert group["retentionInDays"] == 14
    assert capture({"logRetentionDays": 30}).one(LOG_GROUP).inputs["retentionInDays"] == 30


def test_function_is_created_after_its_log_group_and_policy(stack: CapturedStack) -> None:
    dependencies = stack.one(FUNCTION).dependencies
    assert stack.one(LOG_GROUP).urn in dependencies
    assert stack.one(ROLE_POLICY).urn in dependencies


def test_every_resource_belongs_to_the_bridge_component(stack: CapturedStack) -> None:
    # Declared with parent=self: one component owns all, so several bridges can coexist.
    (component,) = {r.parent for r in stack.resources}
    assert component.split("::")[-2].endswith(COMPONENT)


# --- the queues -------------------------------------------------------------------------------


def test_two_queues_the_work_queue_and_its_dead_letter_queue(stack: CapturedStack) -> None:
    assert {q.inputs["name"] for q in stack.of_type(QUEUE)} == {WORK_QUEUE, DEAD_LETTER_QUEUE}


@pytest.mark.parametrize("name", [WORK_QUEUE, DEAD_LETTER_QUEUE])
def test_both_queues_are_high_throughput_fifo_deduplicated_by_id(
    stack: CapturedStack, name: str
) -> None:
    queue = queue_named(stack, name).inputs
    assert queue["fifoQueue"] is True
    # The webhook gives each event its id; equal texts are still two questions.
    assert queue["contentBasedDeduplication"] is False
    assert queue["deduplicationScope"] == "messageGroup"
    assert queue["fifoThroughputLimit"] == "perMessageGroupId"


@pytest.mark.parametrize("name", [WORK_QUEUE, DEAD_LETTER_QUEUE])
def test_both_queues_are_encrypted_at_rest(stack: CapturedStack, name: str) -> None:
    queue = queue_named(stack, name).inputs
    assert queue["sqsManagedSseEnabled"] is True
    assert "kmsMasterKeyId" not in queue  # SQS's own key: no KMS key policy to get wrong


def test_queue_keeps_messages_four_days_and_the_dead_letter_queue_fourteen(
    stack: CapturedStack,
) -> None:
    assert work_queue(stack).inputs["messageRetentionSeconds"] == 4 * DAYS
    assert dead_letter_queue(stack).inputs["messageRetentionSeconds"] == 14 * DAYS


def test_failures_go_to_the_dead_letter_queue_after_five_receives(stack: CapturedStack) -> None:
    assert redrive_of(stack) == {
        "deadLetterTargetArn": dead_letter_queue(stack).arn,
        "maxReceiveCount": 5,
    }
    assert "redrivePolicy" not in dead_letter_queue(stack).inputs  # the end of the line


def test_the_handler_counts_the_receives_the_redrive_policy_allows(capture: Capture) -> None:
    stack = capture({"maxReceiveCount": 3})
    assert redrive_of(stack)["maxReceiveCount"] == 3
    assert env_of(stack)[Env.MAX_RECEIVES] == "3"


def test_only_the_work_queue_may_use_the_dead_letter_queue(stack: CapturedStack) -> None:
    allow = stack.one(REDRIVE_ALLOW).inputs
    assert allow["queueUrl"] == dead_letter_queue(stack).state["url"]
    assert json.loads(allow["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [work_queue(stack).arn],
    }


def test_visibility_timeout_is_six_function_timeouts(stack: CapturedStack) -> None:
    timeout = stack.one(FUNCTION).inputs["timeout"]
    assert work_queue(stack).inputs["visibilityTimeoutSeconds"] == 6 * timeout == 720


def test_visibility_timeout_follows_the_function_timeout(capture: Capture) -> None:
    stack = capture({"timeoutSeconds": 300})
    assert work_queue(stack).inputs["visibilityTimeoutSeconds"] == 6 * 300


def test_the_function_is_told_its_queue(stack: CapturedStack) -> None:
    env = env_of(stack)
    assert env[Env.QUEUE_URL] == work_queue(stack).state["url"]
    assert env[Env.MAX_RECEIVES] == str(redrive_of(stack)["maxReceiveCount"])


# --- the event source mapping -----------------------------------------------------------------


def test_the_queue_feeds_the_function(stack: CapturedStack) -> None:
    mapping = stack.one(MAPPING).inputs
    assert mapping["eventSourceArn"] == work_queue(stack).arn
    assert mapping["functionName"] == stack.one(FUNCTION).arn == FUNCTION_ARN
    assert mapping["enabled"] is True


def test_the_function_reports_which_records_failed(stack: CapturedStack) -> None:
    assert stack.one(MAPPING).inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]


def test_mapping_takes_one_message_a_time_and_caps_concurrency_at_five(
    stack: CapturedStack,
) -> None:
    mapping = stack.one(MAPPING).inputs
    assert mapping["batchSize"] == 1
    assert mapping["scalingConfig"] == {"maximumConcurrency": 5}


def test_mapping_follows_the_queue_settings(capture: Capture) -> None:
    mapping = capture({"batchSize": 3, "maxConcurrency": 20}).one(MAPPING).inputs
    assert mapping["batchSize"] == 3
    assert mapping["scalingConfig"] == {"maximumConcurrency": 20}


def test_mapping_is_created_after_the_role_may_receive(stack: CapturedStack) -> None:
    # Lambda checks the role's SQS permissions when the mapping is created.
    assert stack.one(ROLE_POLICY).urn in stack.one(MAPPING).dependencies


def test_nothing_reads_the_dead_letter_queue(stack: CapturedStack) -> None:
    sources = {m.inputs["eventSourceArn"] for m in stack.of_type(MAPPING)}
    assert dead_letter_queue(stack).arn not in sources


def test_no_asynchronous_invocation_config_is_left(stack: CapturedStack) -> None:
    assert stack.of_type(ASYNC_CONFIG) == []


# --- outputs and names ----------------------------------------------------------------------


def test_outputs(stack: CapturedStack) -> None:
    assert set(stack.outputs) == {
        "webhookUrl",
        "privacyUrl",
        "dataDeletionUrl",
        "verifyToken",
        "tableName",
        "functionName",
        "queueUrl",
        "deadLetterQueueUrl",
        "dashboardUrl",
        "ownerTopicArn",
    }
    assert (
        stack.output("webhookUrl")
        == stack.one("aws:lambda/functionUrl:FunctionUrl").state["functionUrl"]
    )
    url = stack.one(FUNCTION_URL).state["functionUrl"]
    assert url.endswith(".on.aws/")
    # What the owner pastes into the app's settings; the function serves both paths.
    assert stack.output("privacyUrl") == url + "privacy"
    assert stack.output("dataDeletionUrl") == url + "data-deletion"
    assert stack.output("tableName") == FUNCTION_NAME
    assert stack.output("functionName") == FUNCTION_NAME
    assert stack.output("queueUrl") == work_queue(stack).state["url"]
    assert stack.output("deadLetterQueueUrl") == dead_letter_queue(stack).state["url"]
    assert stack.output("verifyToken") == stack.one(PASSWORD).state["result"]
    secret = {name for name, output in stack.outputs.items() if output.secret}
    assert secret == {"verifyToken"}


def physical_names(stack: CapturedStack) -> set[str]:
    return {r.inputs["name"] for r in stack.resources if isinstance(r.inputs.get("name"), str)}


def test_every_physical_name_carries_the_stack_name(stack: CapturedStack) -> None:
    names = physical_names(stack) - {"handler"}  # the role's inline policy is scoped to the role
    assert names
    for name in names:
        assert "messenger-bridge" in name and "test" in name, name


def test_two_stacks_have_no_name_in_common(stack: CapturedStack, capture: Capture) -> None:
    other = capture(stack="staging")
    assert physical_names(stack) & physical_names(other) == {"handler"}


# --- first contact and going Live: environment and parameters ---------------------------------


def text_parameters(stack: CapturedStack) -> dict[str, CapturedResource]:
    """The settings' texts, by parameter name (the secrets are SecureStrings)."""
    return {p.inputs["name"]: p for p in stack.of_type(PARAMETER) if p.inputs["type"] == "String"}


def test_first_contact_settings_reach_the_handler(capture: Capture) -> None:
    welcome = "Hello! I am the page's automated assistant. Ask me anything; /help lists more."
    config = {**SETUP, "welcomeMessage": welcome, "privacyContact": "privacy@example.com"}
    stack = capture(config)
    env, texts = env_of(stack), text_parameters(stack)
    assert texts[env[Env.WELCOME_MESSAGE_PARAMETER]].inputs["value"] == welcome
    ice_breakers = texts[env[Env.ICE_BREAKERS_PARAMETER]].inputs["value"]
    assert json.loads(ice_breakers) == FIRST_CONTACT["iceBreakers"]
    assert ice_breakers == '["What can you do?","Who made you?"]'  # compact, as ICE_BREAKERS
    assert not LOCAL_ONLY_ENV_NAMES & set(env)
    assert (env[Env.APP_ID], env[Env.PAGE_ID]) == (APP_ID, PAGE_ID)
    assert env[Env.PRIVACY_CONTACT] == "privacy@example.com"
    assert Env.PRIVACY_TEXT_PARAMETER not in env


# Messenger's 2,000 characters, in scripts whose characters JSON escapes to 6 or 12 bytes.
LONG_WELCOMES = {
    "cyrillic": ("Здравствуйте! Я автоматический помощник этой страницы. " * 40)[:2000],
    "japanese": ("こんにちは。このページの自動アシスタントです。" * 100)[:2000],
    "emoji": "👋🤖" * 1000,
}


@pytest.mark.parametrize("script", sorted(LONG_WELCOMES))
def test_a_long_welcome_in_any_script_lives_in_a_parameter(capture: Capture, script: str) -> None:
    welcome = LONG_WELCOMES[script]
    assert len(welcome) == 2000  # the documented most (MAX_WELCOME_CHARS)
    stack = capture({"welcomeMessage": welcome})
    env = env_of(stack)
    parameter = text_parameters(stack)["/messenger-bridge/test/welcome-message"]
    assert parameter.inputs["value"] == welcome
    assert len(welcome.encode()) <= 8192  # 4 bytes a character at most: SSM's 8 KB holds it
    assert parameter.inputs["tier"] == "Intelligent-Tiering"  # advanced only over 4 KB
    assert env[Env.WELCOME_MESSAGE_PARAMETER] == parameter.inputs["name"]
    assert Env.WELCOME_MESSAGE not in env and welcome[:20] not in json.dumps(env)
    assert welcome[:20] not in json.dumps(env, ensure_ascii=False)
    grant = statements_by_sid(stack)["SecretParameters"]["Resource"]
    assert parameter.state["arn"] in grant  # read with the secrets, by the same statement
    assert parameter.urn in stack.one(FUNCTION).dependencies


def test_long_non_latin_ice_breakers_and_contact_fit_beside_the_rest(capture: Capture) -> None:
    """Four long questions in Japanese went over the environment's 4 KB with the rest; in
    their parameter they take none of it. A 200-character contact URL in Cyrillic still fits."""
    questions = ["営業時間と定休日、それから駐車場があるかどうかを教えてください。" * 4] * 4
    contact = ("https://пример.рф/" + "контакты" * 30)[:200]
    config = {**SETUP, "iceBreakers": questions, "privacyContact": contact}
    config["welcomeMessage"] = LONG_WELCOMES["emoji"]
    stack = capture(config, stack="production-customer-support")
    env = env_of(stack)
    name = "/messenger-bridge/production-customer-support/ice-breakers"
    assert env[Env.ICE_BREAKERS_PARAMETER] == name
    assert json.loads(text_parameters(stack)[name].inputs["value"]) == questions
    assert Env.ICE_BREAKERS not in env and questions[0][:10] not in json.dumps(env)
    assert env[Env.PRIVACY_CONTACT] == contact
    grant = statements_by_sid(stack)["SecretParameters"]["Resource"]
    assert {p.state["arn"] for p in text_parameters(stack).values()} <= set(grant)


def test_the_log_retention_is_told_to_the_handler_for_its_privacy_page(capture: Capture) -> None:
    assert env_of(capture({"logRetentionDays": 0}))[Env.LOG_RETENTION_DAYS] == "0"  # forever


def test_a_privacy_text_lives_in_a_parameter_read_with_the_secrets(capture: Capture) -> None:
    text = "Privacy at the Bakery\n\nWe keep your messages for a day. " * 80  # 4.6 KB
    stack = capture({"privacyText": text})
    env = env_of(stack)
    [parameter] = [p for p in stack.of_type(PARAMETER) if p.inputs["type"] == "String"]
    assert parameter.inputs["name"] == "/messenger-bridge/test/privacy-text"
    assert parameter.inputs["value"] == text.strip()
    assert parameter.inputs["tier"] == "Intelligent-Tiering"
    assert env[Env.PRIVACY_TEXT_PARAMETER] == parameter.inputs["name"]
    assert "Bakery" not in json.dumps(env)
    assert parameter.state["arn"] in statements_by_sid(stack)["SecretParameters"]["Resource"]
    assert parameter.urn in stack.one(FUNCTION).dependencies


def test_prompt_and_privacy_text_each_have_their_parameter(capture: Capture) -> None:
    stack = capture({"systemPrompt": "Be brief.", "privacyText": "Our privacy page."})
    texts = {p.inputs["name"]: p for p in stack.of_type(PARAMETER) if p.inputs["type"] == "String"}
    assert set(texts) == {
        "/messenger-bridge/test/system-prompt",
        "/messenger-bridge/test/privacy-text",
    }
    grant = statements_by_sid(stack)["SecretParameters"]["Resource"]
    assert {p.state["arn"] for p in texts.values()} <= set(grant)
    env = env_of(stack)
    assert env[Env.SYSTEM_PROMPT_PARAMETER] == "/messenger-bridge/test/system-prompt"
    assert env[Env.PRIVACY_TEXT_PARAMETER] == "/messenger-bridge/test/privacy-text"


# --- Messenger set up by `pulumi up` ---------------------------------------------------------


@pytest.fixture(scope="module")
def set_up(capture: Capture) -> CapturedStack:
    """appId and pageId given, with a chosen verify token and first contact."""
    return capture(SETUP, secrets={**SECRETS, "verifyToken": VERIFY_TOKEN})


def urn_of(stack: CapturedStack, name: str) -> str:
    return next(r.urn for r in stack.resources if r.name == name)


def test_without_the_ids_nothing_is_set_up_and_one_line_says_so(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[tuple[str, str]] = []
    monkeypatch.setattr("pulumi.log.info", lambda msg, *a, **k: said.append(("info", msg)))
    monkeypatch.setattr("pulumi.log.warn", lambda msg, *a, **k: said.append(("warn", msg)))
    stack = capture(FIRST_CONTACT)
    assert not [r for r in stack.resources if r.typ in MESSENGER_SETUP]
    [(level, line)] = [(level, m) for level, m in said if "Messenger" in m]
    assert level == "info"
    assert "appId and pageId not set" in line and "docs/DEPLOY.md" in line
    assert Env.APP_ID not in env_of(stack)


@pytest.mark.parametrize(("given", "missing"), [("appId", "pageId"), ("pageId", "appId")])
def test_one_id_without_the_other_is_a_warning_naming_the_missing_one(
    capture: Capture, monkeypatch: pytest.MonkeyPatch, given: str, missing: str
) -> None:
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda msg, *a, **k: said.append(msg))
    stack = capture({given: SETUP[given]})
    assert not [r for r in stack.resources if r.typ in MESSENGER_SETUP]
    [line] = [m for m in said if "Messenger" in m]
    assert f"{missing} not set" in line


@pytest.mark.parametrize(("receives", "warned"), [(2, True), (5, False)])
def test_fewer_receives_than_aws_advises_is_a_warning(
    capture: Capture, monkeypatch: pytest.MonkeyPatch, receives: int, warned: bool
) -> None:
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda msg, *a, **k: said.append(msg))
    capture({"maxReceiveCount": receives})
    assert any("maxReceiveCount" in m and "at least 5" in m for m in said) is warned


def test_with_the_ids_three_setup_resources_are_declared(set_up: CapturedStack) -> None:
    assert [r.typ for r in set_up.resources if r.typ in MESSENGER_SETUP] == list(MESSENGER_SETUP)
    for typ in MESSENGER_SETUP:
        # The engine runs the pickled provider; it is kept secret in the state.
        assert is_secret(set_up.one(typ).raw_inputs["__provider"])


def test_the_webhook_subscription_inputs(set_up: CapturedStack) -> None:
    inputs = set_up.one(WEBHOOK_SUBSCRIPTION).inputs
    assert {k: v for k, v in inputs.items() if k != "__provider"} == {
        "graph_api_url": "https://graph.facebook.com/v26.0",
        "app_id": APP_ID,
        "app_secret": SECRETS["appSecret"],
        "object": "page",
        "callback_url": set_up.one(FUNCTION_URL).state["functionUrl"],
        "verify_token": VERIFY_TOKEN,
        "fields": ["messages", "messaging_postbacks", "messaging_referrals", "message_echoes"],
    }
    assert inputs["fields"] == list(WEBHOOK_FIELDS)


def test_the_webhook_is_subscribed_once_the_function_answers_at_its_public_url(
    set_up: CapturedStack,
) -> None:
    """Meta calls the verify challenge during the subscription."""
    dependencies = set(set_up.one(WEBHOOK_SUBSCRIPTION).dependencies)
    assert set_up.one(FUNCTION).urn in dependencies
    assert set_up.one(FUNCTION_URL).urn in dependencies
    assert permission(set_up, "lambda:InvokeFunctionUrl", "*").urn in dependencies
    assert permission(set_up, "lambda:InvokeFunction", "*").urn in dependencies


def test_the_page_is_subscribed_after_the_webhook_and_the_profile_set_last(
    set_up: CapturedStack,
) -> None:
    page, setup = set_up.one(PAGE_SUBSCRIPTION), set_up.one(MESSENGER_PROFILE)
    assert set_up.one(WEBHOOK_SUBSCRIPTION).urn in page.dependencies
    assert page.urn in setup.dependencies
    assert set_up.one(FUNCTION).urn in setup.dependencies  # it answers Get Started


def test_the_page_subscription_inputs(set_up: CapturedStack) -> None:
    inputs = set_up.one(PAGE_SUBSCRIPTION).inputs
    assert {k: v for k, v in inputs.items() if k != "__provider"} == {
        "graph_api_url": "https://graph.facebook.com/v26.0",
        "app_id": APP_ID,
        "page_id": PAGE_ID,
        "page_access_token": SECRETS["pageAccessToken"],
        "fields": list(WEBHOOK_FIELDS),
    }


def test_the_profile_is_the_whole_profile_from_the_settings(set_up: CapturedStack) -> None:
    inputs = set_up.one(MESSENGER_PROFILE).inputs
    expected = profile.messenger_profile(
        {"default": FIRST_CONTACT["greeting"], "fr_FR": "Bonjour ! Une IA répond ici."},
        FIRST_CONTACT["iceBreakers"],
        [("Our site", "https://example.com/?a=b")],
    )
    assert inputs["profile"] == expected
    assert inputs["profile"]["get_started"] == {"payload": profile.GET_STARTED}
    assert (inputs["page_id"], inputs["graph_api_url"]) == (
        PAGE_ID,
        "https://graph.facebook.com/v26.0",
    )


def test_the_default_profile_has_the_built_in_greeting_and_no_ice_breakers(
    capture: Capture,
) -> None:
    inputs = capture({"appId": APP_ID, "pageId": PAGE_ID}).one(MESSENGER_PROFILE).inputs
    assert inputs["profile"] == profile.messenger_profile()
    assert inputs["profile"]["greeting"] == [
        {"locale": "default", "text": profile.DEFAULT_GREETING}
    ]
    assert "ice_breakers" not in inputs["profile"]


def test_the_setup_follows_the_graph_api_version(capture: Capture) -> None:
    stack = capture({"appId": APP_ID, "pageId": PAGE_ID, "graphApiVersion": "v25.0"})
    for typ in MESSENGER_SETUP:
        assert stack.one(typ).inputs["graph_api_url"] == "https://graph.facebook.com/v25.0"


@pytest.mark.parametrize(
    ("typ", "secrets"),
    [
        (WEBHOOK_SUBSCRIPTION, {"app_secret", "verify_token"}),
        (PAGE_SUBSCRIPTION, {"page_access_token"}),
        (MESSENGER_PROFILE, {"page_access_token"}),
    ],
)
def test_setup_secrets_are_secret_inputs_and_secret_outputs(
    set_up: CapturedStack, typ: str, secrets: set[str]
) -> None:
    resource = set_up.one(typ)
    for name in secrets:
        assert is_secret(resource.raw_inputs[name]), name
    assert set(resource.additional_secret_outputs) == secrets
    plain = {k: v for k, v in resource.raw_inputs.items() if not is_secret(v)}
    assert not secrets & set(plain)


def test_no_secret_travels_in_plain_text_with_messenger_set_up(set_up: CapturedStack) -> None:
    values = {*SECRETS.values(), VERIFY_TOKEN}
    for resource in set_up.resources:
        leaked = values.intersection(plain_strings(resource.raw_inputs))
        assert not leaked, f"{resource.name} has {leaked} outside a secret"
    for name, output in set_up.outputs.items():
        if not output.secret:
            assert not values.intersection(plain_strings(output.value)), name


def test_a_generated_verify_token_reaches_the_subscription_as_a_secret(capture: Capture) -> None:
    stack = capture({"appId": APP_ID, "pageId": PAGE_ID})
    webhook = stack.one(WEBHOOK_SUBSCRIPTION)
    generated = stack.one(PASSWORD)
    assert is_secret(webhook.raw_inputs["verify_token"])
    assert webhook.inputs["verify_token"] == generated.state["result"]
    assert generated.urn in webhook.dependencies


def test_the_setup_belongs_to_the_bridge(set_up: CapturedStack) -> None:
    component = {r.parent for r in set_up.resources}
    assert len(component) == 1
    names = {r.name for r in set_up.resources if r.typ in MESSENGER_SETUP}
    assert names == {
        "bridge-webhook-subscription",
        "bridge-page-subscription",
        "bridge-messenger-profile",
    }


# --- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"architecture": "sparc"}, "architecture"),
        ({"timeoutSeconds": 60}, "timeoutSeconds: must be more than 75s"),
        ({"keepWarmMinutes": -1}, "keepWarmMinutes"),
        ({"logRetentionDays": 13}, "logRetentionDays"),
        ({"kmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:alias/mine"}, "not an alias"),
        ({"adminPsids": ["12a"]}, "adminPsids"),
        ({"systemPrompt": "x" * 9000}, "systemPrompt: the prompt is 9000 bytes, over SSM's"),
        ({"batchSize": 11}, "batchSize: must be between 1 and 10"),
        ({"maxConcurrency": 1}, "maxConcurrency: must be between 2 and 1000"),
        ({"maxConcurrency": 8, "reservedConcurrency": 8}, "maxConcurrency: must be less than"),
        ({"maxReceiveCount": 0}, "maxReceiveCount: must be between 1 and 1000"),
        ({"retryDelaySeconds": 901}, "retryDelaySeconds: must be between 0 and 900"),
        ({"appId": "my-app"}, "appId: must be the Meta app's numeric id"),
        ({"iceBreakers": ["a", "b", "c", "d", "e"]}, "iceBreakers: 5 ice breakers, over"),
        ({"iceBreakers": [42]}, "iceBreakers: every item must be stored as text"),
        ({"menuLinks": ["Site=http://example.com"]}, "menuLinks: menu link 'http://example.com'"),
        ({"greeting": "x" * 161}, "greeting: greeting for default is 161 characters"),
        ({"privacyText": "x" * 8193}, "privacyText: the privacy text is 8193 bytes, over SSM's"),
    ],
)
def test_invalid_settings_fail_with_the_key(capture: Capture, config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        capture(config)


def test_missing_secrets_fail_with_the_command_that_sets_them(capture: Capture) -> None:
    with pytest.raises(ConfigError) as error:
        capture(secrets={"appSecret": "only-this-one"})
    assert "pulumi config set --secret pageAccessToken" in str(error.value)
    assert "pulumi config set --secret openaiApiKey" in str(error.value)
    assert "verifyToken" not in str(error.value)


# --- the capture helpers themselves ----------------------------------------------------------


def test_plain_strings_sees_through_everything_but_secret_wrappers() -> None:
    wrapped = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "s"}
    value = {"a": ["x", {"b": wrapped}], "c": wrapped}
    assert is_secret(wrapped) and not is_secret({"value": "s"})
    assert sorted(plain_strings(value)) == ["a", "b", "c", "x"]
    assert plain_strings({"a": ["s"]}) == ["a", "s"]
