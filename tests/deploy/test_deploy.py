"""Deploy simulation: the stack ``__main__.py`` declares, stood up locally, used end to end.

No AWS account and no Pulumi CLI: the program runs under Pulumi mocks (``conftest.py``), and
from what it declared, and nothing written beside it, the simulation makes

- the data plane in a moto server: the table (key schema, index, TTL), the KMS key and alias,
  the SecureString parameters holding the values the program stored, the failure queue, the
  log group, and the function's role with its inline policy (``aws.py``);
- the function: the archive the program built, extracted into a clean directory and run by a
  minimal Lambda runtime (``bootstrap.py``) in a separate Python 3.13 process with exactly
  the declared environment, Lambda's own variables, and endpoints pointing at loopback
  (``simulation.py``);
- the Lambda service around it: Runtime API, Function URL, Invoke API (the self-invocation,
  retries, the on-failure destination), log delivery, and EventBridge (``lambda_service.py``).

The function's AWS calls are signed with a session of the declared role (assumed through
moto's STS), and moto enforces IAM. What is enforced where (details in ``iam.py``):

- moto, live: the actions of every statement (dynamodb, ssm, logs, sqs); the resource only
  for SQS (the failure queue's ARN). For the others moto evaluates every call against "*",
  so their statements reach moto with ``Resource`` widened to "*";
- the Invoke stand-in, live: lambda:InvokeFunction by the exact policy, resource included;
  EventBridge's invoke and the Function URL by the declared resource-based permissions;
- statically, after the run, against the exact policy: every call the role made, recorded
  on the wire, with its resource ARNs (table vs index, parameter, log stream, queue,
  function), plus kms:Decrypt on the parameters' key, which moto's SSM never asks KMS for.

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


def test_failed_async_invocation_is_parked_in_the_failure_queue(baseline: Outcome) -> None:
    baseline.check("failure_parked")


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
    assert actions(enforced) == actions(declared)
    for statement in enforced["Statement"]:
        service = statement["Action"][0].split(":")[0]
        widened = statement["Resource"] == "*"
        assert widened == (service not in iam.MOTO_MATCHES_RESOURCES), statement


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
