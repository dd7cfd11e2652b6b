"""The DynamoDB table's shape and its key layout: the one place that spells a key.

One table holds every item, told apart by key prefixes:

=====================  ================  ==============================================
pk                     sk                what
=====================  ================  ==============================================
``USER#<psid>``        ``PROFILE``       status, own limit, first and last seen
``USER#<psid>``        ``DAY#<date>``    questions counted that day, tokens and estimated
                                         cost: numbers (expires)
``USER#<psid>``        ``HISTORY``       recent conversation turns and the summary of the
                                         older ones; the links of photos sent without text,
                                         waiting 10 minutes for their question (expires)
``USER#<psid>``        ``OUTBOX``        an owner's notices waiting for their next message:
                                         one per key, the newest, at most 20 (expires)
``USER#<psid>``        ``PAUSE``         until when the bot is quiet for this person, and
                                         who paused it (a human's reply, /human, /pause);
                                         a person's /delete leaves a running one (expires)
``USER#<psid>``        ``ALERT#<kind>``  until when a notice about this person is quiet
                                         (their /human): deleted with them (expires)
``PAGE``               ``DAY#<date>``    the whole page that day: questions, tokens,
                                         estimated cost, failures by kind (expires)
``PAGE``               ``ALERT#<kind>``  until when an owner alert of that kind is quiet
``EVENT#<id>``         ``EVENT``         one webhook event's attempt: owner, lease, the
                                         reply while it is being sent (expires)
``DELETION#<code>``    ``DELETION``      what a data-deletion request did (expires)
=====================  ================  ==============================================

Profiles also carry ``entity``/``active_at``, a sparse index of users by last activity.
The store, the admin CLI, the benchmarks and the tests build keys only through the
functions below.
"""

from __future__ import annotations

from typing import Any

# What DynamoDB answers when a conditional write's condition does not hold.
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"

USER_PREFIX = "USER#"
EVENT_PREFIX = "EVENT#"
DAY_PREFIX = "DAY#"
PROFILE = "PROFILE"
HISTORY = "HISTORY"
EVENT = "EVENT"
DELETION_PREFIX = "DELETION#"
DELETION = "DELETION"
OUTBOX = "OUTBOX"
PAUSE = "PAUSE"
PAGE = "PAGE"
ALERT_PREFIX = "ALERT#"

USERS_INDEX = "users_by_activity"
USERS_INDEX_PARTITION_KEY = "entity"
USERS_INDEX_SORT_KEY = "active_at"
USER_ENTITY = "user"

Key = dict[str, dict[str, str]]

# -- keys -------------------------------------------------------------------------------------


def user_pk(psid: str) -> str:
    return f"{USER_PREFIX}{psid}"


def psid_of(pk: str) -> str:
    """``USER#123`` -> ``123``."""
    return pk.removeprefix(USER_PREFIX)


def day_sk(day: str) -> str:
    return f"{DAY_PREFIX}{day}"


def day_of(sk: str) -> str:
    """``DAY#2026-11-30`` -> ``2026-11-30``."""
    return sk.removeprefix(DAY_PREFIX)


def key(pk: str, sk: str) -> Key:
    """A primary key in DynamoDB's wire format."""
    return {PARTITION_KEY: {"S": pk}, SORT_KEY: {"S": sk}}


def profile_key(psid: str) -> Key:
    return key(user_pk(psid), PROFILE)


def history_key(psid: str) -> Key:
    return key(user_pk(psid), HISTORY)


def counter_key(psid: str, day: str) -> Key:
    """The daily question counter of one person (``day`` as ``YYYY-MM-DD``)."""
    return key(user_pk(psid), day_sk(day))


def outbox_key(psid: str) -> Key:
    """An owner's notices kept until they write (Messenger's 24-hour window)."""
    return key(user_pk(psid), OUTBOX)


def pause_key(psid: str) -> Key:
    """Until when the bot keeps quiet for a person a human has taken over."""
    return key(user_pk(psid), PAUSE)


def page_day_key(day: str) -> Key:
    """The page's totals for one day; a month is one Query on ``PAGE`` by sort key prefix."""
    return key(PAGE, day_sk(day))


def month_prefix(day: str) -> str:
    """``2026-11-30`` -> ``DAY#2026-11``: the sort keys of that day's month."""
    return day_sk(day[:7])


def alert_key(kind: str) -> Key:
    """When an owner alert of ``kind`` may be sent again (shared by every container)."""
    return key(PAGE, f"{ALERT_PREFIX}{kind}")


def person_alert_key(psid: str, kind: str) -> Key:
    """When a notice of ``kind`` about one person may be sent again (their /human, say)."""
    return key(user_pk(psid), f"{ALERT_PREFIX}{kind}")


def event_key(event_id: str) -> Key:
    return key(f"{EVENT_PREFIX}{event_id}", EVENT)


def deletion_key(code: str) -> Key:
    return key(f"{DELETION_PREFIX}{code}", DELETION)


# -- the table definition ---------------------------------------------------------------------

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


# -- DynamoDB's answers -----------------------------------------------------------------------


def _error_code(error: Exception) -> str | None:
    response: Any = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code")


def is_condition_failure(error: Exception) -> bool:
    """A botocore ``ClientError`` saying the write's condition did not hold."""
    return _error_code(error) == CONDITION_FAILED


def cancelled_conditions(error: Exception) -> list[bool] | None:
    """For a cancelled transaction, which of its items failed their condition (in order);
    None for any other error."""
    if _error_code(error) != TRANSACTION_CANCELED:
        return None
    response: Any = getattr(error, "response", None) or {}
    reasons = response.get("CancellationReasons") or []
    if not reasons:  # some engines put the codes only in the message: "[ConditionalCheck..."
        message = str(response.get("Error", {}).get("Message", ""))
        inside = message[message.find("[") + 1 : message.rfind("]")] if "[" in message else ""
        return [part.strip() == "ConditionalCheckFailed" for part in inside.split(",")]
    return [reason.get("Code") == "ConditionalCheckFailed" for reason in reasons]


def cancelled_by_conflict(error: Exception) -> bool:
    """A transaction cancelled because another one was writing the same item at that moment
    (the page's daily totals, say): trying again shortly succeeds."""
    if _error_code(error) != TRANSACTION_CANCELED:
        return False
    response: Any = getattr(error, "response", None) or {}
    reasons = response.get("CancellationReasons") or []
    if reasons:
        return any(reason.get("Code") == "TransactionConflict" for reason in reasons)
    return "TransactionConflict" in str(response.get("Error", {}).get("Message", ""))
