"""The declared stack stood up on loopback: moto for the data plane, the archive in its own
Python 3.13 process, and the Lambda service, Facebook's Graph API and OpenAI around it.

``stand_up(declaration, files, operator, moto_url)`` yields a ``Simulation``; everything in it
is derived from the declaration, except what outside parties know (``Operator``): the
secrets Facebook and OpenAI issued, the settings the operator configured, and the stack
outputs the operator reads (the verify token).
"""

from __future__ import annotations

import contextlib
import json
import platform
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local.graph import MessengerSimulator
from local.invoke import AsyncFailure
from local.model import FakeOpenAI
from tests.deploy import iam
from tests.deploy.aws import DataPlane, RecordingProxy, moto_data_plane
from tests.deploy.lambda_service import (
    ExecutionEnvironment,
    FunctionUrl,
    GuardedInvoke,
    RuntimeApi,
    Scheduler,
)
from tests.deploy.stack import ASYNC_CONFIG, FUNCTION_URL, Declaration

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
ENDPOINT_VARIABLES = frozenset(
    {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "OPENAI_BASE_URL", "GRAPH_API_URL"}
)
REDIRECTED_DECLARED = "GRAPH_API_URL"
HOST_ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


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
    invoke: GuardedInvoke
    url: FunctionUrl
    scheduler: Scheduler
    graph: MessengerSimulator
    model: FakeOpenAI
    log_stream: str
    aws_url: str  # the recording proxy in front of moto: every AWS call goes through it
    destination_errors: list[str] = field(default_factory=list)

    @property
    def function_key(self) -> str:
        return self.plane.function.access_key

    def function_calls(self, since: int = 0) -> list[iam.AwsCall]:
        return self.log.since(since, self.function_key)

    def output(self) -> str:
        """The execution environment's output so far."""
        return "\n".join(self.environment.output()[-40:])

    def diagnosis(self) -> str:
        """What went wrong, for failure messages: refused calls, failed invocations and the
        function's last error."""
        parts = []
        refused = [
            f"{c.iam_action} {c.status} {c.error}" for c in self.function_calls() if c.status >= 400
        ]
        if refused:
            parts.append(f"refused AWS calls: {refused}")
        failed = [i.errors[-1] for i in self.invoke.invocations if i.errors]
        if failed:
            parts.append(f"failed invocations: {failed}")
        errors = [
            line
            for line in self.environment.output("stderr")
            if line and not line.startswith((" ", "Traceback"))
        ]
        if errors:
            parts.append(f"last function error: {errors[-1][:400]}")
        return "; ".join(parts) or "no refused call, no failed invocation, no function error"

    # -- what the Lambda service does with the function's role ----------------------------

    def park(self, event: Any, error: BaseException) -> None:
        """Lambda's on-failure destination: the record goes to the declared queue, sent with
        the function's role (which is why the role needs sqs:SendMessage)."""
        failure: AsyncFailure | None = next(
            (f for f in self.invoke.failures if f.error is error), None
        )
        record = failure.record if failure is not None else {"requestPayload": event}
        queue_url = self.failure_queue_url()
        if queue_url is None:
            self.destination_errors.append("no on-failure destination queue is declared")
            return
        try:
            self.function_client("sqs").send_message(
                QueueUrl=queue_url, MessageBody=json.dumps(record)
            )
        except Exception as error:  # a denied send is the finding, not a crash
            self.destination_errors.append(f"{type(error).__name__}: {error}")

    def failure_queue_url(self) -> str | None:
        """The declared on-failure destination of asynchronous invocations, in moto."""
        for config in self.declaration.of_type(ASYNC_CONFIG):
            if config.inputs["functionName"] != self.declaration.function.name:
                continue
            on_failure = (config.inputs.get("destinationConfig") or {}).get("onFailure") or {}
            destination = self.plane.resolve(on_failure.get("destination") or "")
            return self.plane.queue_urls.get(destination)
        return None

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


@contextlib.contextmanager
def stand_up(
    declaration: Declaration, files: RuntimeFiles, operator: Operator, moto_url: str
) -> Iterator[Simulation]:
    function = declaration.function
    assert function.archive == files.archive, (function.archive, files.archive)
    assert function.runtime == "python3.13", f"the function runs {function.runtime}"
    assert function.architectures == (HOST_ARCHITECTURE,), (
        f"the stack builds for {function.architectures}; this machine runs {HOST_ARCHITECTURE}"
    )
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    with contextlib.ExitStack() as stack:
        plane = stack.enter_context(moto_data_plane(declaration, moto_url, function.name))
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

        configs = [
            c
            for c in declaration.of_type(ASYNC_CONFIG)
            if c.inputs["functionName"] == function.name
        ]
        retries = int(configs[0].inputs.get("maximumRetryAttempts", 2)) if configs else 2
        holder: dict[str, Simulation] = {}
        invoke = GuardedInvoke(
            declaration,
            plane.account,
            (plane.function.access_key, plane.function.session_token or ""),
            plane.policy,
            log,
            max_retry_attempts=retries,
            retry_delay=0.05,
            on_failure=lambda event, error: holder["sim"].park(event, error),
            max_concurrency=function.reserved_concurrency,
            timeout=float(function.timeout_seconds),
            memory_limit_in_mb=function.memory_mb,
        )
        invoke.register(
            function.name, lambda event, context: runtime.invoke(event, context.aws_request_id)
        )
        invoke.start()
        stack.callback(invoke.stop)

        declared = function.environment
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
            "AWS_ENDPOINT_URL_LAMBDA": invoke.url,
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

        sim = Simulation(
            declaration=declaration,
            operator=operator,
            plane=plane,
            log=log,
            runtime=runtime,
            environment=environment,
            invoke=invoke,
            url=url,
            scheduler=Scheduler(declaration, plane.account, invoke.url),
            graph=graph,
            model=model,
            log_stream=stream,
            aws_url=proxy.url,
        )
        holder["sim"] = sim
        yield sim
