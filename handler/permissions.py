"""The AWS API actions the handler calls, grouped by the resource each one acts on.

The Pulumi program builds the function's IAM policy from this mapping and the tests compare
the policy against it, so adding a boto3 call without adding its action here fails a test.
"""

from __future__ import annotations

HANDLER_ACTIONS: dict[str, tuple[str, ...]] = {
    # The bridge table: event attempts, users, daily counters, conversation history, deletion
    # requests. The worker reads a person's items in one BatchGetItem and writes in
    # transactions, which IAM authorizes by the item actions inside them (Put, Update, and
    # ConditionCheck: an answer is recorded only while no takeover's pause runs).
    "table": (
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ),
    # The table's indexes: the owner's list of recent users.
    "table_indexes": ("dynamodb:Query",),
    # The FIFO queue: the webhook sends to it; Lambda's event source mapping receives and
    # deletes with the function's role; the worker backs a failed message off.
    "queue": (
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
    ),
    # The secrets, fetched in one call at cold start.
    "secret_parameters": ("ssm:GetParameters",),
    # The stack's KMS key: it encrypts those parameters, and the owner's topic, whose
    # publishers need a data key from it.
    "secrets_key": ("kms:Decrypt", "kms:GenerateDataKey"),
    # The owner's SNS topic: "owner must act" alerts by e-mail (ownerEmail).
    "owner_topic": ("sns:Publish",),
    # The function's own log group (the runtime writes it with the function's role).
    "log_group": ("logs:CreateLogStream", "logs:PutLogEvents"),
}
