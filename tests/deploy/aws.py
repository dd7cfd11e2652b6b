"""The data plane in a moto server, made from the declaration, and the wire to it.

``materialize`` creates, with an operator identity, each declared resource that moto can
hold, from the declared inputs alone, and reads back what moto made of them; then it
assumes the declared role twice, once for the function's execution environment and once
for Lambda's event source mapping (which polls the queue with the execution role), and
switches moto's IAM enforcement on. Values only a real deploy knows (the KMS key's id, the
queues' URLs) are taken from moto and substituted wherever the declaration used the mocks'
placeholder, as the engine would resolve the output.

moto runs as ``python -m local.aws``: moto's server with the FIFO group-order fix that the
handler's ordering rests on (see ``local/aws.py``).

``RecordingProxy`` sits between every AWS client and moto and records each call: the
static IAM audit needs the calls the function really made, read on the wire rather than
from inside the process (which runs the archive unchanged).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
from botocore.config import Config

from local._http import LocalServer, Request, Response
from tests.deploy import iam
from tests.deploy.stack import (
    ALIAS,
    DASHBOARD,
    EVENT_SOURCE_MAPPING,
    FUNCTION,
    FUNCTION_URL,
    KEY,
    LOG_GROUP,
    METRIC_ALARM,
    PARAMETER,
    PASSWORD,
    PERMISSION,
    QUEUE,
    REDRIVE_ALLOW_POLICY,
    ROLE,
    ROLE_POLICY,
    RULE,
    SUBSCRIPTION,
    TABLE,
    TARGET,
    TOPIC,
    Declaration,
    Declared,
)
from tests.support.processes import ROOT, ChildServer, free_port

# Declared types that are not data in moto, and what stands in for them instead.
STOOD_IN_FOR = {
    FUNCTION: "the execution environment: the archive in a Python 3.13 process",
    FUNCTION_URL: "the Function URL front door (lambda_service.FunctionUrl)",
    PERMISSION: "checked by the front door and the scheduler",
    EVENT_SOURCE_MAPPING: "the queue poller (local.event_source), with the function's role",
    RULE: "the EventBridge scheduler stand-in",
    TARGET: "the EventBridge scheduler stand-in",
    PASSWORD: "provider-side only: its result is in the captured parameter value",
}
# Creation order: what a resource's inputs refer to is created before it.
MATERIALIZED = (
    KEY,
    ALIAS,
    PARAMETER,
    TABLE,
    QUEUE,
    REDRIVE_ALLOW_POLICY,  # checked against the queues in moto (see below)
    LOG_GROUP,
    TOPIC,
    SUBSCRIPTION,
    METRIC_ALARM,
    DASHBOARD,
    ROLE,
    ROLE_POLICY,
)
# A queue's inputs (pulumi-aws) -> its SQS attribute. An input not listed fails the stand-up,
# so that a new queue setting in the program is not silently left out of the simulation.
QUEUE_ATTRIBUTES = {
    "fifoQueue": "FifoQueue",
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "deduplicationScope": "DeduplicationScope",
    "fifoThroughputLimit": "FifoThroughputLimit",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "redrivePolicy": "RedrivePolicy",
}
JSON_ATTRIBUTES = frozenset({"RedrivePolicy"})

_FAST = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def client(self, service: str, endpoint: str, region: str) -> Any:
        return _client(service, endpoint, region, self)


@functools.lru_cache(maxsize=256)
def _client(service: str, endpoint: str, region: str, credentials: Credentials) -> Any:
    """One client per service, endpoint and identity: creating boto3 clients is slow."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.session_token,
        config=_FAST,
    )


# --- moto ----------------------------------------------------------------------------------


def start_moto() -> ChildServer:
    """A moto server of our own (not the session's shared one): the simulation switches its
    IAM enforcement on, which would lock every other test out. ``local.aws`` adds the FIFO
    fix to moto's server (run from the project root, which holds ``local``)."""
    port = free_port()
    command = [sys.executable, "-m", "local.aws", "-H", "127.0.0.1", "-p", str(port)]
    return ChildServer(command, ROOT, port, timeout=30)


def reset_moto(url: str) -> None:
    """Empty the server and switch IAM enforcement off, for the next stand-up."""
    _moto_api(url, "reset-auth", b"inf")
    if _moto_api(url, "reset").get("status") != "ok":
        raise RuntimeError("moto did not reset")


def _moto_api(url: str, path: str, body: bytes = b"") -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/moto-api/{path}", data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def enforce_iam(url: str) -> None:
    """From now on every request needs a known, allowed principal (moto's reset-auth:
    the body is how many more requests go unchecked)."""
    answer = _moto_api(url, "reset-auth", b"0")
    if answer.get("status") != "ok":
        raise RuntimeError(f"moto did not switch IAM enforcement on: {answer}")


# --- the proxy -----------------------------------------------------------------------------


class RecordingProxy(LocalServer):
    """Forwards AWS requests to moto byte for byte (Host included, so SigV4 still holds)
    and records each one with its answer in ``log``."""

    name = "aws-proxy"

    def __init__(self, upstream: str, log: iam.CallLog) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.log = log

    def handle(self, request: Request) -> Response:
        path = request.path + (f"?{urlencode(request.query)}" if request.query else "")
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.putrequest(request.method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(request.body)))
            connection.endheaders(request.body)
            answer = connection.getresponse()
            body = answer.read()
            headers = {k: v for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP}
        finally:
            connection.close()
        self._record(request, answer.status, body)
        return Response(answer.status, body, headers)

    def _record(self, request: Request, status: int, answer: bytes) -> None:
        scope = iam.credential_scope(request.header("Authorization"))
        if scope is None:
            return
        key, region, service = scope
        target = request.header("X-Amz-Target")
        body = _request_body(request.body)
        action = target.rsplit(".", 1)[-1] if target else str(body.get("Action", ""))
        self.log.add(
            iam.AwsCall(service, action, key, region, body, status, iam.error_code(status, answer))
        )


# --- materializing the declaration ---------------------------------------------------------


@dataclass
class DataPlane:
    """What exists in moto, and how to reach it."""

    moto_url: str
    region: str
    account: iam.Account
    operator: Credentials  # stands in for whoever runs `pulumi up`: may do anything
    function: Credentials  # the declared role's session: what the Lambda runtime hands out
    mapping: Credentials  # another session of the role: Lambda's pollers of the queue
    role_arn: str
    # Placeholder the mocks reported -> the value moto assigned (the key's id and ARN, the
    # queues' URLs).
    resolved: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)  # queue ARN -> URL in moto
    # SSM parameter name or SNS topic ARN -> the KMS key ARN it is encrypted with
    encryption_keys: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)  # the declared policy, resolved

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        return (credentials or self.operator).client(service, self.moto_url, self.region)

    def resolve(self, value: Any) -> Any:
        """``value`` with every placeholder replaced by what moto assigned, recursively."""
        if isinstance(value, str):
            for placeholder, actual in self.resolved.items():
                value = value.replace(placeholder, actual)
            return value
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def key_of(self, resource: str) -> str | None:
        return self.encryption_keys.get(resource)


def _request_body(raw: bytes) -> dict[str, Any]:
    """An AWS request's parameters: JSON (DynamoDB, SQS, SSM, Logs) or the query protocol's
    form (SNS: ``Action=Publish&TopicArn=...``)."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[0] for name, values in form.items()}
    return body if isinstance(body, dict) else {}


def _check_types(declaration: Declaration) -> None:
    unknown = sorted({r.typ for r in declaration.resources} - set(MATERIALIZED) - set(STOOD_IN_FOR))
    if unknown:
        raise AssertionError(
            f"the program declares {unknown}: the deploy simulation neither creates nor stands "
            "in for them; teach tests/deploy/aws.py about them"
        )


def _same_arn(declared: Declared, actual: str, plane: DataPlane) -> None:
    """Names decide these ARNs: moto's must be the one the mocks predicted."""
    expected = plane.resolve(declared.arn)
    if expected != actual:
        raise AssertionError(f"{declared.name}: declared ARN {expected}, moto made {actual}")


def _create_key(r: Declared, plane: DataPlane) -> None:
    kms = plane.client("kms")
    meta = kms.create_key(Description=r.inputs.get("description", ""))["KeyMetadata"]
    if r.inputs.get("enableKeyRotation"):
        kms.enable_key_rotation(KeyId=meta["KeyId"])
    plane.resolved[r.state["arn"]] = meta["Arn"]
    plane.resolved[r.state["keyId"]] = meta["KeyId"]


def _create_alias(r: Declared, plane: DataPlane) -> None:
    plane.client("kms").create_alias(
        AliasName=r.inputs["name"], TargetKeyId=plane.resolve(r.inputs["targetKeyId"])
    )


def _create_parameter(r: Declared, plane: DataPlane) -> None:
    ssm = plane.client("ssm")
    inputs = plane.resolve(r.inputs)
    arguments = {
        "Name": inputs["name"],
        "Value": r.inputs["value"],  # never "resolved": the secret goes in as declared
        "Type": inputs["type"],
        "Description": inputs.get("description", ""),
    }
    if inputs.get("keyId"):
        arguments["KeyId"] = inputs["keyId"]
        plane.encryption_keys[inputs["name"]] = inputs["keyId"]
    ssm.put_parameter(**arguments)
    stored = ssm.get_parameter(Name=inputs["name"])["Parameter"]
    _same_arn(r, stored["ARN"], plane)


def _create_table(r: Declared, plane: DataPlane) -> None:
    i = r.inputs
    ddb = plane.client("dynamodb")
    keys = [{"AttributeName": i["hashKey"], "KeyType": "HASH"}]
    if i.get("rangeKey"):
        keys.append({"AttributeName": i["rangeKey"], "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": i["name"],
        "AttributeDefinitions": [
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in i["attributes"]
        ],
        "KeySchema": keys,
        "BillingMode": i.get("billingMode", "PROVISIONED"),
        "SSESpecification": {"Enabled": bool(i.get("serverSideEncryption", {}).get("enabled"))},
        "DeletionProtectionEnabled": bool(i.get("deletionProtectionEnabled")),
    }
    indexes = []
    for index in i.get("globalSecondaryIndexes") or []:
        projection: dict[str, Any] = {"ProjectionType": index["projectionType"]}
        if index.get("nonKeyAttributes"):
            projection["NonKeyAttributes"] = index["nonKeyAttributes"]
        indexes.append(
            {
                "IndexName": index["name"],
                "KeySchema": [
                    {"AttributeName": k["attributeName"], "KeyType": k["keyType"]}
                    for k in index["keySchemas"]
                ],
                "Projection": projection,
            }
        )
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    description = ddb.create_table(**request)["TableDescription"]
    _same_arn(r, description["TableArn"], plane)
    ttl = i.get("ttl") or {}
    if ttl.get("enabled"):
        ddb.update_time_to_live(
            TableName=i["name"],
            TimeToLiveSpecification={"AttributeName": ttl["attributeName"], "Enabled": True},
        )
    if (i.get("pointInTimeRecovery") or {}).get("enabled"):
        ddb.update_continuous_backups(
            TableName=i["name"],
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )


def _attribute(value: Any) -> str:
    """An input as SQS wants the attribute: ``true``, ``720``, or the JSON text as is."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(int(value))
    return str(value)


def _same_attributes(name: str, declared: dict[str, str], url: str, plane: DataPlane) -> None:
    """moto holds every declared attribute, with the declared value."""
    held = plane.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    for attribute, value in declared.items():
        got = held.get(attribute)
        if attribute in JSON_ATTRIBUTES and got is not None:
            same = json.loads(got) == json.loads(value)
        else:
            same = got == value
        if not same:
            raise AssertionError(f"{name}: declared {attribute}={value!r}, moto holds {got!r}")


def _create_queue(r: Declared, plane: DataPlane) -> None:
    inputs = plane.resolve(r.inputs)  # the redrive policy names the dead-letter queue's ARN
    unknown = sorted(set(inputs) - set(QUEUE_ATTRIBUTES) - {"name"})
    if unknown:
        raise AssertionError(f"{r.name}: the simulation does not make queue inputs {unknown}")
    attributes = {
        QUEUE_ATTRIBUTES[key]: _attribute(value)
        for key, value in inputs.items()
        if key in QUEUE_ATTRIBUTES and value is not None
    }
    sqs = plane.client("sqs")
    url = sqs.create_queue(QueueName=inputs["name"], Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    _same_arn(r, arn, plane)
    _same_attributes(r.name, attributes, url, plane)
    plane.queue_urls[arn] = url
    plane.resolved[r.state["url"]] = url


def _check_redrive_allow_policy(r: Declared, plane: DataPlane) -> None:
    """Which queues may use a dead-letter queue. moto 5.2 keeps no RedriveAllowPolicy (it
    drops the attribute), so the rule SQS applies is checked here instead: every queue in
    moto whose redrive policy names this dead-letter queue must be admitted by it."""
    inputs = plane.resolve(r.inputs)
    arns = {url: arn for arn, url in plane.queue_urls.items()}
    dead_letter_arn = arns.get(inputs["queueUrl"])
    if dead_letter_arn is None:
        raise AssertionError(f"{r.name}: {r.inputs['queueUrl']} is no declared queue")
    allow = json.loads(inputs["redriveAllowPolicy"])
    sqs = plane.client("sqs")
    for arn, url in plane.queue_urls.items():
        held = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        redrive = json.loads(held.get("Attributes", {}).get("RedrivePolicy") or "{}")
        if redrive.get("deadLetterTargetArn") != dead_letter_arn:
            continue
        permission = allow.get("redrivePermission")
        admitted = permission == "allowAll" or (
            permission == "byQueue" and arn in allow.get("sourceQueueArns", [])
        )
        if not admitted:
            raise AssertionError(f"{r.name}: {dead_letter_arn} does not admit {arn}: {allow}")


def _create_log_group(r: Declared, plane: DataPlane) -> None:
    logs = plane.client("logs")
    name = r.inputs["name"]
    logs.create_log_group(logGroupName=name)
    if r.inputs.get("retentionInDays"):
        logs.put_retention_policy(
            logGroupName=name, retentionInDays=int(r.inputs["retentionInDays"])
        )
    (group,) = [g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]]
    _same_arn(r, group["arn"].removesuffix(":*"), plane)


def _create_topic(r: Declared, plane: DataPlane) -> None:
    inputs = plane.resolve(r.inputs)
    key = inputs.get("kmsMasterKeyId")
    attributes = {"KmsMasterKeyId": key} if key else {}
    arn = plane.client("sns").create_topic(Name=inputs["name"], Attributes=attributes)["TopicArn"]
    _same_arn(r, arn, plane)
    if key:
        plane.encryption_keys[arn] = key
    held = plane.client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]
    if held.get("KmsMasterKeyId") != attributes.get("KmsMasterKeyId"):
        raise AssertionError(f"{r.name}: declared key {attributes}, moto holds {held}")


def _subscribe(r: Declared, plane: DataPlane) -> None:
    inputs = plane.resolve(r.inputs)
    plane.client("sns").subscribe(
        TopicArn=inputs["topic"], Protocol=inputs["protocol"], Endpoint=inputs["endpoint"]
    )


def _put_metric_alarm(r: Declared, plane: DataPlane) -> None:
    """CloudWatch takes the alarm as declared; its actions must be a topic moto holds."""
    i = plane.resolve(r.inputs)
    topics = {t["TopicArn"] for t in plane.client("sns").list_topics()["Topics"]}
    for action in (*i.get("alarmActions", []), *i.get("okActions", [])):
        if action not in topics:
            raise AssertionError(f"{r.name}: alarm action {action} is no declared topic")
    cloudwatch = plane.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=i["name"],
        AlarmDescription=i["alarmDescription"],
        Namespace=i["namespace"],
        MetricName=i["metricName"],
        Dimensions=[{"Name": k, "Value": v} for k, v in i["dimensions"].items()],
        Statistic=i["statistic"],
        Period=int(i["period"]),
        EvaluationPeriods=int(i["evaluationPeriods"]),
        Threshold=float(i["threshold"]),
        ComparisonOperator=i["comparisonOperator"],
        TreatMissingData=i["treatMissingData"],
        AlarmActions=i["alarmActions"],
        OKActions=i["okActions"],
    )
    (held,) = cloudwatch.describe_alarms(AlarmNames=[i["name"]])["MetricAlarms"]
    _same_arn(r, held["AlarmArn"], plane)


def _put_dashboard(r: Declared, plane: DataPlane) -> None:
    plane.client("cloudwatch").put_dashboard(
        DashboardName=r.inputs["dashboardName"], DashboardBody=r.inputs["dashboardBody"]
    )


def _create_role(r: Declared, plane: DataPlane) -> None:
    role = plane.client("iam").create_role(
        RoleName=r.inputs["name"],
        AssumeRolePolicyDocument=r.inputs["assumeRolePolicy"],
        Description=r.inputs.get("description", ""),
    )["Role"]
    _same_arn(r, role["Arn"], plane)
    plane.role_arn = role["Arn"]


def _put_role_policy(r: Declared, plane: DataPlane) -> None:
    plane.policy = plane.resolve(json.loads(r.inputs["policy"]))
    plane.client("iam").put_role_policy(
        RoleName=r.inputs["role"],
        PolicyName=r.inputs["name"],
        PolicyDocument=json.dumps(iam.moto_enforceable(plane.policy)),
    )


_CREATE = {
    KEY: _create_key,
    ALIAS: _create_alias,
    PARAMETER: _create_parameter,
    TABLE: _create_table,
    QUEUE: _create_queue,
    REDRIVE_ALLOW_POLICY: _check_redrive_allow_policy,
    LOG_GROUP: _create_log_group,
    TOPIC: _create_topic,
    SUBSCRIPTION: _subscribe,
    METRIC_ALARM: _put_metric_alarm,
    DASHBOARD: _put_dashboard,
    ROLE: _create_role,
    ROLE_POLICY: _put_role_policy,
}


def materialize(declaration: Declaration, moto_url: str, session_name: str) -> DataPlane:
    """Create the declared data plane in a fresh moto server and turn IAM enforcement on."""
    _check_types(declaration)
    bootstrap = Credentials("bootstrap", "bootstrap")  # moto checks nothing until enforce_iam
    region = declaration.function.arn.split(":")[3]
    iam_client = bootstrap.client("iam", moto_url, region)
    iam_client.create_user(UserName="deployer")
    iam_client.put_user_policy(
        UserName="deployer",
        PolicyName="deploy-anything",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam_client.create_access_key(UserName="deployer")["AccessKey"]
    operator = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    identity = operator.client("sts", moto_url, region).get_caller_identity()
    partition = identity["Arn"].split(":")[1]
    plane = DataPlane(
        moto_url=moto_url,
        region=region,
        account=iam.Account(partition, region, identity["Account"]),
        operator=operator,
        function=operator,  # replaced below
        mapping=operator,  # replaced below
        role_arn="",
    )
    for typ in MATERIALIZED:
        for resource in _in_creation_order(typ, declaration.of_type(typ)):
            _CREATE[typ](resource, plane)
    # What Lambda does for each execution environment, and for the pollers of an event
    # source mapping: assume the function's role (one session each).
    role = declaration.function_role_arn()
    if plane.resolve(role) != plane.role_arn:
        raise AssertionError(f"the function runs as {role}, not the declared role {plane.role_arn}")
    plane.function = _assume(plane, session_name)
    plane.mapping = _assume(plane, "awslambda-event-source-mapping")
    enforce_iam(moto_url)
    return plane


def _in_creation_order(typ: str, resources: Iterable[Declared]) -> list[Declared]:
    """A dead-letter queue before the queue whose redrive policy names it."""
    if typ != QUEUE:
        return list(resources)
    return sorted(resources, key=lambda r: r.inputs.get("redrivePolicy") is not None)


def _assume(plane: DataPlane, session_name: str) -> Credentials:
    session = plane.client("sts").assume_role(RoleArn=plane.role_arn, RoleSessionName=session_name)
    creds = session["Credentials"]
    return Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


@contextlib.contextmanager
def moto_data_plane(
    declaration: Declaration, moto_url: str, session_name: str
) -> Iterator[DataPlane]:
    """The declared data plane in the (reset) moto server at ``moto_url``; reset afterwards."""
    reset_moto(moto_url)
    try:
        yield materialize(declaration, moto_url, session_name)
    finally:
        reset_moto(moto_url)
