"""IAM for the deploy simulation: where the declared policy is enforced, and how.

Three places, because moto enforces only part of IAM (moto 5.2, ``moto/iam/access_control.py``
and ``moto/core/responses.py``):

1. **moto, live** (``POST /moto-api/reset-auth`` with ``0``): every request must be signed by
   a principal moto knows, and the *action* must be allowed by that principal's policies.
   The function's principal is the declared role, assumed through moto's STS, holding the
   declared inline policy. moto matches a statement's ``Resource`` only for services whose
   responses name the resource (``_determine_resource``; of the ones used here, only SQS);
   for the others it evaluates every call against ``"*"``, so a statement scoped to an ARN
   would deny even that ARN. ``moto_enforceable`` therefore widens ``Resource`` to ``"*"``
   for those services and keeps it for SQS: moto enforces the actions of every statement,
   and for SQS also the queue ARN.
2. **The Lambda Invoke stand-in, live**: the self-invocation does not reach moto. The
   stand-in in ``lambda_service`` checks the caller's session and evaluates the *exact*
   declared policy (``allows`` below) for ``lambda:InvokeFunction`` on the function ARN.
3. **Statically, after the run**: every AWS call the function's principal made is recorded
   on the wire (the proxy in ``aws.py`` and the Invoke stand-in), its resource ARNs are
   derived from the request (``resources_of``), and each must be allowed by the exact
   declared policy. This covers what moto does not match (DynamoDB table vs index ARNs,
   SSM parameter ARNs, log stream ARNs) and what moto does not check at all:
   ``kms:Decrypt`` on the parameters' key, which AWS requires for ``GetParameters`` with
   ``WithDecryption`` but moto's SSM never asks KMS about.
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


def moto_enforceable(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The declared policy as moto can enforce it: same actions, per service; ``Resource``
    widened to ``"*"`` where moto would not match it (see the module docstring)."""
    statements = []
    for statement in policy["Statement"]:
        by_service: dict[str, list[str]] = {}
        for action in _as_list(statement["Action"]):
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

    service: str  # the SigV4 credential scope's service: dynamodb, ssm, logs, sqs, lambda
    action: str  # the API operation, e.g. PutItem
    access_key: str
    region: str
    body: dict[str, Any]
    status: int
    error: str | None = None  # the error code of a non-2xx answer
    target: str = ""  # lambda: the function named in the path

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

    def by(self, access_key: str) -> list[AwsCall]:
        return [c for c in self.calls if c.access_key == access_key]

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int, access_key: str) -> list[AwsCall]:
        return [c for c in self.calls[mark:] if c.access_key == access_key]


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


# SSM parameter name -> the KMS key ARN it is encrypted with (SecureString only).
KeyOf = Callable[[str], str | None]

DYNAMODB_ITEM_ACTIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"}


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
    if call.service == "dynamodb" and action == "BatchWriteItem":
        return [
            Need(call.iam_action, account.arn("dynamodb", f"table/{table}"))
            for table in body["RequestItems"]
        ]
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
    if call.service == "sqs" and action == "SendMessage":
        name = body["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return [Need(call.iam_action, account.arn("sqs", name))]
    if call.service == "lambda" and action == "Invoke":
        return [Need("lambda:InvokeFunction", account.arn("lambda", f"function:{call.target}"))]
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
