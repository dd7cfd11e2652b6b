"""IAM for the deploy simulation: where the declared policy is enforced, and how.

The role has two kinds of caller: the function's execution environment, and Lambda's event
source mapping, whose pollers receive and delete the queue's messages with the function's
role (each has its own session of the role). Both are held to the declared policy in three
places, because moto enforces only part of IAM (moto 5.2, ``moto/iam/access_control.py``
and ``moto/core/responses.py``):

1. **moto, live** (``POST /moto-api/reset-auth`` with ``0``): every request must be signed by
   a principal moto knows, and the *action* must be allowed by that principal's policies.
   The principal is the declared role, assumed through moto's STS, holding the declared
   inline policy as ``moto_enforceable`` rewrites it:

   - moto matches a statement's ``Resource`` only for services whose responses name the
     resource (``_determine_resource``; of the ones used here, only SQS); for the others it
     evaluates every call against ``"*"``, so a statement scoped to an ARN would deny even
     that ARN. ``Resource`` is widened to ``"*"`` for those services and kept for SQS;
   - moto authorizes a request by its API name (``sqs:SendMessageBatch``,
     ``dynamodb:TransactWriteItems``), where IAM authorizes some APIs by other actions
     (``MOTO_ONLY_ACTIONS``): those names are added beside the actions IAM really checks.

   So moto enforces the actions of every statement, and for SQS also the queue ARN.
2. **The event source mapping's creation, statically**: Lambda refuses to create an SQS
   mapping whose execution role may not receive, delete and read the queue's attributes
   (``MAPPING_ACTIONS``); the simulation checks the exact policy for them before it starts
   the poller.
3. **Statically, after the run**: every AWS call the role's sessions made is recorded on the
   wire (the proxy in ``aws.py``), its IAM actions and resource ARNs are derived from the
   request (``resources_of``: a batch call needs its single-message action, a transaction
   the action of each item on each item's table), and each must be allowed by the exact
   declared policy. This covers what moto does not match (DynamoDB table vs index ARNs,
   SSM parameter ARNs, log stream ARNs, the item actions inside a transaction) and what
   moto does not check at all: ``kms:Decrypt`` on the parameters' key, which AWS requires
   for ``GetParameters`` with ``WithDecryption`` but moto's SSM never asks KMS about.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Services whose moto responses determine the request's resource ARN (checked in
# test_deploy.py against moto's source), so moto matches the statement's Resource for them.
MOTO_MATCHES_RESOURCES = frozenset({"sqs"})

# moto checks the literal "<service>:<API name>" of each request. For these APIs that is no
# IAM action at all: AWS authorizes a batch by its single-message action, and a DynamoDB
# transaction by the action of each item in it (Put -> PutItem, Update -> UpdateItem, ...),
# on each item's table. A declared policy cannot name them (nor should it), so moto would
# deny every such request; the moto-enforceable policy adds each one to the statements that
# grant an action IAM would accept for it (any one, for a transaction: moto cannot see the
# items), and the static audit checks the exact actions against the exact policy.
MOTO_ONLY_ACTIONS: dict[str, tuple[str, ...]] = {
    "sqs:SendMessageBatch": ("sqs:SendMessage",),
    "sqs:DeleteMessageBatch": ("sqs:DeleteMessage",),
    "sqs:ChangeMessageVisibilityBatch": ("sqs:ChangeMessageVisibility",),
    "dynamodb:TransactWriteItems": (
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ),
}
# What Lambda's CreateEventSourceMapping requires the execution role to allow on an SQS queue.
MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _glob(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags) is not None


def allows(policy: Mapping[str, Any], action: str, resource: str) -> bool:
    """IAM's answer for one identity policy: an explicit Deny wins, else any Allow.

    Actions match case-insensitively, resources case-sensitively, both with ``*`` and ``?``.
    Elements this evaluator does not understand are refused rather than guessed at.
    """
    statements = policy["Statement"]
    allowed = False
    for statement in [statements] if isinstance(statements, dict) else statements:
        unsupported = {"NotAction", "NotResource", "Condition", "Principal"} & set(statement)
        if unsupported:
            raise NotImplementedError(f"the static check cannot evaluate {sorted(unsupported)}")
        if not any(
            _glob(a, action, case_sensitive=False) for a in _as_list(statement.get("Action"))
        ):
            continue
        if not any(
            _glob(r, resource, case_sensitive=True) for r in _as_list(statement.get("Resource"))
        ):
            continue
        if statement["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def moto_only_actions(actions: Iterable[str]) -> list[str]:
    """The API names moto checks where IAM checks one of ``actions`` (``MOTO_ONLY_ACTIONS``)."""
    granted = {a.lower() for a in actions}
    return [
        api
        for api, iam_actions in MOTO_ONLY_ACTIONS.items()
        if any(a.lower() in granted for a in iam_actions)
    ]


def moto_enforceable(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The declared policy as moto can enforce it: the same actions, per service, plus the
    API names moto checks instead of them; ``Resource`` widened to ``"*"`` where moto would
    not match it (see the module docstring)."""
    statements = []
    for statement in policy["Statement"]:
        by_service: dict[str, list[str]] = {}
        declared = _as_list(statement["Action"])
        for action in [*declared, *moto_only_actions(declared)]:
            by_service.setdefault(action.split(":", 1)[0].lower(), []).append(action)
        for service, actions in sorted(by_service.items()):
            widened = service not in MOTO_MATCHES_RESOURCES
            statements.append(
                {
                    "Sid": f"{statement.get('Sid', '')}{service.capitalize()}",
                    "Effect": statement["Effect"],
                    "Action": actions,
                    "Resource": "*" if widened else statement["Resource"],
                }
            )
    return {"Version": policy.get("Version", "2012-10-17"), "Statement": statements}


# --- what the function's principal did --------------------------------------------------


@dataclass(frozen=True)
class AwsCall:
    """One AWS API request as seen on the wire, and how it was answered."""

    service: str  # the SigV4 credential scope's service: dynamodb, ssm, logs, sqs, sns
    action: str  # the API operation, e.g. PutItem
    access_key: str
    region: str
    body: dict[str, Any]
    status: int
    error: str | None = None  # the error code of a non-2xx answer

    @property
    def iam_action(self) -> str:
        return f"{self.service}:{self.action}"


AUTHORIZATION = re.compile(r"Credential=(?P<key>[^/]+)/\d+/(?P<region>[^/]+)/(?P<service>[^/]+)/")


def credential_scope(authorization: str) -> tuple[str, str, str] | None:
    """(access key, region, service) of a SigV4 ``Authorization`` header."""
    match = AUTHORIZATION.search(authorization or "")
    return (match["key"], match["region"], match["service"]) if match else None


def error_code(status: int, body: bytes) -> str | None:
    if status < 300:
        return None
    text = body.decode("utf-8", "replace")
    match = re.search(r"<Code>([^<]+)</Code>", text)
    if match:
        return match[1]
    try:
        data = json.loads(text)
    except ValueError:
        return f"HTTP {status}"
    code = data.get("__type") or data.get("code") or data.get("Code") or f"HTTP {status}"
    return str(code).rsplit("#", 1)[-1]


@dataclass
class CallLog:
    """Every AWS call made through the simulation's loopback endpoints, in order."""

    calls: list[AwsCall] = field(default_factory=list)

    def add(self, call: AwsCall) -> None:
        self.calls.append(call)  # list.append is atomic: servers record from their threads

    def by(self, *access_keys: str) -> list[AwsCall]:
        return [c for c in self.calls if c.access_key in access_keys]

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int, *access_keys: str) -> list[AwsCall]:
        return [c for c in self.calls[mark:] if c.access_key in access_keys]


# --- the resources a call acts on --------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """One permission a call needs: ``action`` on ``resource``; ``why`` when not obvious."""

    action: str
    resource: str
    why: str = ""


@dataclass(frozen=True)
class Account:
    partition: str
    region: str
    account_id: str

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"


# SSM parameter name (SecureString) or SNS topic ARN -> the KMS key ARN it is encrypted with.
KeyOf = Callable[[str], str | None]

DYNAMODB_ITEM_ACTIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"}
# A transaction's items -> the action IAM checks for each, on the item's table.
TRANSACTION_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# SQS APIs -> the IAM action that authorizes them (a batch: its single-message action).
SQS_ACTIONS = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
}


def resources_of(call: AwsCall, account: Account, key_of: KeyOf) -> list[Need] | None:
    """What ``call`` needs, as AWS's authorization reference documents it; None if unknown.

    Unknown calls fail the static check: a new kind of call needs a rule here first.
    """
    body, action = call.body, call.action
    if call.service == "dynamodb" and action in DYNAMODB_ITEM_ACTIONS:
        table = account.arn("dynamodb", f"table/{body['TableName']}")
        if body.get("IndexName"):
            return [Need(call.iam_action, f"{table}/index/{body['IndexName']}")]
        return [Need(call.iam_action, table)]
    if call.service == "dynamodb" and action in ("BatchWriteItem", "BatchGetItem"):
        return [
            Need(call.iam_action, account.arn("dynamodb", f"table/{table}"))
            for table in body["RequestItems"]
        ]
    if call.service == "dynamodb" and action == "TransactWriteItems":
        needs = []
        for item in body["TransactItems"]:
            ((kind, request),) = item.items()
            if kind not in TRANSACTION_ITEM_ACTIONS:
                return None
            needs.append(
                Need(
                    TRANSACTION_ITEM_ACTIONS[kind],
                    account.arn("dynamodb", f"table/{request['TableName']}"),
                    f"a {kind} in TransactWriteItems",
                )
            )
        return needs
    if call.service == "ssm" and action in ("GetParameters", "GetParameter"):
        names = body.get("Names") or [body.get("Name")]
        needs = [
            Need(call.iam_action, account.arn("ssm", f"parameter/{name.lstrip('/')}"))
            for name in names
        ]
        if body.get("WithDecryption"):
            for name in names:
                key = key_of(name)
                if key is not None:
                    needs.append(
                        Need("kms:Decrypt", key, f"SSM decrypts {name} with the caller's rights")
                    )
        return needs
    if call.service == "logs" and action in ("CreateLogStream", "PutLogEvents"):
        group, stream = body["logGroupName"], body["logStreamName"]
        return [
            Need(call.iam_action, account.arn("logs", f"log-group:{group}:log-stream:{stream}"))
        ]
    if call.service == "sns" and action == "Publish":
        topic = body["TopicArn"]
        needs = [Need(call.iam_action, topic)]
        key = key_of(topic)
        if key is not None:  # SNS encrypts with the publisher's rights
            why = f"SNS encrypts for {topic} with the caller's rights"
            needs += [Need("kms:GenerateDataKey", key, why), Need("kms:Decrypt", key, why)]
        return needs
    if call.service == "sqs" and action in SQS_ACTIONS:
        name = body["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        why = "" if SQS_ACTIONS[action] == call.iam_action else f"for {action}"
        return [Need(SQS_ACTIONS[action], account.arn("sqs", name), why)]
    return None


def mapping_role_refusal(policy: Mapping[str, Any], queue_arn: str) -> str | None:
    """What Lambda answers CreateEventSourceMapping when the execution role lacks one of
    ``MAPPING_ACTIONS`` on the queue (InvalidParameterValueException); None: it creates it."""
    for action in MAPPING_ACTIONS:
        if not allows(policy, action, queue_arn):
            operation = action.split(":", 1)[1]
            return (
                f"The provided execution role does not have permissions to call {operation} on SQS"
            )
    return None


@dataclass(frozen=True)
class Violation:
    call: AwsCall
    need: Need | None  # None: the call's resources are unknown

    def __str__(self) -> str:
        if self.need is None:
            return f"{self.call.iam_action}: no rule says which resources it acts on"
        why = f" ({self.need.why})" if self.need.why else ""
        return f"{self.need.action} on {self.need.resource}{why}"


def audit(
    calls: Iterable[AwsCall], policy: Mapping[str, Any], account: Account, key_of: KeyOf
) -> tuple[list[Violation], list[Need]]:
    """Every need of every call checked against the exact policy: (violations, needs)."""
    violations: list[Violation] = []
    needs: list[Need] = []
    for call in calls:
        found = resources_of(call, account, key_of)
        if found is None:
            violations.append(Violation(call, None))
            continue
        for need in found:
            needs.append(need)
            if not allows(policy, need.action, need.resource):
                violations.append(Violation(call, need))
    return violations, needs


def unused_statements(policy: Mapping[str, Any], needs: Iterable[Need]) -> list[str]:
    """Sids of the statements that allowed none of ``needs``: untested permissions."""
    needs = list(needs)
    unused = []
    for statement in policy["Statement"]:
        single = {"Version": "2012-10-17", "Statement": [statement]}
        if not any(allows(single, n.action, n.resource) for n in needs):
            unused.append(statement.get("Sid", json.dumps(statement)))
    return unused
