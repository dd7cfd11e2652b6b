"""IAM policy documents as pure functions: ARNs in, JSON-ready dicts out.

The handler's policy is built from ``handler.permissions.HANDLER_ACTIONS``: one statement per
resource group, exactly the actions listed there, on exactly that group's ARNs. Nothing is
granted on "*", so a new boto3 call in the handler needs a new entry there and fails the
tests until it has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from handler.permissions import HANDLER_ACTIONS

POLICY_VERSION = "2012-10-17"
LAMBDA_SERVICE = "lambda.amazonaws.com"

PolicyDocument = dict[str, Any]


def lambda_trust_policy() -> PolicyDocument:
    """Only the Lambda service may assume the function's role."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": LAMBDA_SERVICE},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def handler_resources(
    *,
    table_arn: str,
    parameter_arns: Sequence[str],
    key_arn: str,
    log_group_arn: str,
    queue_arn: str,
    topic_arn: str,
) -> dict[str, tuple[str, ...]]:
    """The ARNs of each resource group of ``HANDLER_ACTIONS``.

    The dead-letter queue needs nothing: SQS moves messages there itself.
    """
    return {
        "table": (table_arn,),
        "table_indexes": (f"{table_arn}/index/*",),
        # The webhook sends, Lambda's event source mapping receives and deletes with the
        # function's role, the worker backs failures off: all on this one queue.
        "queue": (queue_arn,),
        "secret_parameters": tuple(sorted(parameter_arns)),
        "secrets_key": (key_arn,),
        # Log streams live under the group: arn:...:log-group:<name>:log-stream:<stream>.
        "log_group": (f"{log_group_arn}:*",),
        "owner_topic": (topic_arn,),
    }


def _sid(group: str) -> str:
    return "".join(part.capitalize() for part in group.split("_"))


def handler_policy(
    resources: Mapping[str, Sequence[str]],
    actions: Mapping[str, Sequence[str]] = HANDLER_ACTIONS,
) -> PolicyDocument:
    """One Allow statement per resource group; refuses gaps, '*' actions and bare '*'."""
    if set(resources) != set(actions):
        missing = sorted(set(actions) - set(resources))
        extra = sorted(set(resources) - set(actions))
        raise ValueError(
            f"resource groups do not match the handler's: missing {missing}, extra {extra}"
        )
    statements = []
    for group, group_actions in actions.items():
        arns = list(resources[group])
        if not arns or any("*" in action for action in group_actions):
            raise ValueError(f"{group}: needs its resources and named actions (no '*' action)")
        if any(not arn.startswith("arn:") for arn in arns):
            raise ValueError(f"{group}: resources must be ARNs, got {arns}")
        statements.append(
            {
                "Sid": _sid(group),
                "Effect": "Allow",
                "Action": sorted(group_actions),
                "Resource": arns,
            }
        )
    return {"Version": POLICY_VERSION, "Statement": statements}
