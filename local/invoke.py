"""A stand-in for the AWS Lambda Invoke API that runs Python handlers in this process.

The webhook hands slow work to an asynchronous invocation of its own function; this server
lets that call go through a real boto3 client (``endpoint_url`` or
``AWS_ENDPOINT_URL_LAMBDA``) and behave as Lambda does: Event answers 202 at once and runs
later, failed events are retried and then go to the on-failure destination, reserved
concurrency queues events, and RequestResponse returns the result or the function error.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Literal, Self, TypeVar
from urllib.parse import unquote

from local._http import FaultQueue, LocalServer, Request, Response

T = TypeVar("T")
Handler = Callable[[Any, Any], Any]
InvocationKind = Literal["Event", "RequestResponse"]
Outcome = Literal["pending", "running", "retrying", "succeeded", "failed", "dropped"]

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 256 * 1024

_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")

log = logging.getLogger(__name__)


class TaskTimedOut(Exception):
    """Stands for Lambda stopping a function at its timeout (the thread itself runs on)."""


@dataclass
class LambdaContext:
    """The attributes and method of the Python runtime's context object.

    ``memory_limit_in_mb`` is a string, as in the real runtime (it comes from an env var).
    """

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float = field(repr=False)  # time.monotonic() when the function times out
    client_context: Any = None
    identity: Any = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class Invocation:
    """One accepted invocation; async ones are updated in place as attempts run."""

    request_id: str
    function_name: str
    kind: InvocationKind
    event: Any
    received_at: float  # time.monotonic()
    qualifier: str | None = None
    attempts: int = 0
    outcome: Outcome = "pending"
    result: Any = None
    error: BaseException | None = None
    errors: list[str] = field(default_factory=list)  # "Type: message" of every failed attempt
    finished_at: float | None = None


@dataclass(frozen=True)
class AsyncFailure:
    """An event whose retries ran out: what Lambda would send to the on-failure destination.

    ``record`` has the shape of the destination message (requestContext, requestPayload,
    responseContext, responsePayload).
    """

    request_id: str
    function_name: str
    event: Any
    error: BaseException
    attempts: int
    record: dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    """An Invoke API call answered with an error: the function did not run."""

    function_name: str
    kind: str
    status: int
    error_type: str
    at: float


@dataclass(frozen=True)
class _ApiFault:
    status: int
    error_type: str
    message: str
    retry_after: int | None


@dataclass
class _Job:
    invocation: Invocation
    payload: bytes
    ready_at: float
    order: int


@dataclass(frozen=True)
class _Result:
    ok: bool
    body: bytes  # the JSON result, or the error payload when not ok
    result: Any = None
    error: BaseException | None = None


_DEFAULT_FAULTS: dict[int, tuple[str, str]] = {
    400: ("InvalidRequestContentException", "Invalid request content."),
    403: ("AccessDeniedException", "User is not authorized to perform: lambda:InvokeFunction"),
    429: ("TooManyRequestsException", "Rate Exceeded."),
    500: ("ServiceException", "The AWS Lambda service encountered an internal error."),
    502: ("ResourceNotReadyException", "The function is not ready to be invoked."),
    503: ("ServiceException", "The AWS Lambda service is unavailable."),
}


class LambdaInvokeStandIn(LocalServer):
    """Serves ``lambda:Invoke`` for the given handlers.

    ``functions``: name -> handler, or one handler that answers to every function name.
    ``max_concurrency`` stands in for reserved concurrency (None = unlimited): events wait for
    a free slot, RequestResponse calls over the limit get 429 as from Lambda.
    ``retry_delay`` replaces Lambda's 1 and 2 minutes between async attempts.
    """

    name = "lambda"

    def __init__(
        self,
        functions: Mapping[str, Handler] | Handler,
        *,
        max_retry_attempts: int = 2,
        retry_delay: float = 0.05,
        on_failure: Callable[[Any, BaseException], None] | None = None,
        max_concurrency: int | None = None,
        timeout: float = 120.0,
        memory_limit_in_mb: int = 128,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        max_async_payload: int = ASYNC_PAYLOAD_LIMIT,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        if not 0 <= max_retry_attempts <= 2:
            raise ValueError("max_retry_attempts must be 0, 1 or 2, as in Lambda")
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1 (or None for unlimited)")
        if callable(functions):
            self._functions: dict[str, Handler] = {}
            self._default: Handler | None = functions
        else:
            self._functions = dict(functions)
            self._default = None
        self.max_retry_attempts = max_retry_attempts
        self.retry_delay = retry_delay
        self.on_failure = on_failure
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.memory_limit_in_mb = memory_limit_in_mb
        self.region = region
        self.account_id = account_id
        self.max_async_payload = max_async_payload
        self._log_stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self._invocations: list[Invocation] = []
        self._failures: list[AsyncFailure] = []
        self._rejections: list[Rejection] = []
        self._queue: list[_Job] = []
        self._order = 0
        self._running: dict[str, int] = {}
        self._async_active = 0  # accepted events not yet finished (callback included)
        self._faults: FaultQueue[_ApiFault] = FaultQueue()
        self._dispatcher: threading.Thread | None = None

    def register(self, name: str, handler: Handler) -> None:
        """Add or replace a function."""
        with self._changed:
            self._functions[name] = handler

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        super().start()
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name=f"lambda-dispatch-{self.port}", daemon=True
        )
        self._dispatcher.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving; queued events are dropped, running ones are not waited for."""
        super().stop(timeout)
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
            self._dispatcher = None
        with self._changed:
            for job in self._queue:
                self._finish(job.invocation, "dropped")
                self._async_active -= 1
            self._queue.clear()
            self._changed.notify_all()

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        *,
        error_type: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        only: InvocationKind | None = None,
    ) -> None:
        """Make the Invoke API itself answer ``status`` (the function does not run).

        The error type defaults by status: 429 TooManyRequestsException, 500/503
        ServiceException, ... Remember boto3 retries 429 and 5xx unless told not to.
        """
        default_type, default_message = _DEFAULT_FAULTS.get(
            status,
            (
                "ServiceException" if status >= 500 else "InvalidParameterValueException",
                "Injected error.",
            ),
        )
        fault = _ApiFault(
            status, error_type or default_type, message or default_message, retry_after
        )
        applies = None if only is None else (lambda kind: kind == only)
        self._faults.add(fault, times, applies)

    # -- recordings ------------------------------------------------------------------------

    @property
    def invocations(self) -> list[Invocation]:
        """Snapshots of every accepted invocation, in arrival order."""
        with self._changed:
            return [replace(i, errors=list(i.errors)) for i in self._invocations]

    @property
    def failures(self) -> list[AsyncFailure]:
        """Events whose retries ran out (the on-failure destination's messages)."""
        with self._changed:
            return list(self._failures)

    @property
    def rejections(self) -> list[Rejection]:
        """Invoke calls answered with an API error (injected, throttled, bad request)."""
        with self._changed:
            return list(self._rejections)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no async invocation is queued, running, retrying or reporting failure."""
        self._wait_for(
            lambda: self._async_active == 0,
            timeout,
            lambda: f"{self._async_active} async invocations still active",
        )

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Block until ``predicate()`` is truthy and return its value; TimeoutError if not."""
        return self._wait_for(predicate, timeout)

    def clear(self) -> None:
        """Forget recordings and queued faults (running invocations carry on)."""
        with self._changed:
            self._invocations.clear()
            self._failures.clear()
            self._rejections.clear()
            self._faults.clear()

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if match is None or request.method != "POST":
            return _aws_error(404, "UnknownOperationException", "Unknown operation", "User")
        kind = request.header("X-Amz-Invocation-Type") or "RequestResponse"
        name, qualifier = self._resolve(unquote(match["name"]), request.query.get("Qualifier"))
        if kind not in ("Event", "RequestResponse", "DryRun"):
            return self._reject(
                name or "",
                kind,
                400,
                "InvalidParameterValueException",
                f"Unsupported invocation type: {kind}",
            )
        if name is None or self._handler(name) is None:
            shown = self.function_arn(name) if name else match["name"]
            return self._reject(
                name or "", kind, 404, "ResourceNotFoundException", f"Function not found: {shown}"
            )
        fault = self._faults.take(kind)
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            extra = {"Reason": "CallerRateLimitExceeded"} if fault.status == 429 else {}
            return self._reject(
                name, kind, fault.status, fault.error_type, fault.message, headers, extra
            )
        if kind == "DryRun":
            return Response(204, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        limit = SYNC_PAYLOAD_LIMIT if kind == "RequestResponse" else self.max_async_payload
        if len(request.body) > limit:
            operation = "Invoke" if kind == "RequestResponse" else "InvokeAsync"
            return self._reject(
                name,
                kind,
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the {operation} operation",
            )
        try:
            event = _decode(request.body)
        except ValueError as error:
            return self._reject(
                name,
                kind,
                400,
                "InvalidRequestContentException",
                f"Could not parse request body into json: {error}",
            )
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            function_name=name,
            kind="Event" if kind == "Event" else "RequestResponse",
            event=event,
            received_at=time.monotonic(),
            qualifier=qualifier,
        )
        if kind == "Event":
            return self._accept_event(invocation, request.body)
        return self._invoke_sync(invocation, request)

    def _resolve(self, raw: str, qualifier: str | None) -> tuple[str | None, str | None]:
        """Name, ARN, partial ARN or name:qualifier -> (name, qualifier)."""
        parts = raw.split(":")
        if raw.startswith("arn:"):
            if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
                return None, qualifier
            name, rest = parts[6], parts[7:]
        elif len(parts) >= 3 and parts[1] == "function":
            name, rest = parts[2], parts[3:]
        else:
            name, rest = parts[0], parts[1:]
        return name, qualifier or (rest[0] if rest else None)

    def _handler(self, name: str) -> Handler | None:
        with self._changed:
            return self._functions.get(name, self._default)

    def _reject(
        self,
        name: str,
        kind: str,
        status: int,
        error_type: str,
        message: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Response:
        with self._changed:
            self._rejections.append(Rejection(name, kind, status, error_type, time.monotonic()))
            self._changed.notify_all()
        side = "Service" if status >= 500 else "User"
        return _aws_error(status, error_type, message, side, headers, extra)

    def _accept_event(self, invocation: Invocation, payload: bytes) -> Response:
        with self._changed:
            self._invocations.append(invocation)
            self._async_active += 1
            self._order += 1
            self._queue.append(_Job(invocation, payload, time.monotonic(), self._order))
            self._changed.notify_all()
        return Response(202, headers={"x-amzn-RequestId": invocation.request_id})

    def _invoke_sync(self, invocation: Invocation, request: Request) -> Response:
        name = invocation.function_name
        with self._changed:
            if self._limit_reached(name):
                self._changed.notify_all()
                throttled = True
            else:
                throttled = False
                self._running[name] = self._running.get(name, 0) + 1
                invocation.outcome = "running"
                invocation.attempts = 1
                self._invocations.append(invocation)
        if throttled:
            return self._reject(
                name,
                "RequestResponse",
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
            )
        started = time.monotonic()
        try:
            client_context = request.header("X-Amz-Client-Context")
            outcome = self._execute(invocation, request.body, client_context)
        finally:
            with self._changed:
                self._running[name] -= 1
                self._changed.notify_all()
        with self._changed:
            if outcome.ok:
                invocation.result = outcome.result
                self._finish(invocation, "succeeded")
            else:
                self._note_error(invocation, outcome.error)
                self._finish(invocation, "failed")
        headers = {
            "Content-Type": "application/json",
            "X-Amz-Executed-Version": _executed_version(invocation.qualifier),
            "x-amzn-RequestId": invocation.request_id,
        }
        if not outcome.ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if request.header("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = self._log_tail(invocation, time.monotonic() - started)
        return Response(200, outcome.body, headers)

    # -- running functions -----------------------------------------------------------------

    def _execute(self, invocation: Invocation, payload: bytes, client_context: str = "") -> _Result:
        """One attempt in its own thread, cut off (not killed) at the timeout."""
        handler = self._handler(invocation.function_name)
        assert handler is not None
        context = LambdaContext(
            function_name=invocation.function_name,
            function_version="$LATEST",
            invoked_function_arn=self.function_arn(invocation.function_name, invocation.qualifier),
            memory_limit_in_mb=str(self.memory_limit_in_mb),
            aws_request_id=invocation.request_id,
            log_group_name=f"/aws/lambda/{invocation.function_name}",
            log_stream_name=self._log_stream,
            deadline=time.monotonic() + self.timeout,
            client_context=_client_context(client_context),
        )
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = handler(_decode(payload), context)
            except BaseException as error:  # Lambda reports SystemExit & co. as well
                box["error"] = error

        thread = threading.Thread(
            target=run,
            name=f"lambda-{invocation.function_name}-{invocation.request_id[:8]}",
            daemon=True,
        )
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            error = TaskTimedOut(
                f"RequestId: {invocation.request_id} Error: Task timed out after "
                f"{self.timeout:.2f} seconds"
            )
            body = {"errorType": "Sandbox.Timedout", "errorMessage": str(error)}
            return _Result(False, json.dumps(body).encode(), error=error)
        if "error" in box:
            error = box["error"]
            return _Result(False, _error_body(error, invocation.request_id), error=error)
        try:
            body_bytes = json.dumps(box["result"]).encode("utf-8")
        except (TypeError, ValueError) as marshal:
            error = RuntimeError(f"Unable to marshal response: {marshal}")
            body = {
                "errorMessage": str(error),
                "errorType": "Runtime.MarshalError",
                "requestId": invocation.request_id,
                "stackTrace": [],
            }
            return _Result(False, json.dumps(body).encode(), error=error)
        return _Result(True, body_bytes, result=box["result"])

    def _limit_reached(self, name: str) -> bool:
        limit = self.max_concurrency
        return limit is not None and self._running.get(name, 0) >= limit

    def _dispatch_loop(self) -> None:
        """Start queued events when due and a concurrency slot is free."""
        with self._changed:
            while not self._stopping.is_set():
                now = time.monotonic()
                ready = [
                    j
                    for j in self._queue
                    if j.ready_at <= now and not self._limit_reached(j.invocation.function_name)
                ]
                if not ready:
                    later = [j.ready_at - now for j in self._queue if j.ready_at > now]
                    self._changed.wait(min([0.1, *later]))
                    continue
                job = min(ready, key=lambda j: (j.ready_at, j.order))
                self._queue.remove(job)
                name = job.invocation.function_name
                self._running[name] = self._running.get(name, 0) + 1
                job.invocation.outcome = "running"
                job.invocation.attempts += 1
                threading.Thread(
                    target=self._run_event,
                    args=(job,),
                    daemon=True,
                    name=f"lambda-event-{job.invocation.request_id[:8]}",
                ).start()

    def _run_event(self, job: _Job) -> None:
        invocation = job.invocation
        outcome = self._execute(invocation, job.payload)
        failure: AsyncFailure | None = None
        with self._changed:
            self._running[invocation.function_name] -= 1
            if outcome.ok:
                invocation.result = outcome.result
                self._finish(invocation, "succeeded")
            else:
                self._note_error(invocation, outcome.error)
                if invocation.attempts <= self.max_retry_attempts and not self._stopping.is_set():
                    invocation.outcome = "retrying"
                    job.ready_at = time.monotonic() + self.retry_delay
                    self._queue.append(job)
                    self._changed.notify_all()
                    return
                assert outcome.error is not None
                failure = AsyncFailure(
                    invocation.request_id,
                    invocation.function_name,
                    invocation.event,
                    outcome.error,
                    invocation.attempts,
                    self._destination_record(invocation, outcome.body),
                )
                self._failures.append(failure)
                invocation.outcome = "failed"
                invocation.finished_at = time.monotonic()
            self._changed.notify_all()
        try:
            if failure is not None and self.on_failure is not None:
                self.on_failure(failure.event, failure.error)
        except Exception:
            log.exception("on_failure callback raised")
        finally:
            with self._changed:
                self._async_active -= 1
                self._changed.notify_all()

    def _finish(self, invocation: Invocation, outcome: Outcome) -> None:
        """Settle an invocation (lock held)."""
        invocation.outcome = outcome
        invocation.finished_at = time.monotonic()
        self._changed.notify_all()

    @staticmethod
    def _note_error(invocation: Invocation, error: BaseException | None) -> None:
        invocation.error = error
        if error is not None:
            invocation.errors.append(f"{type(error).__name__}: {error}")

    def _destination_record(self, invocation: Invocation, error_body: bytes) -> dict[str, Any]:
        return {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "requestContext": {
                "requestId": invocation.request_id,
                "functionArn": self.function_arn(invocation.function_name, "$LATEST"),
                "condition": "RetriesExhausted",
                "approximateInvokeCount": invocation.attempts,
            },
            "requestPayload": invocation.event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": json.loads(error_body),
        }

    def _log_tail(self, invocation: Invocation, seconds: float) -> str:
        rid = invocation.request_id
        text = (
            f"START RequestId: {rid} Version: $LATEST\n"
            f"END RequestId: {rid}\n"
            f"REPORT RequestId: {rid}\tDuration: {seconds * 1000:.2f} ms\t"
            f"Memory Size: {self.memory_limit_in_mb} MB\n"
        )
        return base64.b64encode(text.encode()).decode()


def _decode(payload: bytes) -> Any:
    """A fresh copy of the event for each attempt; an empty payload is ``{}`` as in Lambda."""
    if not payload.strip():
        return {}
    return json.loads(payload.decode("utf-8"))


def _error_body(error: BaseException, request_id: str) -> bytes:
    frames = traceback.extract_tb(error.__traceback__)[1:]  # drop the stand-in's own frame
    body = {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }
    return json.dumps(body).encode("utf-8")


def _client_context(header: str) -> Any:
    if not header:
        return None
    try:
        data = json.loads(base64.b64decode(header))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return SimpleNamespace(
        custom=data.get("custom"), env=data.get("env"), client=data.get("client")
    )


def _executed_version(qualifier: str | None) -> str:
    return qualifier if qualifier and qualifier.isdigit() else "$LATEST"


def _aws_error(
    status: int,
    error_type: str,
    message: str,
    side: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """Lambda's REST-JSON error: type in ``x-amzn-ErrorType``, message in the body."""
    body = {"Type": side, "message": message, **(extra or {})}
    return Response.json(
        status,
        body,
        {"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})},
    )


__all__ = [
    "AsyncFailure",
    "Invocation",
    "LambdaContext",
    "LambdaInvokeStandIn",
    "Rejection",
    "TaskTimedOut",
]
