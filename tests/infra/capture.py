"""Run the real ``__main__.py`` under Pulumi mocks and record what it would create.

``capture_stack`` returns every resource (type, logical name, inputs, dependencies,
options) and the resolved stack outputs, so tests can assert on the program itself rather
than on a copy of it. The deploy simulation reuses it to stand the same stack up on moto.

Secret inputs arrive wrapped by the engine (``{sig: secret, value: ...}``); ``inputs`` holds
them unwrapped for plain assertions, ``raw_inputs`` keeps the wrappers so tests can check
which values travel as secrets.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROGRAM = PROJECT_ROOT / "__main__.py"
PROJECT = "messenger-bridge"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"

if str(PROJECT_ROOT) not in sys.path:  # the program imports infra/ and handler/
    sys.path.insert(0, str(PROJECT_ROOT))


# --- secrets as the engine encodes them --------------------------------------------------


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def unwrap(value: Any) -> Any:
    """The value with every secret wrapper removed, recursively."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain_strings(value: Any) -> list[str]:
    """Every string reachable without passing through a secret wrapper."""
    if is_secret(value):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *plain_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in plain_strings(v)]
    return []


# --- what the mocks answer -----------------------------------------------------------------


def _arn(service: str, resource: str, region: str = REGION) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{ACCOUNT_ID}:{resource}"


def mock_state(typ: str, name: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """An id and the outputs AWS would report: enough for ARNs and URLs to resolve."""
    physical = unwrap(inputs.get("name")) or f"{name}-physical"
    state: dict[str, Any] = dict(inputs)
    resource_id = physical
    if typ == "aws:dynamodb/table:Table":
        state["arn"] = _arn("dynamodb", f"table/{physical}")
    elif typ == "aws:lambda/function:Function":
        state["arn"] = _arn("lambda", f"function:{physical}")
        state["qualifiedArn"] = state["arn"] + ":$LATEST"
        state["invokeArn"] = f"arn:aws:apigateway:{REGION}:lambda:path/functions/{state['arn']}"
    elif typ == "aws:lambda/functionUrl:FunctionUrl":
        url_id = hashlib.sha256(name.encode()).hexdigest()[:32]
        state["functionUrl"] = f"https://{url_id}.lambda-url.{REGION}.on.aws/"
        state["urlId"] = url_id
        resource_id = unwrap(inputs.get("functionName", name))
    elif typ == "aws:sqs/queue:Queue":
        state["arn"] = _arn("sqs", physical)
        state["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{physical}"
        resource_id = state["url"]
    elif typ == "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy":
        resource_id = unwrap(inputs.get("queueUrl", name))  # AWS's id is the queue's URL
    elif typ == "aws:lambda/eventSourceMapping:EventSourceMapping":
        resource_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))  # AWS's id is the UUID
        state["uuid"] = resource_id
        state["arn"] = _arn("lambda", f"event-source-mapping:{resource_id}")
        state["functionArn"] = unwrap(inputs.get("functionName"))
        state["state"] = "Enabled"
    elif typ == "aws:cloudwatch/logGroup:LogGroup":
        state["arn"] = _arn("logs", f"log-group:{physical}")
    elif typ == "aws:iam/role:Role":
        state["arn"] = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{physical}"
    elif typ == "aws:kms/key:Key":
        resource_id = "1234abcd-12ab-34cd-56ef-1234567890ab"
        state["arn"] = _arn("kms", f"key/{resource_id}")
        state["keyId"] = resource_id
    elif typ == "aws:kms/alias:Alias":
        state["arn"] = _arn("kms", physical)
    elif typ == "aws:ssm/parameter:Parameter":
        state["arn"] = _arn("ssm", f"parameter{physical}")
    elif typ == "aws:cloudwatch/eventRule:EventRule":
        state["arn"] = _arn("events", f"rule/{physical}")
    elif typ == "aws:sns/topic:Topic":
        state["arn"] = _arn("sns", physical)
        resource_id = state["arn"]  # AWS's id for a topic is its ARN
    elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
        state["arn"] = _arn("cloudwatch", f"alarm:{physical}")
    elif typ == "aws:cloudwatch/dashboard:Dashboard":
        state["dashboardArn"] = f"arn:{PARTITION}:cloudwatch::{ACCOUNT_ID}:dashboard/{physical}"
        resource_id = unwrap(inputs.get("dashboardName", name))
    elif typ == "random:index/randomPassword:RandomPassword":
        state["result"] = ("GeneratedVerifyToken" * 4)[: int(inputs.get("length", 32))]
    elif typ.startswith("aws:"):
        state.setdefault("arn", _arn("mock", f"{typ.split(':')[-1].lower()}/{physical}"))
    return resource_id, state


def mock_call(token: str, args: Mapping[str, Any]) -> dict[str, Any]:
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {
            "accountId": ACCOUNT_ID,
            "arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/tester",
            "userId": "AIDATESTER",
            "id": ACCOUNT_ID,
        }
    if token == "aws:index/getPartition:getPartition":
        return {
            "partition": PARTITION,
            "dnsSuffix": "amazonaws.com",
            "reverseDnsPrefix": "com.amazonaws",
            "id": PARTITION,
        }
    if token == "aws:index/getRegion:getRegion":
        return {
            "name": REGION,
            "region": REGION,
            "endpoint": f"ec2.{REGION}.amazonaws.com",
            "description": "US East (N. Virginia)",
            "id": REGION,
        }
    raise NotImplementedError(f"no mock for {token}")


# --- the record --------------------------------------------------------------------------


@dataclass
class CapturedResource:
    typ: str
    name: str
    urn: str
    raw_inputs: dict[str, Any]
    state: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    parent: str = ""
    protect: bool = False
    additional_secret_outputs: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> dict[str, Any]:
        return unwrap(self.raw_inputs)

    @property
    def arn(self) -> str | None:
        return self.state.get("arn")


@dataclass
class CapturedOutput:
    value: Any
    secret: bool


@dataclass
class CapturedStack:
    project: str
    stack: str
    resources: list[CapturedResource]
    outputs: dict[str, CapturedOutput]
    calls: list[str]

    def of_type(self, typ: str) -> list[CapturedResource]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> CapturedResource:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> CapturedResource:
        return next(r for r in self.resources if r.urn == urn)

    def output(self, name: str) -> Any:
        return self.outputs[name].value


class _RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, state = mock_state(args.typ, args.name, args.inputs)
        self.states[(args.typ, args.name)] = state
        return resource_id, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append(args.token)
        return mock_call(args.token, args.args), []


class _RecordingMonitor(MockMonitor):
    """Also keeps what MockResourceArgs leaves out: dependencies, parent, protect."""

    def __init__(self, mocks: _RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[CapturedResource] = []

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack" and request.custom:
            self.recorded.append(
                CapturedResource(
                    typ=request.type,
                    name=request.name,
                    urn=response.urn,
                    raw_inputs=rpc.deserialize_properties(request.object),
                    state=self.mocks.states[(request.type, request.name)],
                    dependencies=list(request.dependencies),
                    parent=request.parent,
                    protect=bool(request.protect),
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                )
            )
        return response


# --- running the program -----------------------------------------------------------------


def project_defaults(project_file: Path = PROJECT_ROOT / "Pulumi.yaml") -> dict[str, Any]:
    """The defaults the CLI merges in from Pulumi.yaml's config schema."""
    schema = yaml.safe_load(project_file.read_text())["config"]
    return {key: spec["default"] for key, spec in schema.items() if "default" in spec}


def _full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def capture_stack(
    config: Mapping[str, Any],
    secret_keys: Iterable[str] = (),
    stack: str = "test",
    *,
    with_project_defaults: bool = True,
    program: Path = PROGRAM,
) -> CapturedStack:
    """Run ``program`` as stack ``stack`` with ``config`` (keys without a namespace belong to
    the project) and return what it registered. Like the CLI, Pulumi.yaml's defaults fill
    the keys not given, and ``aws:region`` defaults to us-east-1."""
    values: dict[str, Any] = {"aws:region": REGION}
    if with_project_defaults:
        values.update({_full_key(k): v for k, v in project_defaults().items()})
    values.update({_full_key(k): v for k, v in config.items()})
    mocks = _RecordingMocks()
    monitor = _RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(
        {k: config_text(v) for k, v in values.items()},
        secret_keys=[_full_key(k) for k in secret_keys],
    )
    outputs: dict[str, CapturedOutput] = {}

    async def resolve(exported: Mapping[str, Any]) -> None:
        for name, value in exported.items():
            output = pulumi.Output.from_input(value)
            outputs[name] = CapturedOutput(await output.future(), await output.is_secret())

    @pulumi.runtime.test
    def run() -> Any:
        root = pulumi.runtime.get_root_resource()
        root.outputs.clear()  # the mock root stack outlives one run
        runpy.run_path(str(program), run_name="__main__")
        return pulumi.Output.from_input(asyncio.ensure_future(resolve(dict(root.outputs))))

    run()
    return CapturedStack(PROJECT, stack, monitor.recorded, outputs, mocks.calls)
