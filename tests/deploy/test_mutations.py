"""Meta-tests: the deploy simulation fails when the program and the handler stop agreeing.

Each test changes the captured declaration the way a change to the program would change it
(a renamed environment variable, another key schema, one IAM statement or action fewer,
another event source mapping), stands the changed stack up exactly as ``test_deploy.py``
does, and expects a named step to fail. Changing the captured copy instead of the program is
sound because everything the simulation builds is derived from that copy; the handler (the
archive) stays as built.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.deploy.scenarios import Outcome, run, unread_variables
from tests.deploy.simulation import Operator, RuntimeFiles
from tests.deploy.stack import QUEUE, Declaration

Attempt = Callable[[Declaration], Outcome]


@pytest.fixture
def attempt(runtime_files: RuntimeFiles, operator: Operator, deploy_moto: str) -> Attempt:
    def stand_up_and_run(declaration: Declaration) -> Outcome:
        return run(declaration, runtime_files, operator, deploy_moto, fail_fast=True)

    return stand_up_and_run


def caught(outcome: Outcome, step: str, *words: str) -> str:
    failure = outcome.first_failure()
    assert failure is not None, "the simulation passed: the mutation went unnoticed"
    failed_step, error = failure
    message = f"{type(error).__name__}: {error}"
    assert failed_step == step, f"caught by {failed_step}, not {step}: {message}"
    for word in words:
        assert word in message, f"{word!r} not in {message}"
    return message


def test_the_unchanged_declaration_passes(baseline: Outcome) -> None:
    assert baseline.first_failure() is None, baseline.first_failure()


# --- environment variable names ------------------------------------------------------------

# Each rename is caught by the first step whose behaviour depends on the variable.
RENAMES = [
    ("TABLE_NAME", "verify_challenge", "TABLE_NAME is not set"),  # the cold start fails
    ("APP_SECRET_PARAMETER", "verify_challenge", "SecretsError"),  # secrets not loaded
    ("GRAPH_API_URL", "stand_up", "GRAPH_API_URL"),  # would call the real Graph API
    ("QUEUE_URL", "new_user_message", "503"),  # nowhere to hand off: Facebook must retry
    ("OPENAI_MODEL", "new_user_message", "couldn't get an answer"),  # the default model
    ("ADMIN_PSIDS", "new_user_message", "was not told"),  # nobody to notify
    ("WELCOME_MESSAGE_PARAMETER", "new_user_message", "the user got"),  # the built-in welcome
    ("ICE_BREAKERS_PARAMETER", "get_started_welcome", "not the ice breakers"),  # none offered
    ("QUOTA_TIMEZONE", "new_user_message", "quota counter"),  # counted on UTC's day
    ("RETRY_DELAY_SECONDS", "send_api_outage_backed_off", "not the configured"),  # 10 s
    ("MAX_RECEIVES", "dead_lettered", "not the queue's"),  # the handler's default of 5
    ("LOG_LEVEL", "logs_delivered", "below WARNING"),  # logs at INFO
    ("HISTORY_TURNS", "declared_names_read_by_the_code", "HISTORY_TURNS_RENAMED"),
]


@pytest.mark.parametrize(("variable", "step", "word"), RENAMES, ids=[r[0] for r in RENAMES])
def test_renamed_variable_fails(
    attempt: Attempt, declaration: Declaration, variable: str, step: str, word: str
) -> None:
    mutated = declaration.with_env_renamed(variable, f"{variable}_RENAMED")
    caught(attempt(mutated), step, word)


def test_every_renamed_variable_is_caught_statically(
    declaration: Declaration, runtime_files: RuntimeFiles
) -> None:
    """The last step, for every declared name (the runs above show the earlier steps)."""
    assert unread_variables(declaration, runtime_files.task_root) == []
    for variable in declaration.function.environment:
        mutated = declaration.with_env_renamed(variable, f"{variable}_RENAMED")
        unread = unread_variables(mutated, runtime_files.task_root)
        assert unread == [f"{variable}_RENAMED"], variable


# --- the key schema ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["hashKey", "rangeKey"])
def test_other_key_schema_fails(attempt: Attempt, declaration: Declaration, key: str) -> None:
    mutated = declaration.with_table_key(key, "renamed_key")
    # The webhook answers (it writes nothing but the queue); the worker's first write, the
    # claim on the event, is refused, and the first receive fails.
    caught(attempt(mutated), "new_user_message", "dynamodb:UpdateItem 400 ValidationException")


# --- one IAM statement fewer ---------------------------------------------------------------

# Where each missing statement is noticed: by moto (live), by Lambda's check when it creates
# the event source mapping, or only by the static audit, because moto does not check that
# resource or that action.
STATEMENTS = [
    ("SecretParameters", "verify_challenge", "ssm:GetParameters 403 AccessDenied"),  # moto
    ("Table", "new_user_message", "dynamodb:UpdateItem 403 AccessDenied"),  # moto: the claim
    ("Queue", "stand_up", "does not have permissions to call ReceiveMessage on SQS"),
    ("TableIndexes", "iam_audit", "dynamodb:Query on arn:"),  # moto: Query is allowed on "*"
    ("SecretsKey", "iam_audit", "kms:Decrypt"),  # moto's SSM never asks KMS
    ("LogGroup", "logs_delivered", "AccessDenied"),  # moto denies logs:CreateLogStream
    ("OwnerTopic", "dead_lettered", "no token e-mail"),  # moto denies sns:Publish
]


@pytest.mark.parametrize(("sid", "step", "word"), STATEMENTS, ids=[s[0] for s in STATEMENTS])
def test_missing_statement_fails(
    attempt: Attempt, declaration: Declaration, sid: str, step: str, word: str
) -> None:
    caught(attempt(declaration.without_statement(sid)), step, word)


def test_every_statement_is_covered_above(declaration: Declaration) -> None:
    assert {s["Sid"] for s in declaration.policy["Statement"]} == {s[0] for s in STATEMENTS}


# --- one IAM action fewer: the queue's, each where it is used ------------------------------

ACTIONS = [
    # The webhook's hand-off is refused (moto): it answers 503 so that Facebook delivers again.
    ("sqs:SendMessage", "new_user_message", "503", "sqs:SendMessageBatch 403 AccessDenied"),
    # Lambda refuses to create the mapping: its pollers could not read the queue.
    ("sqs:ReceiveMessage", "stand_up", "call ReceiveMessage on SQS"),
    ("sqs:DeleteMessage", "stand_up", "call DeleteMessage on SQS"),
    ("sqs:GetQueueAttributes", "stand_up", "call GetQueueAttributes on SQS"),
    # The worker cannot back a failed message off (moto): it would wait out the queue's
    # visibility timeout (six function timeouts) instead of the configured delay.
    (
        "sqs:ChangeMessageVisibility",
        "send_api_outage_backed_off",
        "could not back the message off",
        "sqs:ChangeMessageVisibilityBatch 403 AccessDenied",
    ),
    # The worker's one read of a person's items is refused (moto): the first receive fails.
    ("dynamodb:BatchGetItem", "new_user_message", "dynamodb:BatchGetItem 403 AccessDenied"),
]


@pytest.mark.parametrize(
    ("action", "step", "words"),
    [(action, step, words) for action, step, *words in ACTIONS],
    ids=[a[0] for a in ACTIONS],
)
def test_missing_action_fails(
    attempt: Attempt, declaration: Declaration, action: str, step: str, words: list[str]
) -> None:
    caught(attempt(declaration.without_action(action)), step, *words)


def test_every_queue_action_is_covered_above(declaration: Declaration) -> None:
    granted = {a for s in declaration.policy["Statement"] for a in s["Action"]}
    queue_actions = {a for a in granted if a.startswith("sqs:")}
    assert queue_actions <= {a[0] for a in ACTIONS}


# --- the event source mapping --------------------------------------------------------------


def test_mapping_without_partial_batch_responses_fails(
    attempt: Attempt, declaration: Declaration
) -> None:
    """Without ReportBatchItemFailures Lambda ignores the batchItemFailures the worker
    returns and deletes the whole batch: a message whose answer could not be sent is lost."""
    mutated = declaration.with_mapping(functionResponseTypes=[])
    caught(attempt(mutated), "send_api_outage_backed_off", "not partial")


def test_queue_visibility_shorter_than_the_function_timeout_fails(
    attempt: Attempt, declaration: Declaration
) -> None:
    """Lambda refuses to feed a function from a queue that would hand a batch out again
    while the function may still be working on it."""
    queue = declaration.queue_with_arn(declaration.mapping.queue_arn)
    shorter = declaration.function.timeout_seconds - 1
    mutated = declaration.with_inputs(QUEUE, queue.name, visibilityTimeoutSeconds=shorter)
    caught(attempt(mutated), "stand_up", "is less than Function timeout")
