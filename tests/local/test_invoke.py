"""LambdaInvokeStandIn through a real boto3 Lambda client."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from local.invoke import LambdaContext, LambdaInvokeStandIn

FUNCTION = "bridge-fn"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def lambda_client(stand_in: LambdaInvokeStandIn, config: Config = NO_RETRIES) -> Any:
    return boto3.client("lambda", endpoint_url=stand_in.url, region_name="us-east-1", config=config)


def payload(result: dict[str, Any]) -> Any:
    return json.loads(result["Payload"].read())


class Recorder:
    """A Lambda handler that records its events and contexts and does what it is told."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.contexts: list[LambdaContext] = []
        self.lock = threading.Lock()
        self.fail_times = 0
        self.gate: threading.Event | None = None
        self.running = 0
        self.most_running = 0

    def __call__(self, event: Any, context: LambdaContext) -> Any:
        with self.lock:
            self.events.append(event)
            self.contexts.append(context)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            fail = self.fail_times > 0
            self.fail_times -= 1
        try:
            if self.gate is not None:
                assert self.gate.wait(10), "gate never opened"
            if isinstance(event, dict) and event.get("boom"):
                raise ValueError(f"boom: {event['boom']}")
            if fail:
                raise RuntimeError("transient failure")
            return {"echo": event}
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def stand_in(aws_env: None, recorder: Recorder) -> Iterator[LambdaInvokeStandIn]:
    with LambdaInvokeStandIn({FUNCTION: recorder}) as server:
        yield server
    if recorder.gate is not None:
        recorder.gate.set()


# -- RequestResponse -------------------------------------------------------------------------


def test_request_response_returns_the_result(stand_in: LambdaInvokeStandIn) -> None:
    result = lambda_client(stand_in).invoke(
        FunctionName=FUNCTION, Payload=json.dumps({"question": "hi"})
    )
    assert result["StatusCode"] == 200
    assert result["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in result
    assert payload(result) == {"echo": {"question": "hi"}}
    [invocation] = stand_in.invocations
    assert invocation.kind == "RequestResponse"
    assert invocation.outcome == "succeeded"
    assert invocation.attempts == 1
    assert invocation.event == {"question": "hi"}
    assert invocation.result == {"echo": {"question": "hi"}}


def test_context_mimics_lambdas(stand_in: LambdaInvokeStandIn, recorder: Recorder) -> None:
    lambda_client(stand_in).invoke(FunctionName=FUNCTION, Payload=b"{}")
    [context] = recorder.contexts
    assert uuid.UUID(context.aws_request_id).version == 4
    assert context.aws_request_id == stand_in.invocations[0].request_id
    assert context.function_name == FUNCTION
    assert context.function_version == "$LATEST"
    assert (
        context.invoked_function_arn == f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
    )
    assert context.memory_limit_in_mb == "128"  # a string, as in the real runtime
    assert 119_000 < context.get_remaining_time_in_millis() <= 120_000
    assert context.log_group_name == f"/aws/lambda/{FUNCTION}"
    assert "[$LATEST]" in context.log_stream_name
    assert context.client_context is None


def test_remaining_time_follows_the_configured_timeout(aws_env: None, recorder: Recorder) -> None:
    with LambdaInvokeStandIn({FUNCTION: recorder}, timeout=3, memory_limit_in_mb=512) as server:
        lambda_client(server).invoke(FunctionName=FUNCTION)
    context = recorder.contexts[0]
    assert 0 <= context.get_remaining_time_in_millis() <= 3000
    assert context.memory_limit_in_mb == "512"


def test_function_error_is_reported_like_lambda(stand_in: LambdaInvokeStandIn) -> None:
    result = lambda_client(stand_in).invoke(
        FunctionName=FUNCTION, Payload=json.dumps({"boom": "sync"})
    )
    assert result["StatusCode"] == 200
    assert result["FunctionError"] == "Unhandled"
    error = payload(result)
    assert error["errorMessage"] == "boom: sync"
    assert error["errorType"] == "ValueError"
    assert isinstance(error["stackTrace"], list)
    assert any("in __call__" in line for line in error["stackTrace"])
    [invocation] = stand_in.invocations
    assert invocation.outcome == "failed"
    assert invocation.errors == ["ValueError: boom: sync"]
    assert stand_in.failures == []  # only async invocations go to the failure destination


def test_unserializable_result_is_a_marshal_error(aws_env: None) -> None:
    with LambdaInvokeStandIn(lambda event, context: {"when": object()}) as server:
        result = lambda_client(server).invoke(FunctionName="any")
    assert result["FunctionError"] == "Unhandled"
    assert payload(result)["errorType"] == "Runtime.MarshalError"


def test_none_result_and_empty_payload(aws_env: None) -> None:
    seen: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        seen.append(event)

    with LambdaInvokeStandIn(handler) as server:
        result = lambda_client(server).invoke(FunctionName="whatever-name")
    assert result["Payload"].read() == b"null"
    assert seen == [{}]


def test_timeout_reports_task_timed_out(aws_env: None, recorder: Recorder) -> None:
    recorder.gate = threading.Event()
    with LambdaInvokeStandIn({FUNCTION: recorder}, timeout=0.2) as server:
        result = lambda_client(server).invoke(FunctionName=FUNCTION)
        recorder.gate.set()  # let the abandoned thread end
    assert result["FunctionError"] == "Unhandled"
    error = payload(result)
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.20 seconds" in error["errorMessage"]


def test_log_tail_and_client_context(stand_in: LambdaInvokeStandIn, recorder: Recorder) -> None:
    custom = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    result = lambda_client(stand_in).invoke(
        FunctionName=FUNCTION, LogType="Tail", ClientContext=custom
    )
    log = base64.b64decode(result["LogResult"]).decode()
    request_id = stand_in.invocations[0].request_id
    assert f"START RequestId: {request_id}" in log and "REPORT RequestId" in log
    assert recorder.contexts[0].client_context.custom == {"k": "v"}


@pytest.mark.parametrize(
    "name, qualifier, arn_suffix",
    [
        (FUNCTION, None, ""),
        (f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}", None, ""),
        (f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}:live", None, ":live"),
        (f"123456789012:function:{FUNCTION}", None, ""),
        (f"{FUNCTION}:7", None, ":7"),
        (FUNCTION, "$LATEST", ":$LATEST"),
    ],
)
def test_function_name_forms(
    stand_in: LambdaInvokeStandIn,
    recorder: Recorder,
    name: str,
    qualifier: str | None,
    arn_suffix: str,
) -> None:
    extra = {"Qualifier": qualifier} if qualifier else {}
    result = lambda_client(stand_in).invoke(FunctionName=name, **extra)
    assert result["StatusCode"] == 200
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}{arn_suffix}"
    assert recorder.contexts[0].invoked_function_arn == arn
    assert result["ExecutedVersion"] == ("7" if arn_suffix == ":7" else "$LATEST")


def test_url_encoded_name_on_the_wire(stand_in: LambdaInvokeStandIn) -> None:
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
    answer = requests.post(
        f"{stand_in.url}/2015-03-31/functions/{quote(arn, safe='')}/invocations",
        data=b'{"raw": true}',
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.json() == {"echo": {"raw": True}}
    assert answer.headers["X-Amz-Executed-Version"] == "$LATEST"


def test_unknown_function_is_resource_not_found(stand_in: LambdaInvokeStandIn) -> None:
    client = lambda_client(stand_in)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        client.invoke(FunctionName="nope", InvocationType="Event")
    message = caught.value.response["Error"]["Message"]
    assert message == "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert stand_in.invocations == []
    assert stand_in.rejections[0].error_type == "ResourceNotFoundException"
    raw = requests.post(f"{stand_in.url}/2015-03-31/functions/nope/invocations", timeout=5)
    assert raw.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert raw.json()["Type"] == "User"


def test_dry_run_is_204_and_runs_nothing(stand_in: LambdaInvokeStandIn, recorder: Recorder) -> None:
    result = lambda_client(stand_in).invoke(FunctionName=FUNCTION, InvocationType="DryRun")
    assert result["StatusCode"] == 204
    assert recorder.events == []


def test_payload_that_is_not_json(stand_in: LambdaInvokeStandIn) -> None:
    client = lambda_client(stand_in)
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName=FUNCTION, Payload=b"{nope")


def test_async_payload_limit(aws_env: None, recorder: Recorder) -> None:
    with LambdaInvokeStandIn({FUNCTION: recorder}, max_async_payload=100) as server:
        client = lambda_client(server)
        big = json.dumps({"x": "y" * 200})
        with pytest.raises(client.exceptions.RequestTooLargeException):
            client.invoke(FunctionName=FUNCTION, InvocationType="Event", Payload=big)
        assert client.invoke(FunctionName=FUNCTION, Payload=big)["StatusCode"] == 200


def test_endpoint_from_the_environment(
    stand_in: LambdaInvokeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", stand_in.url)
    client = boto3.client("lambda", region_name="us-east-1", config=NO_RETRIES)
    assert client.invoke(FunctionName=FUNCTION, InvocationType="Event")["StatusCode"] == 202
    stand_in.wait_idle()


# -- Event -----------------------------------------------------------------------------------


def test_event_answers_202_at_once_and_runs_later(
    stand_in: LambdaInvokeStandIn, recorder: Recorder
) -> None:
    recorder.gate = threading.Event()
    started = time.monotonic()
    result = lambda_client(stand_in).invoke(
        FunctionName=FUNCTION, InvocationType="Event", Payload=json.dumps({"n": 1})
    )
    assert time.monotonic() - started < 2
    assert result["StatusCode"] == 202
    assert result["Payload"].read() == b""
    stand_in.wait_for(lambda: recorder.running == 1)
    assert stand_in.invocations[0].outcome == "running"
    with pytest.raises(TimeoutError):
        stand_in.wait_idle(timeout=0.1)
    recorder.gate.set()
    stand_in.wait_idle()
    [invocation] = stand_in.invocations
    assert (invocation.kind, invocation.outcome, invocation.attempts) == ("Event", "succeeded", 1)
    assert invocation.result == {"echo": {"n": 1}}


def test_failed_event_is_retried_with_the_same_request_id(
    stand_in: LambdaInvokeStandIn, recorder: Recorder
) -> None:
    recorder.fail_times = 2
    lambda_client(stand_in).invoke(FunctionName=FUNCTION, InvocationType="Event", Payload=b"{}")
    stand_in.wait_idle()
    [invocation] = stand_in.invocations
    assert invocation.outcome == "succeeded"
    assert invocation.attempts == 3
    assert invocation.errors == ["RuntimeError: transient failure"] * 2
    assert len({c.aws_request_id for c in recorder.contexts}) == 1
    assert stand_in.failures == []


def test_each_attempt_gets_a_fresh_event(aws_env: None) -> None:
    seen: list[Any] = []

    def mutating(event: dict[str, Any], context: Any) -> None:
        seen.append(dict(event))
        event["touched"] = True
        raise RuntimeError("again")

    with LambdaInvokeStandIn({FUNCTION: mutating}, max_retry_attempts=1) as server:
        lambda_client(server).invoke(
            FunctionName=FUNCTION, InvocationType="Event", Payload=b'{"a": 1}'
        )
        server.wait_idle()
    assert seen == [{"a": 1}, {"a": 1}]


def test_exhausted_event_goes_to_on_failure(aws_env: None, recorder: Recorder) -> None:
    handed: list[tuple[Any, BaseException]] = []
    with LambdaInvokeStandIn(
        {FUNCTION: recorder},
        retry_delay=0.1,
        on_failure=lambda event, error: handed.append((event, error)),
    ) as server:
        lambda_client(server).invoke(
            FunctionName=FUNCTION, InvocationType="Event", Payload=json.dumps({"boom": "async"})
        )
        server.wait_idle()
    [invocation] = server.invocations
    assert invocation.outcome == "failed" and invocation.attempts == 3
    [(event, error)] = handed
    assert event == {"boom": "async"} and isinstance(error, ValueError)
    [failure] = server.failures
    assert failure.attempts == 3 and failure.request_id == invocation.request_id
    record = failure.record
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"] == {"boom": "async"}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "ValueError"
    # The attempts were spaced by the retry delay.
    assert invocation.finished_at is not None
    assert invocation.finished_at - invocation.received_at >= 0.2


@pytest.mark.parametrize("retries", [0, 1])
def test_max_retry_attempts(aws_env: None, recorder: Recorder, retries: int) -> None:
    with LambdaInvokeStandIn({FUNCTION: recorder}, max_retry_attempts=retries) as server:
        lambda_client(server).invoke(
            FunctionName=FUNCTION, InvocationType="Event", Payload=json.dumps({"boom": 1})
        )
        server.wait_idle()
    assert len(recorder.events) == retries + 1
    assert server.failures[0].attempts == retries + 1
    with pytest.raises(ValueError):
        LambdaInvokeStandIn({}, max_retry_attempts=3)


def test_a_raising_on_failure_callback_does_not_wedge(aws_env: None, recorder: Recorder) -> None:
    def explode(event: Any, error: BaseException) -> None:
        raise RuntimeError("callback bug")

    with LambdaInvokeStandIn(
        {FUNCTION: recorder}, max_retry_attempts=0, on_failure=explode
    ) as server:
        lambda_client(server).invoke(
            FunctionName=FUNCTION, InvocationType="Event", Payload=b'{"boom": 1}'
        )
        server.wait_idle()
        assert len(server.failures) == 1


def test_async_timeout_counts_as_a_failure(aws_env: None, recorder: Recorder) -> None:
    recorder.gate = threading.Event()
    with LambdaInvokeStandIn({FUNCTION: recorder}, timeout=0.1, max_retry_attempts=1) as server:
        lambda_client(server).invoke(FunctionName=FUNCTION, InvocationType="Event")
        server.wait_idle()
        recorder.gate.set()
    assert server.failures[0].record["responsePayload"]["errorType"] == "Sandbox.Timedout"
    assert server.invocations[0].errors[0].startswith("TaskTimedOut")


def test_self_invocation_chain_settles(aws_env: None) -> None:
    """The webhook pattern: a sync call that hands work to an async call of itself."""
    done: list[str] = []

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if event.get("stage") == "webhook":
            client = boto3.client(
                "lambda", endpoint_url=server.url, region_name="us-east-1", config=NO_RETRIES
            )
            client.invoke(
                FunctionName=context.function_name,
                InvocationType="Event",
                Payload=json.dumps({"stage": "work"}),
            )
            return {"statusCode": 200}
        done.append(event["stage"])
        return {}

    with LambdaInvokeStandIn({FUNCTION: handler}) as server:
        result = lambda_client(server).invoke(
            FunctionName=FUNCTION, Payload=json.dumps({"stage": "webhook"})
        )
        assert payload(result) == {"statusCode": 200}
        server.wait_idle()
    assert done == ["work"]
    assert [i.kind for i in server.invocations] == ["RequestResponse", "Event"]


# -- concurrency -----------------------------------------------------------------------------


def test_unlimited_concurrency_runs_events_side_by_side(aws_env: None) -> None:
    barrier = threading.Barrier(3, timeout=5)

    def handler(event: Any, context: Any) -> None:
        barrier.wait()  # only passes if all three run at once

    with LambdaInvokeStandIn({FUNCTION: handler}, max_retry_attempts=0) as server:
        client = lambda_client(server)
        for _ in range(3):
            client.invoke(FunctionName=FUNCTION, InvocationType="Event")
        server.wait_idle()
    assert [i.outcome for i in server.invocations] == ["succeeded"] * 3


def test_reserved_concurrency_queues_events_and_throttles_sync_calls(
    aws_env: None, recorder: Recorder
) -> None:
    recorder.gate = threading.Event()
    with LambdaInvokeStandIn({FUNCTION: recorder}, max_concurrency=1) as server:
        client = lambda_client(server)
        for n in range(3):
            result = client.invoke(
                FunctionName=FUNCTION, InvocationType="Event", Payload=json.dumps({"n": n})
            )
            assert result["StatusCode"] == 202
        server.wait_for(lambda: recorder.running == 1)
        assert [i.outcome for i in server.invocations] == ["running", "pending", "pending"]
        with pytest.raises(client.exceptions.TooManyRequestsException) as caught:
            client.invoke(FunctionName=FUNCTION)
        assert (
            caught.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        )
        recorder.gate.set()
        server.wait_idle()
    assert recorder.most_running == 1
    assert recorder.events == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [r.status for r in server.rejections] == [429]


# -- API faults ------------------------------------------------------------------------------


def test_fail_next_429_is_too_many_requests(
    stand_in: LambdaInvokeStandIn, recorder: Recorder
) -> None:
    stand_in.fail_next(429, retry_after=3)
    client = lambda_client(stand_in)
    with pytest.raises(client.exceptions.TooManyRequestsException) as caught:
        client.invoke(FunctionName=FUNCTION, InvocationType="Event")
    assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "3"
    assert recorder.events == [] and stand_in.invocations == []
    assert client.invoke(FunctionName=FUNCTION, InvocationType="Event")["StatusCode"] == 202
    stand_in.wait_idle()


def test_fail_next_500_is_service_exception(stand_in: LambdaInvokeStandIn) -> None:
    stand_in.fail_next(500, times=2)
    client = lambda_client(stand_in)
    for _ in range(2):
        with pytest.raises(client.exceptions.ServiceException):
            client.invoke(FunctionName=FUNCTION)
    assert client.invoke(FunctionName=FUNCTION)["StatusCode"] == 200
    assert [(r.status, r.error_type) for r in stand_in.rejections] == [
        (500, "ServiceException"),
        (500, "ServiceException"),
    ]


def test_fail_next_can_target_one_invocation_type(stand_in: LambdaInvokeStandIn) -> None:
    stand_in.fail_next(500, only="Event", error_type="ServiceException", message="down")
    client = lambda_client(stand_in)
    assert client.invoke(FunctionName=FUNCTION)["StatusCode"] == 200
    with pytest.raises(ClientError, match="down"):
        client.invoke(FunctionName=FUNCTION, InvocationType="Event")


def test_boto3_retries_through_a_single_injected_error(stand_in: LambdaInvokeStandIn) -> None:
    """What the handler's own client will do with its default retry settings."""
    stand_in.fail_next(500)
    client = lambda_client(stand_in, Config(retries={"mode": "standard", "total_max_attempts": 3}))
    assert client.invoke(FunctionName=FUNCTION, InvocationType="Event")["StatusCode"] == 202
    stand_in.wait_idle()
    assert len(stand_in.rejections) == 1 and len(stand_in.invocations) == 1


# -- lifecycle -------------------------------------------------------------------------------


def test_stop_drops_queued_events(aws_env: None, recorder: Recorder) -> None:
    recorder.gate = threading.Event()
    server = LambdaInvokeStandIn({FUNCTION: recorder}, max_concurrency=1).start()
    client = lambda_client(server)
    for _ in range(2):
        client.invoke(FunctionName=FUNCTION, InvocationType="Event")
    server.wait_for(lambda: recorder.running == 1)
    server.stop()
    recorder.gate.set()
    server.wait_idle(timeout=5)
    assert [i.outcome for i in server.invocations] == ["succeeded", "dropped"]


def test_register_and_clear(stand_in: LambdaInvokeStandIn) -> None:
    stand_in.register("other", lambda event, context: "other")
    client = lambda_client(stand_in)
    assert payload(client.invoke(FunctionName="other")) == "other"
    stand_in.fail_next(500)
    stand_in.clear()
    assert stand_in.invocations == []
    assert client.invoke(FunctionName=FUNCTION)["StatusCode"] == 200
