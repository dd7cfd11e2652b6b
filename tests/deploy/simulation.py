"""The declared stack stood up on loopback: moto for the data plane, the archive in its own
Python 3.13 process, and the Lambda service (Runtime API, Function URL, the queue's event
source mapping, EventBridge), Facebook's Graph API and OpenAI around it.

``stand_up(declaration, files, operator, moto_url)`` yields a ``Simulation``; everything in it
is derived from the declaration, except what outside parties know (``Operator``): the
secrets Facebook and OpenAI issued, the settings the operator configured, and the stack
outputs the operator reads (the verify token).
"""

from __future__ import annotations

import contextlib
import platform
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local.event_source import Invocation, QueuePoller
from local.graph import MessengerSimulator
from local.model import FakeOpenAI
from tests.deploy import iam
from tests.deploy.aws import DataPlane, RecordingProxy, moto_data_plane
from tests.deploy.lambda_service import ExecutionEnvironment, FunctionUrl, RuntimeApi, Scheduler
from tests.deploy.stack import FUNCTION_URL, Declaration, MappingSpec

# What the Lambda service itself puts in every execution environment ("defined runtime
# environment variables"; a function may not declare any of these).
RESERVED_RUNTIME_VARIABLES = frozenset(
    {
        "_HANDLER",
        "AWS_EXECUTION_ENV",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
        "LANG",
        "PATH",
    }
)
# The only other variables the simulation may set: endpoints, each pointing at loopback.
# GRAPH_API_URL is also declared by the program; the redirect keeps its path (the version).
ENDPOINT_VARIABLES = frozenset({"AWS_ENDPOINT_URL", "OPENAI_BASE_URL", "GRAPH_API_URL"})
REDIRECTED_DECLARED = "GRAPH_API_URL"
HOST_ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
# Lambda's pollers long-poll (20 s); shorter here, so that stopping them is quick. moto
# wakes a long poll when a message arrives and checks for visible ones once a second.
POLLER_WAIT_SECONDS = 1
# Pollers when the mapping declares no MaximumConcurrency (Lambda's own scaling starts there).
DEFAULT_POLLERS = 5


@dataclass(frozen=True)
class RuntimeFiles:
    """The Python 3.13 runtime and the extracted archive, prepared once per session."""

    python: str
    runtime_dir: Path  # boto3 & co: what the python3.13 runtime provides
    archive: Path  # the zip the program built
    task_root: Path  # the zip, extracted into a clean directory
    pycache: Path  # bytecode goes here, never into the task root


@dataclass(frozen=True)
class Operator:
    """What people outside the stack know: the secrets they issued, the settings they chose
    and the stack outputs they read."""

    config: Mapping[str, Any]
    app_secret: str  # Facebook signs deliveries with it
    page_token: str  # Facebook accepts Send API calls that carry it
    openai_key: str  # OpenAI accepts requests that carry it


def is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def check_environment(
    env: Mapping[str, str],
    declared: Mapping[str, str],
    runtime: Mapping[str, str],
    redirects: Mapping[str, str],
) -> None:
    """The process environment is the declared one plus Lambda's own variables plus
    loopback endpoints, and nothing else."""
    clash = sorted(set(declared) & RESERVED_RUNTIME_VARIABLES)
    assert not clash, f"the program declares variables Lambda reserves: {clash}"
    assert set(runtime) <= RESERVED_RUNTIME_VARIABLES, sorted(
        set(runtime) - RESERVED_RUNTIME_VARIABLES
    )
    assert set(redirects) <= ENDPOINT_VARIABLES, sorted(set(redirects) - ENDPOINT_VARIABLES)
    for name, url in redirects.items():
        assert is_loopback(url), f"{name}={url} does not point at loopback"
    rest = {k: v for k, v in env.items() if k not in runtime and k not in redirects}
    expected = {k: v for k, v in declared.items() if k not in redirects}
    assert rest == expected, f"environment differs from the declaration: {rest} != {expected}"
    for name in set(redirects) & set(declared):
        kept, moved = urlsplit(declared[name]).path, urlsplit(redirects[name]).path
        assert kept == moved, f"{name}: the redirect changed the path {kept!r} to {moved!r}"


@dataclass
class Simulation:
    declaration: Declaration
    operator: Operator
    plane: DataPlane
    log: iam.CallLog
    runtime: RuntimeApi
    environment: ExecutionEnvironment
    url: FunctionUrl
    mapping: MappingSpec
    poller: QueuePoller | None  # None: the declared mapping is disabled
    queue_url: str  # the queue the mapping reads, in moto
    scheduler: Scheduler
    graph: MessengerSimulator
    model: FakeOpenAI
    log_stream: str
    aws_url: str  # the recording proxy in front of moto: every AWS call goes through it

    @property
    def function_key(self) -> str:
        return self.plane.function.access_key

    @property
    def role_keys(self) -> tuple[str, str]:
        """The role's two sessions: the execution environment's and the mapping's."""
        return self.plane.function.access_key, self.plane.mapping.access_key

    def function_calls(self, since: int = 0) -> list[iam.AwsCall]:
        """What the function's code called (not Lambda's pollers, though the same role)."""
        return self.log.since(since, self.function_key)

    def role_calls(self, since: int = 0) -> list[iam.AwsCall]:
        """Every call made with the function's role: by its code and by its event source."""
        return self.log.since(since, *self.role_keys)

    def invocations(self) -> list[Invocation]:
        """The batches the mapping has handed the function so far."""
        return list(self.poller.invocations) if self.poller is not None else []

    def output(self) -> str:
        """The execution environment's output so far."""
        return "\n".join(self.environment.output()[-40:])

    def diagnosis(self) -> str:
        """What went wrong, for failure messages: refused calls, failed batches and the
        function's last error."""
        parts = []
        refused = [
            f"{c.iam_action} {c.status} {c.error}" for c in self.role_calls() if c.status >= 400
        ]
        if refused:
            parts.append(f"refused AWS calls: {sorted(set(refused))}")
        failed = [
            f"{i.outcome} {i.failed_ids or ''} {i.error or ''}".strip()
            for i in self.invocations()
            if i.outcome not in ("running", "succeeded")
        ]
        if failed:
            parts.append(f"batches not (wholly) done: {failed[-5:]}")
        errors = [
            line
            for line in self.environment.output("stderr")
            if line and not line.startswith((" ", "Traceback"))
        ]
        if errors:
            parts.append(f"last function error: {errors[-1][:400]}")
        return "; ".join(parts) or "no refused call, no failed batch, no function error"

    # -- the queue, as the operator sees it -----------------------------------------------

    def queue_depth(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of a queue (the mapping's by default)."""
        attributes = self.operator_client("sqs").get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def settle(self, timeout: float = 30.0) -> None:
        """Until the queue is empty and no batch is running: every message answered, given
        up on (dead-lettered), or refused before it got there."""
        deadline = time.monotonic() + timeout
        while self.queue_depth() != (0, 0) or any(i.finished is None for i in self.invocations()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the queue did not settle in {timeout} s (visible, in flight: "
                    f"{self.queue_depth()}); {self.diagnosis()}"
                )
            time.sleep(0.05)

    # -- what the Lambda service does with the function's role ----------------------------

    def ship_logs(self) -> int:
        """Lambda's log delivery: the environment's output into the declared log group, with
        the function's role; returns how many lines went."""
        logs = self.function_client("logs")
        group = self.declaration.function.log_group
        logs.create_log_stream(logGroupName=group, logStreamName=self.log_stream)
        lines = [(t, line) for t, _stream, line in sorted(self.environment.lines) if line]
        for start in range(0, len(lines), 500):
            logs.put_log_events(
                logGroupName=group,
                logStreamName=self.log_stream,
                logEvents=[
                    {"timestamp": int(t * 1000), "message": line}
                    for t, line in lines[start : start + 500]
                ],
            )
        return len(lines)

    def function_client(self, service: str) -> Any:
        """A client with the function's role, through the proxy (so the call is audited)."""
        return self.plane.function.client(service, self.aws_url, self.plane.region)

    def operator_client(self, service: str) -> Any:
        """A client with the deployer's rights, for looking at what the function did."""
        return self.plane.operator.client(service, self.aws_url, self.plane.region)


def _graph_redirect(declared: Mapping[str, str], graph: MessengerSimulator) -> str:
    url = declared.get(REDIRECTED_DECLARED)
    if not url:
        raise AssertionError(
            f"the function declares no {REDIRECTED_DECLARED}: it would call the real Graph API"
        )
    return f"{graph.url}{urlsplit(url).path}"


def _mapped_queue(declaration: Declaration, plane: DataPlane, mapping: MappingSpec) -> str:
    """The moto URL of the queue the mapping reads, which must be a declared one."""
    declaration.queue_with_arn(mapping.queue_arn)
    url = plane.queue_urls.get(plane.resolve(mapping.queue_arn))
    if url is None:
        raise AssertionError(f"the mapping reads {mapping.queue_arn}, which is not in moto")
    return url


# SQS limits Lambda checks when it creates a mapping (FIFO queues take at most ten a batch).
FIFO_MAX_BATCH_SIZE = 10
MAXIMUM_CONCURRENCY_RANGE = (2, 1000)


def mapping_refusal(
    plane: DataPlane, mapping: MappingSpec, queue_url: str, timeout: int
) -> str | None:
    """What Lambda's CreateEventSourceMapping answers for the declared mapping when it
    refuses it (InvalidParameterValueException), in its words; None: it creates it."""
    refusal = iam.mapping_role_refusal(plane.policy, plane.resolve(mapping.queue_arn))
    if refusal is not None:
        return refusal
    attributes = plane.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["VisibilityTimeout", "FifoQueue"]
    )["Attributes"]
    visibility = int(attributes["VisibilityTimeout"])
    if visibility < timeout:  # a batch would come back while the function still runs
        return (
            f"Queue visibility timeout: {visibility} seconds is less than Function timeout: "
            f"{timeout} seconds"
        )
    if attributes.get("FifoQueue") == "true" and mapping.batch_size > FIFO_MAX_BATCH_SIZE:
        return f"Batch size {mapping.batch_size} exceeds {FIFO_MAX_BATCH_SIZE} for a FIFO queue"
    low, high = MAXIMUM_CONCURRENCY_RANGE
    if mapping.maximum_concurrency is not None and not low <= mapping.maximum_concurrency <= high:
        return f"MaximumConcurrency must be between {low} and {high}"
    return None


@contextlib.contextmanager
def stand_up(
    declaration: Declaration, files: RuntimeFiles, operator: Operator, moto_url: str
) -> Iterator[Simulation]:
    function = declaration.function
    mapping = declaration.mapping
    assert function.archive == files.archive, (function.archive, files.archive)
    assert function.runtime == "python3.13", f"the function runs {function.runtime}"
    assert function.architectures == (HOST_ARCHITECTURE,), (
        f"the stack builds for {function.architectures}; this machine runs {HOST_ARCHITECTURE}"
    )
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    with contextlib.ExitStack() as stack:
        plane = stack.enter_context(moto_data_plane(declaration, moto_url, function.name))
        queue_url = _mapped_queue(declaration, plane, mapping)
        refusal = mapping_refusal(plane, mapping, queue_url, function.timeout_seconds)
        if refusal is not None:
            raise AssertionError(f"CreateEventSourceMapping: {refusal}")
        log = iam.CallLog()
        proxy = RecordingProxy(plane.moto_url, log).start()
        stack.callback(proxy.stop)
        graph = MessengerSimulator(access_token=operator.page_token).start()
        stack.callback(graph.stop)
        model = FakeOpenAI(
            api_key=operator.openai_key,
            model=operator.config["model"],
            answer="Deployed and answering: 42.",
        ).start()
        stack.callback(model.stop)
        runtime = RuntimeApi(function.arn, function.timeout_seconds).start()
        stack.callback(runtime.stop)

        # The program's environment as the engine resolves it: QUEUE_URL is moto's queue.
        declared = plane.resolve(function.environment)
        runtime_variables = {
            "_HANDLER": function.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            "AWS_REGION": plane.region,
            "AWS_DEFAULT_REGION": plane.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": function.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_RUNTIME_API": runtime.address,
            "AWS_ACCESS_KEY_ID": plane.function.access_key,
            "AWS_SECRET_ACCESS_KEY": plane.function.secret_key,
            "AWS_SESSION_TOKEN": plane.function.session_token or "",
            "LAMBDA_TASK_ROOT": str(files.task_root),
            "LAMBDA_RUNTIME_DIR": str(files.runtime_dir),
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }
        openai_path = urlsplit(declared.get("OPENAI_BASE_URL", "")).path or "/v1"
        redirects = {
            "AWS_ENDPOINT_URL": proxy.url,
            "OPENAI_BASE_URL": f"{model.url}{openai_path}",
            REDIRECTED_DECLARED: _graph_redirect(declared, graph),
        }
        env = {**declared, **runtime_variables, **redirects}
        check_environment(env, declared, runtime_variables, redirects)

        environment = ExecutionEnvironment(files.python, env, files.task_root, files.pycache)
        stack.callback(environment.stop)
        runtime.alive = environment.alive
        actual = environment.process_environment()
        if actual is not None:  # what the process got, not only what it was handed
            assert actual == env, sorted(set(actual.items()) ^ set(env.items()))

        urls = [
            u
            for u in declaration.of_type(FUNCTION_URL)
            if u.inputs["functionName"] == function.name
        ]
        url = FunctionUrl(
            declaration, urls[0].inputs["authorizationType"] if urls else "", runtime.invoke
        ).start()
        stack.callback(url.stop)

        # Lambda's event source mapping: pollers with their own session of the role, each
        # batch a synchronous invocation of the execution environment.
        poller = None
        if mapping.enabled:
            poller = QueuePoller(
                plane.mapping.client("sqs", proxy.url, plane.region),
                queue_url,
                lambda event, context: runtime.invoke(event, context.aws_request_id),
                function_name=function.name,
                batch_size=mapping.batch_size,
                max_concurrency=mapping.maximum_concurrency or DEFAULT_POLLERS,
                timeout_seconds=float(function.timeout_seconds),
                report_batch_item_failures=mapping.report_batch_item_failures,
                wait_seconds=POLLER_WAIT_SECONDS,
            ).start()
            stack.callback(poller.stop)

        yield Simulation(
            declaration=declaration,
            operator=operator,
            plane=plane,
            log=log,
            runtime=runtime,
            environment=environment,
            url=url,
            mapping=mapping,
            poller=poller,
            queue_url=queue_url,
            scheduler=Scheduler(declaration, plane.account, runtime.invoke),
            graph=graph,
            model=model,
            log_stream=stream,
            aws_url=proxy.url,
        )
