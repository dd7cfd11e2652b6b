"""The DynamoDB table's shape: one place that the store and the Pulumi program both read.

One table holds every item, told apart by key prefixes:

=====================  ================  ==============================================
pk                     sk                what
=====================  ================  ==============================================
``USER#<psid>``        ``PROFILE``       status, own limit, first and last seen
``USER#<psid>``        ``DAY#<date>``    questions counted that day (expires)
``USER#<psid>``        ``HISTORY``       recent conversation turns (expires)
``EVENT#<id>``         ``EVENT``         dedupe claim of one webhook event (expires)
``INBOX#<psid>``       ``MSG#<ts>#<h>``  a message waiting to be answered, by send time
``INBOX#<psid>``       ``LOCK``          the lease of the one worker draining the inbox
``INBOX#<psid>``       ``FAILED#<id>``   failed attempts of one drain invocation (expires)
=====================  ================  ==============================================

Profiles also carry ``entity``/``active_at``, a sparse index of users by last activity.
"""

from __future__ import annotations

# What DynamoDB answers when a conditional write's condition does not hold.
CONDITION_FAILED = "ConditionalCheckFailedException"

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"

USERS_INDEX = "users_by_activity"
USERS_INDEX_PARTITION_KEY = "entity"
USERS_INDEX_SORT_KEY = "active_at"
USER_ENTITY = "user"

# Everything the table definition needs, in boto3/CloudFormation vocabulary.
ATTRIBUTE_DEFINITIONS: tuple[dict[str, str], ...] = (
    {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": SORT_KEY, "AttributeType": "S"},
    {"AttributeName": USERS_INDEX_PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": USERS_INDEX_SORT_KEY, "AttributeType": "S"},
)
KEY_SCHEMA: tuple[dict[str, str], ...] = (
    {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
)
GLOBAL_SECONDARY_INDEXES: tuple[dict, ...] = (
    {
        "IndexName": USERS_INDEX,
        "KeySchema": [
            {"AttributeName": USERS_INDEX_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": USERS_INDEX_SORT_KEY, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
)


def create_table_request(table_name: str) -> dict:
    """Arguments for ``dynamodb.create_table``: how local stacks and tests make the table."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": [dict(a) for a in ATTRIBUTE_DEFINITIONS],
        "KeySchema": [dict(k) for k in KEY_SCHEMA],
        "GlobalSecondaryIndexes": [
            {**index, "KeySchema": [dict(k) for k in index["KeySchema"]]}
            for index in GLOBAL_SECONDARY_INDEXES
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def is_condition_failure(error: Exception) -> bool:
    """A botocore ``ClientError`` saying the write's condition did not hold."""
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") == CONDITION_FAILED
