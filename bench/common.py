"""What every benchmark shares: statistics, the machine's description, the stand-ins.

The stand-ins themselves are ``local.harness.Harness``, the one wiring that ``make local``,
the tests and the benchmarks use; here is only what the benchmarks add around it: moto in a
child process (so its work does not share the GIL of the process being timed), the bench's
secrets, signed webhook events.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.naming import names_for
from local.harness import FUNCTION_NAME, PAGE_ID

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"

FUNCTION = FUNCTION_NAME
APP_SECRET = "bench-app-secret-4b7e1c9d2a"
PAGE_TOKEN = "EAABenchPageToken-8c2f5e1a7d"
VERIFY_TOKEN = "bench-verify-token-1d5a8e3c"
OPENAI_KEY = "sk-bench-key-6e2a9c4f1b"


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


# -- the stand-ins ------------------------------------------------------------------------

# The metrics' Stack dimension and namespace, as a deployed stack names them (the stack's
# prefix, ``infra.naming``): with it set, the handler writes its Embedded Metric Format lines
# as it does in AWS, so the benchmarks time and count them; without it, it writes none.
METRICS_STACK = names_for("messenger-bridge", "prod", "us-east-1").prefix
METRICS = {"METRICS_STACK": METRICS_STACK}

# What the bench's function is given as its four secrets (SSM SecureString in moto).
SECRETS = {
    "app_secret": APP_SECRET,
    "page_access_token": PAGE_TOKEN,
    "verify_token": VERIFY_TOKEN,
    "openai_api_key": OPENAI_KEY,
}
# For child processes: no shared AWS config or credentials file can leak in.
NO_AWS_FILES = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(timeout: float = 30.0) -> Iterator[str]:
    """moto's server with the FIFO fix (``python -m local.aws``) in a child process on
    127.0.0.1, so its work does not share this process's GIL; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "local.aws", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        # The warm bench empties its queue between rounds, faster than SQS's once a minute.
        env={**os.environ, "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto exited with {process.returncode}")
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers: that is all we wait for
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer from moto at {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def harness(
    aws_url: str,
    environ: MutableMapping[str, str] | None = None,
    **options: Any,
) -> Iterator[Any]:
    """``local.harness.Harness`` on the moto server at ``aws_url``, with the bench's secrets
    in SSM as deployed; ``options`` are further ``HarnessOptions``. The function's
    environment goes into ``environ`` (``os.environ`` by default) and back out afterwards."""
    from local.harness import Harness, HarnessOptions

    settings = {**NO_AWS_FILES, **options.pop("settings", {})}
    made = Harness(HarnessOptions(aws_url=aws_url, secrets=SECRETS, settings=settings, **options))
    made.start(environ)
    try:
        yield made
    finally:
        made.stop()


def webhook_body(psid: str, text: str, mid: str | None = None) -> bytes:
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
        self.keep = keep  # False: count only (a long timing loop would fill the memory)
        # Two loggers write here (the log lines and the metric lines), from many threads.
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.bytes += len(text.encode("utf-8"))
            if self.keep:
                self.lines.extend(line for line in text.splitlines() if line.strip())
        return len(text)

    def flush(self) -> None:
        pass


def is_metric_line(line: str) -> bool:
    """An Embedded Metric Format line (its ``_aws`` directive), not a log line."""
    try:
        document = json.loads(line)
    except ValueError:
        return False
    return isinstance(document, dict) and "_aws" in document


def fmt_ms(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"
