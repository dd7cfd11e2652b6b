"""The AWS API actions the handler calls, grouped by the resource each one acts on.

The Pulumi program builds the function's IAM policy from this mapping and the tests compare
the policy against it, so adding a boto3 call without adding its action here fails a test.
"""

from __future__ import annotations

HANDLER_ACTIONS: dict[str, tuple[str, ...]] = {
    # The bridge table: inboxes (the webhook posts in one batch), dedupe claims, users,
    # daily counters, conversation history.
    "table": (
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ),
    # The table's indexes: the owner's list of recent users.
    "table_indexes": ("dynamodb:Query",),
    # The function itself: the webhook (and a worker out of time) starts a drain of an inbox.
    "function": ("lambda:InvokeFunction",),
    # The secrets, fetched in one call at cold start.
    "secret_parameters": ("ssm:GetParameters",),
    # The KMS key that encrypts those parameters.
    "secrets_key": ("kms:Decrypt",),
    # The function's own log group (the runtime writes it with the function's role).
    "log_group": ("logs:CreateLogStream", "logs:PutLogEvents"),
    # The failure queue: the on-failure destination of asynchronous invocations (Lambda sends
    # with this role), where workers also park a message they gave up on.
    "failure_queue": ("sqs:SendMessage",),
}
