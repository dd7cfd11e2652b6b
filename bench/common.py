"""What every benchmark shares: statistics, the machine's description, the local AWS stack."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"

FUNCTION = "messenger-bridge-bench"
PAGE_ID = "100000000000001"
APP_SECRET = "bench-app-secret-4b7e1c9d2a"
PAGE_TOKEN = "EAABenchPageToken-8c2f5e1a7d"
VERIFY_TOKEN = "bench-verify-token-1d5a8e3c"
OPENAI_KEY = "sk-bench-key-6e2a9c4f1b"
SECRET_NAMES = {
    "APP_SECRET_PARAMETER": ("app-secret", APP_SECRET),
    "PAGE_ACCESS_TOKEN_PARAMETER": ("page-access-token", PAGE_TOKEN),
    "VERIFY_TOKEN_PARAMETER": ("verify-token", VERIFY_TOKEN),
    "OPENAI_API_KEY_PARAMETER": ("openai-api-key", OPENAI_KEY),
}

# Never reach a real AWS account, whatever the shell has configured.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


# -- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``p`` in 0..100."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread of a sample; every figure in the unit of ``values``."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p25": percentile(values, 25),
        "p75": percentile(values, 75),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


# -- the machine --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def child_python() -> str:
    """The interpreter cold starts run on: Python 3.13, Lambda's, outside any venv."""
    if sys.version_info[:2] == (3, 13):
        return getattr(sys, "_base_executable", None) or sys.executable
    found = subprocess.run(
        [str(ROOT / "scripts" / "find-python")], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found or sys.executable


def now_ns() -> int:
    """CLOCK_MONOTONIC in ns: one clock for this process and its children."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# -- the local AWS stack ------------------------------------------------------------------


@dataclass
class LocalAws:
    """A moto server child (SSM + DynamoDB) holding the four secrets, and maybe a table."""

    url: str
    table: str
    _server: Any

    def parameter_env(self) -> dict[str, str]:
        return {var: f"/{self.table}/{name}" for var, (name, _v) in SECRET_NAMES.items()}

    def stop(self) -> None:
        self._server.stop()


@contextmanager
def local_aws(with_table: bool = True) -> Iterator[LocalAws]:
    """moto on 127.0.0.1 (the same child process the tests start), stopped afterwards."""
    import boto3

    from tests.support.processes import start_moto

    os.environ.update(FAKE_AWS)
    server = start_moto()
    try:
        table = f"bench-{uuid.uuid4().hex[:10]}"
        aws = LocalAws(server.url, table, server)
        ssm = boto3.client("ssm", endpoint_url=server.url, region_name="us-east-1")
        for name, value in SECRET_NAMES.values():
            ssm.put_parameter(
                Name=f"/{table}/{name}", Value=value, Type="SecureString", Overwrite=True
            )
        if with_table:
            from handler import schema

            dynamodb = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1")
            dynamodb.create_table(**schema.create_table_request(table))
            dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.1})
        yield aws
    finally:
        server.stop()


def handler_env(aws: LocalAws, lambda_url: str, **extra: str) -> dict[str, str]:
    """The deployed function's environment, pointed at the local servers."""
    return {
        **FAKE_AWS,
        "TABLE_NAME": aws.table,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_ENDPOINT_URL_SSM": aws.url,
        "AWS_ENDPOINT_URL_DYNAMODB": aws.url,
        "AWS_ENDPOINT_URL_LAMBDA": lambda_url,
        **aws.parameter_env(),
        **extra,
    }


def webhook_body(psid: str, text: str, mid: str | None = None) -> bytes:
    import json

    now = int(time.time() * 1000)
    return json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": psid},
                            "recipient": {"id": PAGE_ID},
                            "timestamp": now,
                            "message": {"mid": mid or f"m_{uuid.uuid4().hex}", "text": text},
                        }
                    ],
                }
            ],
        }
    ).encode()


def signed_post(body: bytes) -> dict[str, Any]:
    """A Function URL event (payload 2.0) carrying ``body`` signed as Facebook signs it."""
    import base64
    import hashlib
    import hmac

    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-hub-signature-256": signature,
            "user-agent": "facebookexternalua",
        },
        "requestContext": {
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1"},
            "requestId": str(uuid.uuid4()),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


class CountingSink:
    """A text stream for the handler's log lines: counts bytes and lines, keeps the lines."""

    def __init__(self, keep: bool = True) -> None:
        self.bytes = 0
        self.lines: list[str] = []
        self._keep = keep

    def write(self, text: str) -> int:
        self.bytes += len(text.encode("utf-8"))
        if self._keep:
            self.lines.extend(line for line in text.splitlines() if line.strip())
        return len(text)

    def flush(self) -> None:
        pass


def fmt_ms(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def stand_ins_set_nodelay() -> bool:
    """True when ``local/_http.py`` already turns Nagle off on its accepted connections."""
    return "TCP_NODELAY" in (ROOT / "local" / "_http.py").read_text()


@contextmanager
def no_nagle_in_stand_ins() -> Iterator[bool]:
    """Turn Nagle's algorithm off on the stand-in servers' connections, in this process only.

    Their handler writes the headers and the body of a response in two ``send()`` calls; with
    Nagle on, the body waits for the client's delayed ACK (40 ms on Linux) on keep-alive
    connections, which would put ~40 ms of the stand-in's own into every Send API and model
    call. Yields whether a patch was needed (False once ``local/_http.py`` does it itself).
    """
    import socket

    from local import _http

    if stand_ins_set_nodelay():
        yield False
        return
    original = _http._Handler.setup

    def setup(self: Any) -> None:
        original(self)
        with suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    _http._Handler.setup = setup  # type: ignore[method-assign]
    try:
        yield True
    finally:
        _http._Handler.setup = original  # type: ignore[method-assign]
