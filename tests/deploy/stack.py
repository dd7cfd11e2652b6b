"""What the Pulumi program declared, as the deploy simulation reads it, and its mutations.

``Declaration.from_capture`` copies every resource that ``tests.infra.capture`` recorded
(type, logical name, inputs, the outputs the mocks reported). Everything the simulation
stands up is derived from this copy and nothing else: the table, key, parameters, queues
and redrive policies in moto, the role's policy, the function's handler, archive and
environment, the URL, the schedule and the event source mapping that feeds the function.

The ``with_*`` and ``without_*`` methods return a changed copy, standing in for a change to
the program: the meta-tests use them to show that the simulation notices a renamed variable,
another key schema, a missing IAM statement or action, or another mapping. Changing the
copy rather than the program is sound here because nothing downstream reads the program
again.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.capture import CapturedStack, unwrap

FUNCTION = "aws:lambda/function:Function"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
PERMISSION = "aws:lambda/permission:Permission"
EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
TABLE = "aws:dynamodb/table:Table"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
PARAMETER = "aws:ssm/parameter:Parameter"
QUEUE = "aws:sqs/queue:Queue"
REDRIVE_ALLOW_POLICY = "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
PASSWORD = "random:index/randomPassword:RandomPassword"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"


@dataclass
class Declared:
    """One declared resource: inputs as the program gave them, state as the mocks answered."""

    typ: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]

    @property
    def arn(self) -> str | None:
        return self.state.get("arn")


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    arn: str
    handler: str
    runtime: str
    archive: Path
    architectures: tuple[str, ...]
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    reserved_concurrency: int | None
    log_group: str


@dataclass(frozen=True)
class MappingSpec:
    """The event source mapping that feeds the function from a queue."""

    queue_arn: str
    batch_size: int
    maximum_concurrency: int | None  # ScalingConfig; None: Lambda's own scaling
    report_batch_item_failures: bool
    enabled: bool


# The mapping's inputs the simulation honours; any other one fails the stand-up, so that a
# new setting in the program is not silently ignored (teach simulation.py about it first).
MAPPING_INPUTS = frozenset(
    {
        "eventSourceArn",
        "functionName",
        "batchSize",
        "functionResponseTypes",
        "scalingConfig",
        "enabled",
    }
)
SQS_DEFAULT_BATCH_SIZE = 10  # Lambda's default for an SQS mapping


class Declaration:
    def __init__(self, resources: list[Declared], outputs: dict[str, Any]) -> None:
        self.resources = resources
        self.outputs = outputs

    @classmethod
    def from_capture(cls, stack: CapturedStack) -> Declaration:
        resources = []
        for r in stack.resources:
            state = {k: v for k, v in unwrap(r.state).items() if k != "code"}
            resources.append(Declared(r.typ, r.name, _copy_inputs(r.inputs), copy.deepcopy(state)))
        return cls(resources, {name: o.value for name, o in stack.outputs.items()})

    def copy(self) -> Declaration:
        return Declaration(
            [
                Declared(r.typ, r.name, _copy_inputs(r.inputs), copy.deepcopy(r.state))
                for r in self.resources
            ],
            copy.deepcopy(self.outputs),
        )

    # -- lookups --------------------------------------------------------------------------

    def of_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Declared:
        found = self.of_type(typ)
        if len(found) != 1:
            raise AssertionError(f"the program declares {len(found)} {typ}, expected one")
        return found[0]

    @property
    def function(self) -> FunctionSpec:
        f = self.one(FUNCTION)
        i = f.inputs
        reserved = i.get("reservedConcurrentExecutions")
        return FunctionSpec(
            name=i["name"],
            arn=f.state["arn"],
            handler=i["handler"],
            runtime=i["runtime"],
            archive=Path(i["code"].path),
            architectures=tuple(i["architectures"]),
            environment=dict(i["environment"]["variables"]),
            timeout_seconds=int(i["timeout"]),
            memory_mb=int(i["memorySize"]),
            reserved_concurrency=None if reserved is None else int(reserved),
            log_group=i["loggingConfig"]["logGroup"],
        )

    def mapping_resource(self) -> Declared:
        """The one event source mapping whose function is the declared function."""
        function = self.function
        found = [
            m
            for m in self.of_type(EVENT_SOURCE_MAPPING)
            if m.inputs.get("functionName") in (function.arn, function.name)
        ]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} event source mappings feed {function.name}")
        return found[0]

    @property
    def mapping(self) -> MappingSpec:
        """The mapping's settings, as Lambda applies them (its defaults where none is set)."""
        i = self.mapping_resource().inputs
        unknown = sorted(set(i) - MAPPING_INPUTS)
        if unknown:
            raise AssertionError(f"the mapping sets {unknown}: the simulation does not honour them")
        concurrency = (i.get("scalingConfig") or {}).get("maximumConcurrency")
        return MappingSpec(
            queue_arn=i["eventSourceArn"],
            batch_size=int(i.get("batchSize") or SQS_DEFAULT_BATCH_SIZE),
            maximum_concurrency=None if concurrency is None else int(concurrency),
            report_batch_item_failures="ReportBatchItemFailures"
            in (i.get("functionResponseTypes") or []),
            enabled=i.get("enabled", True) is not False,
        )

    def queue_with_arn(self, arn: str) -> Declared:
        found = [q for q in self.of_type(QUEUE) if q.arn == arn]
        if len(found) != 1:
            raise AssertionError(f"the program declares {len(found)} queues with ARN {arn}")
        return found[0]

    def function_role_arn(self) -> str:
        return self.one(FUNCTION).inputs["role"]

    @property
    def policy(self) -> dict[str, Any]:
        """The function role's inline policy document, as the program declared it."""
        return json.loads(self.one(ROLE_POLICY).inputs["policy"])

    def parameter_values(self) -> dict[str, str]:
        """Parameter name -> the value the program stored in it."""
        return {p.inputs["name"]: p.inputs["value"] for p in self.of_type(PARAMETER)}

    def parameter_named_by(self, variable: str) -> str:
        """The value stored in the parameter that the environment variable ``variable`` names."""
        return self.parameter_values()[self.function.environment[variable]]

    # -- mutations: each returns a changed copy -------------------------------------------

    def with_env_renamed(self, old: str, new: str) -> Declaration:
        changed = self.copy()
        variables = changed.one(FUNCTION).inputs["environment"]["variables"]
        variables[new] = variables.pop(old)
        return changed

    def with_table_key(self, key: str, attribute: str) -> Declaration:
        """The table's ``hashKey`` or ``rangeKey`` on another attribute (its attribute
        definition renamed with it, so the table stays valid)."""
        changed = self.copy()
        table = changed.one(TABLE).inputs
        old = table[key]
        table[key] = attribute
        for definition in table["attributes"]:
            if definition["name"] == old:
                definition["name"] = attribute
        return changed

    def without_statement(self, sid: str) -> Declaration:
        changed = self.copy()
        policy_resource = changed.one(ROLE_POLICY)
        policy = json.loads(policy_resource.inputs["policy"])
        kept = [s for s in policy["Statement"] if s.get("Sid") != sid]
        if len(kept) == len(policy["Statement"]):
            raise KeyError(f"no statement {sid!r} in the policy")
        policy["Statement"] = kept
        policy_resource.inputs["policy"] = json.dumps(policy)
        return changed

    def without_action(self, action: str) -> Declaration:
        """The policy with ``action`` taken out of every statement (one left empty goes)."""
        changed = self.copy()
        policy_resource = changed.one(ROLE_POLICY)
        policy = json.loads(policy_resource.inputs["policy"])
        statements = []
        for statement in policy["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            kept = [a for a in actions if a != action]
            if kept:
                statements.append({**statement, "Action": kept})
        if statements == policy["Statement"]:
            raise KeyError(f"no statement of the policy grants {action!r}")
        policy["Statement"] = statements
        policy_resource.inputs["policy"] = json.dumps(policy)
        return changed

    def with_inputs(self, typ: str, name: str, **inputs: Any) -> Declaration:
        """The declared resource ``name`` of type ``typ`` with ``inputs`` changed."""
        changed = self.copy()
        (resource,) = [r for r in changed.of_type(typ) if r.name == name]
        resource.inputs.update(copy.deepcopy(inputs))
        return changed

    def with_mapping(self, **inputs: Any) -> Declaration:
        """The function's event source mapping with ``inputs`` changed."""
        return self.with_inputs(EVENT_SOURCE_MAPPING, self.mapping_resource().name, **inputs)


def _copy_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """A deep copy, except the function's ``code``: a pulumi Archive, kept as it is."""
    return {k: v if k == "code" else copy.deepcopy(v) for k, v in inputs.items()}
