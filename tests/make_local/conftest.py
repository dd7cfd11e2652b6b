"""``python -m local`` as ``make local`` runs it: a child process, its printout, its API.

Each test talks to the process over HTTP only, so what is tested is what a person gets:
the printed addresses, the page's endpoints, the signed webhook, and a clean Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
# What a developer's shell may hold that would change the run: tests start from nothing.
CLEARED = {
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "GRAPH_API_URL",
    "APP_SECRET",
    "PAGE_ACCESS_TOKEN",
    "VERIFY_TOKEN",
    "ADMIN_PSIDS",
    "DAILY_LIMIT",
    "TABLE_NAME",
    "LOCAL_PORT",
    "LOG_LEVEL",
    "ICE_BREAKERS",
    "GREETING",
    "GREETINGS",
    "MENU_LINKS",
    "WELCOME_MESSAGE",
}
OWNER = "1000000000000001"


class LocalProcess:
    """One ``python -m local`` child; its output is read continuously so it never blocks."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        clean = {
            k: v for k, v in os.environ.items() if k not in CLEARED and not k.endswith("_PARAMETER")
        }
        clean.update(env or {})
        clean["PYTHONUNBUFFERED"] = "1"
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local", *args],
            cwd=ROOT,
            env=clean,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 30.0) -> LocalProcess:
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.kill()
            raise AssertionError(f"python -m local did not start:\n{self.output}")
        return self

    def printed(self, label: str) -> str:
        """The value printed after ``label:`` at start, e.g. ``printed("Chat page")``."""
        for line in self.lines:
            match = re.match(rf"\s*{re.escape(label)}:\s+(.*)$", line)
            if match:
                return match.group(1).strip()
        raise AssertionError(f"{label!r} was not printed:\n{self.output}")

    @property
    def url(self) -> str:
        return self.printed("Chat page")

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    @property
    def verify_token(self) -> str:
        return self.printed("Verify token").split()[0]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"python -m local ignored signal {sig}:\n{self.output}") from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def running_local(*args: str, env: dict[str, str] | None = None) -> Iterator[LocalProcess]:
    local = LocalProcess(*args, env=env)
    try:
        yield local.wait_ready()
    finally:
        with contextlib.suppress(AssertionError):
            local.stop()
        local.kill()


FAST = ("--port", "0", "--echo", "--model-latency", "0", "--log-level", "WARNING")


@pytest.fixture
def start_local() -> Iterator[Callable[..., LocalProcess]]:
    """Start ``python -m local`` with arguments (ready when returned); stopped at the end."""
    stack = contextlib.ExitStack()

    def start(*args: str, env: dict[str, str] | None = None) -> LocalProcess:
        return stack.enter_context(running_local(*args, env=env))

    with stack:
        yield start


@pytest.fixture(scope="module")
def local() -> Iterator[LocalProcess]:
    """One shared run for a module: daily limit 2, offline echo, no model latency."""
    with running_local(*FAST, "--daily-limit", "2") as process:
        yield process


# -- the page's API -------------------------------------------------------------------------


class ChatApi:
    """What the chat page does, as plain HTTP calls."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(f"{self.base}/api/{path}", params=params, timeout=40)
        answer.raise_for_status()
        return answer.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        answer = self.http.post(f"{self.base}/api/{path}", json=body, timeout=40)
        answer.raise_for_status()
        return answer.json()

    def new_user(self) -> str:
        return self.post("users", {})["psid"]

    def send(self, psid: str, text: str) -> dict[str, Any]:
        return self.post("send", {"psid": psid, "text": text})

    def tap(self, psid: str, payload: str, title: str = "", kind: str = "postback") -> Any:
        return self.post("tap", {"psid": psid, "payload": payload, "title": title, "kind": kind})

    def user(self, psid: str) -> dict[str, Any]:
        return next(u for u in self.get("users")["users"] if u["psid"] == psid)

    def messages(self, psid: str) -> list[dict[str, Any]]:
        items = self.get("poll", psid=psid, after=0, timeout=0)["items"]
        return [item["message"] for item in items if item["kind"] == "message"]

    def texts(self, psid: str) -> list[str]:
        return [m["text"] for m in self.messages(psid) if "text" in m]

    def wait_messages(self, psid: str, count: int, timeout: float = 10.0) -> list[dict]:
        """Long-polls like the page until ``psid`` got ``count`` messages; returns them all."""
        deadline = time.monotonic() + timeout
        seq, found = 0, []
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{psid} got {found!r}, wanted {count} messages")
            answer = self.get("poll", psid=psid, after=seq, timeout=min(left, 5))
            seq = answer["seq"]
            found += [i["message"] for i in answer["items"] if i["kind"] == "message"]
        return found

    def wait_texts(self, psid: str, count: int, timeout: float = 10.0) -> list[str]:
        return [m.get("text", "") for m in self.wait_messages(psid, count, timeout)]


@pytest.fixture
def api(local: LocalProcess) -> ChatApi:
    return ChatApi(local.base)


# -- what the process listens on --------------------------------------------------------------


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(raw[::-1])
    else:  # four little-endian 32-bit words
        ip = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    return str(ip), int(port, 16)


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses ``pid`` listens on (Linux /proc), threads included."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.add(_address(fields[1]))
    return found
