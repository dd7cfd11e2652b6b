"""Meta-tests: the deploy simulation fails when the program and the handler stop agreeing.

Each test changes the captured declaration the way a change to the program would change it
(a renamed environment variable, another key schema, one IAM statement fewer), stands the
changed stack up exactly as ``test_deploy.py`` does, and expects a named step to fail.
Changing the captured copy instead of the program is sound because everything the
simulation builds is derived from that copy; the handler (the archive) stays as built.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.deploy.scenarios import Outcome, run, unread_variables
from tests.deploy.simulation import Operator, RuntimeFiles
from tests.deploy.stack import Declaration

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
    ("OPENAI_MODEL", "new_user_message", "couldn't get an answer"),  # the default model
    ("ADMIN_PSIDS", "new_user_message", "was not told"),  # nobody to notify
    ("QUOTA_TIMEZONE", "new_user_message", "quota counter"),  # counted on UTC's day
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
    # The webhook answers (it writes nothing); the worker's first write is refused.
    # The webhook's first write: the message into the person's inbox.
    caught(attempt(mutated), "new_user_message", "dynamodb:BatchWriteItem 400 ValidationException")


# --- one IAM statement fewer ---------------------------------------------------------------

# Where each missing statement is noticed: by moto (live), by the Invoke stand-in (live), or
# only by the static audit, because moto does not check that resource or that action.
STATEMENTS = [
    ("SecretParameters", "verify_challenge", "ssm:GetParameters 403 AccessDenied"),  # moto
    ("Table", "new_user_message", "dynamodb:BatchWriteItem 403 AccessDenied"),  # moto
    ("Function", "new_user_message", "lambda:Invoke 403"),  # the Invoke stand-in: the
    # webhook then answers 503, so that Facebook delivers again
    ("TableIndexes", "iam_audit", "dynamodb:Query on arn:"),  # moto: Query is allowed on "*"
    ("SecretsKey", "iam_audit", "kms:Decrypt"),  # moto's SSM never asks KMS
    ("LogGroup", "logs_delivered", "AccessDenied"),  # moto denies logs:CreateLogStream
    ("FailureQueue", "failure_parked", "could not park"),  # moto denies sqs:SendMessage
]


@pytest.mark.parametrize(("sid", "step", "word"), STATEMENTS, ids=[s[0] for s in STATEMENTS])
def test_missing_statement_fails(
    attempt: Attempt, declaration: Declaration, sid: str, step: str, word: str
) -> None:
    caught(attempt(declaration.without_statement(sid)), step, word)


def test_every_statement_is_covered_above(declaration: Declaration) -> None:
    assert {s["Sid"] for s in declaration.policy["Statement"]} == {s[0] for s in STATEMENTS}
