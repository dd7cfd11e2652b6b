"""Deploy simulation: the stack ``__main__.py`` declares, stood up locally, used end to end.

No AWS account and no Pulumi CLI: the program runs under Pulumi mocks (``conftest.py``), and
from what it declared, and nothing written beside it, the simulation makes

- the data plane in a moto server: the table (key schema, index, TTL), the KMS key and alias,
  the SecureString parameters holding the values the program stored, the FIFO queue and its
  FIFO dead-letter queue (visibility timeout, redrive policy, redrive-allow policy,
  high-throughput FIFO, SSE), the log group, and the function's role with its inline policy
  (``aws.py``);
- the function: the archive the program built, extracted into a clean directory and run by a
  minimal Lambda runtime (``bootstrap.py``) in a separate Python 3.13 process with exactly
  the declared environment (``QUEUE_URL`` resolved to the queue in moto), Lambda's own
  variables, and endpoints pointing at loopback (``simulation.py``);
- the Lambda service around it: Runtime API, Function URL, the event source mapping (the
  queue poller of ``local.event_source``, with the declared batch size, maximum concurrency
  and ReportBatchItemFailures, invoking the process through the Runtime API), log delivery,
  and EventBridge (``lambda_service.py``).

The function's AWS calls are signed with a session of the declared role (assumed through
moto's STS), and so are the mapping's ReceiveMessage and DeleteMessageBatch (Lambda polls
with the execution role), and moto enforces IAM. What is enforced where (details in
``iam.py``):

- moto, live: the actions of every statement (dynamodb, ssm, logs, sqs), with the API names
  moto checks instead of IAM's (SendMessageBatch, TransactWriteItems...) added beside them;
  the resource only for SQS (the queue's ARN). For the others moto evaluates every call
  against "*", so their statements reach moto with ``Resource`` widened to "*";
- Lambda's CreateEventSourceMapping, statically: the role may receive, delete and read
  attributes on the queue; EventBridge's invoke and the Function URL by the declared
  resource-based permissions;
- statically, after the run, against the exact policy: every call the role made, recorded
  on the wire, with its IAM actions and resource ARNs (table vs index, each item of a
  transaction, parameter, log stream, queue), plus kms:Decrypt on the parameters' key,
  which moto's SSM never asks KMS for.

The steps are in ``scenarios.py``; one run serves all the tests below, and
``test_mutations.py`` shows each kind of drift failing them.
"""

from __future__ import annotations

import zipfile

import pytest
from moto.dynamodb.responses import DynamoHandler
from moto.kms.responses import KmsResponse
from moto.logs.responses import LogsResponse
from moto.sqs.responses import SQSResponse
from moto.ssm.responses import SimpleSystemManagerResponse

from tests.deploy import iam
from tests.deploy.scenarios import Outcome
from tests.deploy.simulation import (
    ENDPOINT_VARIABLES,
    RESERVED_RUNTIME_VARIABLES,
    RuntimeFiles,
    check_environment,
)
from tests.deploy.stack import Declaration


def test_stood_up(baseline: Outcome) -> None:
    """Materialized from the declaration, the process started with the exact environment."""
    for step in ("stand_up", "tear_down"):
        if baseline.errors.get(step) is not None:
            raise baseline.errors[step]  # type: ignore[misc]


def test_no_secret_in_the_function_environment(baseline: Outcome) -> None:
    baseline.check("no_secret_in_the_environment")


def test_verify_challenge_with_the_generated_token(baseline: Outcome) -> None:
    baseline.check("verify_challenge")


def test_forged_signature_is_refused_and_nothing_written(baseline: Outcome) -> None:
    baseline.check("forged_signature_refused")


def test_new_user_is_answered_and_the_admin_told(baseline: Outcome) -> None:
    baseline.check("new_user_message")


def test_admin_lists_users_through_the_index(baseline: Outcome) -> None:
    baseline.check("admin_lists_users")


def test_keep_warm_event_as_eventbridge_sends_it(baseline: Outcome) -> None:
    baseline.check("keep_warm")


def test_send_api_outage_is_backed_off_and_answered_later(baseline: Outcome) -> None:
    baseline.check("send_api_outage_backed_off")


def test_message_that_keeps_failing_reaches_the_dead_letter_queue(baseline: Outcome) -> None:
    baseline.check("dead_lettered")


def test_logs_reach_the_log_group_without_secrets(baseline: Outcome) -> None:
    baseline.check("logs_delivered")


def test_every_call_is_allowed_by_the_exact_policy(baseline: Outcome) -> None:
    baseline.check("iam_audit")


def test_every_statement_is_exercised(baseline: Outcome) -> None:
    baseline.check("every_statement_exercised")


def test_every_declared_variable_is_named_by_the_handler(baseline: Outcome) -> None:
    baseline.check("declared_names_read_by_the_code")


def test_task_root_is_still_the_archive(baseline: Outcome, runtime_files: RuntimeFiles) -> None:
    """The process ran the archive as built: nothing added (bytecode went elsewhere)."""
    with zipfile.ZipFile(runtime_files.archive) as z:
        expected = {i.filename: i.file_size for i in z.infolist() if not i.is_dir()}
    root = runtime_files.task_root
    found = {
        p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
    }
    assert found == expected


# --- the ground rules themselves -----------------------------------------------------------


def test_moto_matches_resources_only_where_the_simulation_says() -> None:
    """iam.MOTO_MATCHES_RESOURCES must match moto: where moto's response does not determine
    the resource, moto checks the policy against "*", and the simulation widens."""
    classes = {
        "dynamodb": DynamoHandler,
        "ssm": SimpleSystemManagerResponse,
        "kms": KmsResponse,
        "logs": LogsResponse,
        "sqs": SQSResponse,
    }
    matching = {name for name, cls in classes.items() if "_determine_resource" in vars(cls)}
    assert matching == iam.MOTO_MATCHES_RESOURCES


def test_moto_policy_keeps_every_action_and_widens_only_unmatched_resources(
    declaration: Declaration,
) -> None:
    declared = declaration.policy
    enforced = iam.moto_enforceable(declared)
    actions = lambda p: sorted(a for s in p["Statement"] for a in s["Action"])  # noqa: E731
    added = sorted(set(actions(enforced)) - set(actions(declared)))
    assert sorted(set(actions(declared))) == sorted(set(actions(enforced)) - set(added))
    # Only the API names moto checks instead of IAM's actions, which the program declares
    # none of (they are not IAM actions).
    assert set(added) == set(iam.MOTO_ONLY_ACTIONS), added
    for statement in enforced["Statement"]:
        service = statement["Action"][0].split(":")[0]
        widened = statement["Resource"] == "*"
        assert widened == (service not in iam.MOTO_MATCHES_RESOURCES), statement


@pytest.mark.parametrize(
    ("declared", "added"),
    [
        (["sqs:SendMessage"], ["sqs:SendMessageBatch"]),
        (["sqs:ReceiveMessage", "sqs:GetQueueAttributes"], []),
        (["sqs:DeleteMessage"], ["sqs:DeleteMessageBatch"]),
        (["sqs:ChangeMessageVisibility"], ["sqs:ChangeMessageVisibilityBatch"]),
        (["dynamodb:GetItem", "dynamodb:BatchGetItem"], []),
        (["dynamodb:PutItem"], ["dynamodb:TransactWriteItems"]),
        (["dynamodb:ConditionCheckItem"], ["dynamodb:TransactWriteItems"]),
    ],
)
def test_moto_only_actions_follow_the_actions_iam_checks(
    declared: list[str], added: list[str]
) -> None:
    """moto sees a batch or a transaction only where IAM would allow some of it."""
    assert iam.moto_only_actions(declared) == added


ACCOUNT = iam.Account("aws", "us-east-1", "1")
QUEUE_URL = "http://127.0.0.1:5000/1/q.fifo"


def _needs(service: str, action: str, body: dict) -> list[tuple[str, str]]:
    call = iam.AwsCall(service, action, "key", "us-east-1", body, 200)
    found = iam.resources_of(call, ACCOUNT, lambda _name: None)
    assert found is not None, f"{service}:{action} has no rule"
    return [(n.action, n.resource) for n in found]


@pytest.mark.parametrize(
    ("api", "action"),
    [
        ("SendMessage", "sqs:SendMessage"),
        ("SendMessageBatch", "sqs:SendMessage"),
        ("ReceiveMessage", "sqs:ReceiveMessage"),
        ("DeleteMessage", "sqs:DeleteMessage"),
        ("DeleteMessageBatch", "sqs:DeleteMessage"),
        ("ChangeMessageVisibility", "sqs:ChangeMessageVisibility"),
        ("ChangeMessageVisibilityBatch", "sqs:ChangeMessageVisibility"),
        ("GetQueueAttributes", "sqs:GetQueueAttributes"),
    ],
)
def test_sqs_calls_need_their_iam_action_on_the_queue(api: str, action: str) -> None:
    assert _needs("sqs", api, {"QueueUrl": QUEUE_URL}) == [
        (action, "arn:aws:sqs:us-east-1:1:q.fifo")
    ]


def test_publishing_to_an_encrypted_topic_needs_the_topic_and_its_key() -> None:
    topic, key = "arn:aws:sns:us-east-1:1:bridge-owner", "arn:aws:kms:us-east-1:1:key/k"
    call = iam.AwsCall("sns", "Publish", "key", "us-east-1", {"TopicArn": topic}, 200)
    found = iam.resources_of(call, ACCOUNT, {topic: key}.get)
    assert found is not None
    assert [(n.action, n.resource) for n in found] == [
        ("sns:Publish", topic),
        ("kms:GenerateDataKey", key),
        ("kms:Decrypt", key),
    ]


def test_batch_get_needs_batch_get_on_each_table() -> None:
    body = {"RequestItems": {"t": {"Keys": []}, "u": {"Keys": []}}}
    assert _needs("dynamodb", "BatchGetItem", body) == [
        ("dynamodb:BatchGetItem", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("dynamodb:BatchGetItem", "arn:aws:dynamodb:us-east-1:1:table/u"),
    ]


def test_a_transaction_needs_the_action_of_each_item_on_its_table() -> None:
    body = {
        "TransactItems": [
            {"Update": {"TableName": "t", "Key": {}}},
            {"Put": {"TableName": "t", "Item": {}}},
            {"Delete": {"TableName": "u", "Key": {}}},
            {"ConditionCheck": {"TableName": "u", "Key": {}}},
        ]
    }
    assert _needs("dynamodb", "TransactWriteItems", body) == [
        ("dynamodb:UpdateItem", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:1:table/t"),
        ("dynamodb:DeleteItem", "arn:aws:dynamodb:us-east-1:1:table/u"),
        ("dynamodb:ConditionCheckItem", "arn:aws:dynamodb:us-east-1:1:table/u"),
    ]
    unknown = {"TransactItems": [{"Frobnicate": {"TableName": "t"}}]}
    call = iam.AwsCall("dynamodb", "TransactWriteItems", "key", "us-east-1", unknown, 200)
    assert iam.resources_of(call, ACCOUNT, lambda _name: None) is None


def test_mapping_creation_needs_receive_delete_and_attributes() -> None:
    queue = "arn:aws:sqs:us-east-1:1:q.fifo"
    full = {
        "Statement": [{"Effect": "Allow", "Action": list(iam.MAPPING_ACTIONS), "Resource": queue}]
    }
    assert iam.mapping_role_refusal(full, queue) is None
    for action in iam.MAPPING_ACTIONS:
        kept = [a for a in iam.MAPPING_ACTIONS if a != action]
        policy = {"Statement": [{"Effect": "Allow", "Action": kept, "Resource": queue}]}
        refusal = iam.mapping_role_refusal(policy, queue)
        assert refusal is not None and action.split(":")[1] in refusal


@pytest.mark.parametrize(
    ("action", "resource", "allowed"),
    [
        ("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:1:table/t", True),
        ("DynamoDB:putitem", "arn:aws:dynamodb:us-east-1:1:table/t", True),
        ("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:1:table/t/index/i", False),
        ("dynamodb:Query", "arn:aws:dynamodb:us-east-1:1:table/t/index/i", True),
        ("dynamodb:Scan", "arn:aws:dynamodb:us-east-1:1:table/t", False),
        ("logs:PutLogEvents", "arn:aws:logs:us-east-1:1:log-group:/g:log-stream:s", True),
        ("logs:PutLogEvents", "arn:aws:logs:us-east-1:1:log-group:/g2:log-stream:s", False),
    ],
)
def test_static_evaluator(action: str, resource: str, allowed: bool) -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["dynamodb:PutItem", "dynamodb:Query"],
                "Resource": ["arn:aws:dynamodb:us-east-1:1:table/t"],
            },
            {
                "Effect": "Allow",
                "Action": ["dynamodb:Query"],
                "Resource": ["arn:aws:dynamodb:us-east-1:1:table/t/index/*"],
            },
            {
                "Effect": "Allow",
                "Action": "logs:PutLogEvents",
                "Resource": "arn:aws:logs:us-east-1:1:log-group:/g:*",
            },
        ]
    }
    assert iam.allows(policy, action, resource) is allowed


def test_environment_check_refuses_anything_extra() -> None:
    declared = {"TABLE_NAME": "t", "GRAPH_API_URL": "https://graph.facebook.com/v23.0"}
    runtime = {"AWS_REGION": "us-east-1"}
    redirects = {"GRAPH_API_URL": "http://127.0.0.1:1/v23.0"}
    env = {**declared, **runtime, **redirects}
    check_environment(env, declared, runtime, redirects)
    with pytest.raises(AssertionError, match="differs"):
        check_environment({**env, "EXTRA": "1"}, declared, runtime, redirects)
    with pytest.raises(AssertionError, match="loopback"):
        check_environment(env, declared, runtime, {"GRAPH_API_URL": "https://x/v23.0"})
    with pytest.raises(AssertionError, match="path"):
        check_environment(env, declared, runtime, {"GRAPH_API_URL": "http://127.0.0.1:1/v9.0"})
    with pytest.raises(AssertionError, match="reserve"):
        check_environment(env, {**declared, "AWS_REGION": "x"}, runtime, redirects)
    assert "AWS_ENDPOINT_URL" in ENDPOINT_VARIABLES
    assert "_HANDLER" in RESERVED_RUNTIME_VARIABLES
