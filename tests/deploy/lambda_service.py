"""The Lambda service around the function, on loopback: what AWS does that moto cannot.

- ``RuntimeApi``: the Lambda Runtime API (``/2018-06-01/runtime/invocation/next`` ...) that
  ``bootstrap.py`` polls in the execution environment; ``invoke`` hands it one event and
  waits for the function's answer.
- ``ExecutionEnvironment``: one Python 3.13 process running the extracted archive under
  ``bootstrap.py``, with exactly the environment it is given; its output is kept, to be
  shipped to the log group as Lambda does.
- ``FunctionUrl``: the function's HTTPS endpoint: turns a request into a payload-2.0 event
  and the function's answer into the response, if the declared URL and grants allow it.
- ``Scheduler``: EventBridge firing a declared rule at its declared target, if a declared
  permission lets it.

Lambda's event source mapping is ``local.event_source.QueuePoller``, wired in
``simulation.py`` with ``RuntimeApi.invoke`` as its handler.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local._http import LocalServer, Request, Response
from tests.deploy import iam
from tests.deploy.stack import PERMISSION, RULE, TARGET, Declaration
from tests.support.bridge import function_url_event

API = "/2018-06-01/runtime"
_RESULT = re.compile(rf"^{API}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")


class FunctionError(Exception):
    """The function failed (or its environment did): ``error_type`` as Lambda reports it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


# --- the Runtime API -----------------------------------------------------------------------


class RuntimeApi(LocalServer):
    """Hands events to the execution environment one at a time, as Lambda's Runtime API."""

    name = "runtime-api"

    def __init__(self, function_arn: str, timeout_seconds: int) -> None:
        super().__init__()
        self.function_arn = function_arn
        self.timeout_seconds = timeout_seconds
        self._pending: list[tuple[str, bytes]] = []
        self._results: dict[str, tuple[bool, bytes]] = {}
        self.init_error: bytes | None = None
        self.alive: Callable[[], bool] = lambda: True

    @property
    def address(self) -> str:
        """``AWS_LAMBDA_RUNTIME_API``: host and port, no scheme."""
        return self.url.removeprefix("http://")

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        """Run one invocation and return the function's result; FunctionError if it failed."""
        rid = request_id or str(uuid.uuid4())
        with self._changed:
            self._pending.append((rid, json.dumps(event).encode()))
            self._changed.notify_all()

        def settled() -> bool:
            return rid in self._results or self.init_error is not None or not self.alive()

        self._wait_for(settled, self.timeout_seconds + 5.0, f"no answer to invocation {rid}")
        with self._changed:
            outcome = self._results.pop(rid, None)
            self._pending = [p for p in self._pending if p[0] != rid]
        if outcome is None:
            if self.init_error is not None:
                raise FunctionError("Runtime.InitError", self.init_error.decode("utf-8", "replace"))
            raise FunctionError("Runtime.ExitError", "the execution environment exited")
        ok, body = outcome
        if ok:
            return json.loads(body) if body else None
        error = json.loads(body or b"{}")
        raise FunctionError(error.get("errorType", "Unhandled"), error.get("errorMessage", ""))

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path == f"{API}/invocation/next":
            return self._next()
        if request.method == "POST" and request.path == f"{API}/init/error":
            with self._changed:
                self.init_error = request.body
                self._changed.notify_all()
            return Response.json(202, {"status": "OK"})
        match = _RESULT.match(request.path)
        if request.method == "POST" and match:
            with self._changed:
                self._results[match["id"]] = (match["kind"] == "response", request.body)
                self._changed.notify_all()
            return Response.json(202, {"status": "OK"})
        return Response.json(404, {"errorType": "InvalidRequest", "errorMessage": request.path})

    def _next(self) -> Response:
        try:
            self._wait_for(lambda: self._pending or self._stopping.is_set(), 24 * 3600.0)
        except TimeoutError:
            return Response.json(500, {"errorMessage": "no invocation"})
        with self._changed:
            if not self._pending:
                return Response.json(500, {"errorMessage": "the service is stopping"})
            rid, body = self._pending.pop(0)
        deadline = int(time.time() * 1000) + self.timeout_seconds * 1000
        return Response(
            200,
            body,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": rid,
                "Lambda-Runtime-Deadline-Ms": str(deadline),
                "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            },
        )


# --- the execution environment -------------------------------------------------------------


BOOTSTRAP = Path(__file__).with_name("bootstrap.py")


class ExecutionEnvironment:
    """The function's process: ``python -I -S`` (no site, no user paths, no PYTHON* variables)
    with ``env`` as its whole environment, bytecode kept outside the task root."""

    def __init__(self, python: str, env: dict[str, str], task_root: Path, pycache: Path) -> None:
        self.env = dict(env)
        self.lines: list[tuple[float, str, str]] = []  # (time, "stdout"|"stderr", line)
        self._process = subprocess.Popen(
            [python, "-I", "-S", "-u", "-X", f"pycache_prefix={pycache}", str(BOOTSTRAP)],
            env=self.env,
            cwd=task_root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(stream, name), daemon=True)
            for stream, name in ((self._process.stdout, "stdout"), (self._process.stderr, "stderr"))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, name: str) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append((time.time(), name, raw.decode("utf-8", "replace").rstrip("\n")))

    def process_environment(self) -> dict[str, str] | None:
        """The environment the process really has (Linux ``/proc``), None where unreadable.

        ``environ`` reads empty while the kernel is still setting the process up and once
        it has exited: read again for up to two seconds; an exited process has none to read.
        """
        deadline = time.monotonic() + 2.0
        while True:
            try:
                raw = Path(f"/proc/{self._process.pid}/environ").read_bytes()
            except OSError:
                return None
            if raw or time.monotonic() > deadline:
                break
            if not self.alive():
                return None
            time.sleep(0.02)
        pairs = (item.split("=", 1) for item in raw.decode("utf-8", "replace").split("\0") if item)
        return {name: value for name, value in pairs}

    def alive(self) -> bool:
        return self._process.poll() is None

    def output(self, name: str | None = None) -> list[str]:
        return [line for _t, stream, line in self.lines if name in (None, stream)]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for reader in self._readers:
            reader.join(2)


# --- resource-based permissions ------------------------------------------------------------


def granted(
    declaration: Declaration,
    function: str,
    action: str,
    principal: str,
    *,
    source_arn: str | None = None,
    via_url: bool = False,
    url_auth_type: str | None = None,
) -> bool:
    """Whether a declared ``aws:lambda/permission:Permission`` lets ``principal`` do
    ``action`` on ``function`` (with AWS's conditions: source ARN, through the URL)."""
    for p in declaration.of_type(PERMISSION):
        i = p.inputs
        if i.get("function") != function or i.get("action") != action:
            continue
        if i.get("principal") not in ("*", principal):
            continue
        if i.get("sourceArn") and i["sourceArn"] != source_arn:
            continue
        if i.get("invokedViaFunctionUrl") and not via_url:
            continue
        if i.get("functionUrlAuthType") and i["functionUrlAuthType"] != url_auth_type:
            continue
        return True
    return False


# --- the Function URL ----------------------------------------------------------------------


class FunctionUrl(LocalServer):
    """``https://<id>.lambda-url.<region>.on.aws/`` on loopback, for one function."""

    name = "function-url"

    def __init__(
        self, declaration: Declaration, auth_type: str, invoke: Callable[[Any], Any]
    ) -> None:
        super().__init__()
        self.function = declaration.function.name
        self.auth_type = auth_type
        self._declaration = declaration
        self._invoke = invoke

    def handle(self, request: Request) -> Response:
        # Since October 2025 a public URL needs both grants; AWS_IAM would need a signature.
        allowed = (
            self.auth_type == "NONE"
            and granted(
                self._declaration,
                self.function,
                "lambda:InvokeFunctionUrl",
                "*",
                url_auth_type="NONE",
            )
            and granted(
                self._declaration, self.function, "lambda:InvokeFunction", "*", via_url=True
            )
        )
        if not allowed:
            return Response.json(403, {"Message": "Forbidden"})
        event = function_url_event(
            request.method,
            request.body,
            {k: v for k, v in request.headers.items()},
            request.query or None,
            request.path,
        )
        try:
            result = self._invoke(event)
        except FunctionError:
            return Response.json(502, {"Message": "Internal Server Error"})
        if not (isinstance(result, dict) and "statusCode" in result):
            return Response.json(200, result)
        body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            data = base64.b64decode(body)
        else:
            data = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode()
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        return Response(int(result["statusCode"]), data, headers)


# --- EventBridge ---------------------------------------------------------------------------


EVENTS_SERVICE = "events.amazonaws.com"


@dataclass(frozen=True)
class Fired:
    """One event EventBridge delivered to one target, and how the invocation ended."""

    event: Any
    target: str
    result: Any = None
    error: str | None = None  # refused by the function's permissions, or the function failed


@dataclass
class Scheduler:
    """Fires a declared schedule rule: the event EventBridge builds, delivered to each
    declared target if a declared permission lets EventBridge invoke the function from that
    rule. EventBridge invokes asynchronously and never sees the answer; here the invocation
    runs to its end, so that the step can look at it."""

    declaration: Declaration
    account: iam.Account
    invoke: Callable[[Any], Any]
    fired: list[Fired] = field(default_factory=list)

    def fire(self, rule_name: str) -> list[Fired]:
        rules = [r for r in self.declaration.of_type(RULE) if r.inputs["name"] == rule_name]
        if not rules:
            raise AssertionError(f"no schedule rule {rule_name!r} is declared")
        rule = rules[0]
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account.account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.account.region,
            "resources": [rule.arn],
            "detail": {},
        }
        targets = [t for t in self.declaration.of_type(TARGET) if t.inputs["rule"] == rule_name]
        if not targets:
            raise AssertionError(f"rule {rule_name!r} has no target")
        function = self.declaration.function
        fired = []
        for target in targets:
            arn = target.inputs["arn"]
            if arn != function.arn:
                raise AssertionError(f"rule {rule_name!r} targets {arn}, not the function")
            payload = json.loads(target.inputs["input"]) if target.inputs.get("input") else event
            if not granted(
                self.declaration,
                function.name,
                "lambda:InvokeFunction",
                EVENTS_SERVICE,
                source_arn=rule.arn,
            ):
                denied = f"no permission lets {EVENTS_SERVICE} ({rule.arn}) invoke {arn}"
                fired.append(Fired(payload, arn, error=denied))
                continue
            try:
                fired.append(Fired(payload, arn, result=self.invoke(payload)))
            except FunctionError as error:
                fired.append(Fired(payload, arn, error=str(error)))
        self.fired.extend(fired)
        return fired
