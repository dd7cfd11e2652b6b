"""The HTTP plumbing the stand-in servers share, so each of them only says what it answers.

A server binds 127.0.0.1 (port 0 picks a free port), serves in daemon threads and speaks
HTTP/1.1 with keep-alive like the real services, because the real clients (requests, boto3,
httpx inside the openai SDK) pool connections. ``stop()`` closes the open connections too, so
no handler thread is left blocked on an idle keep-alive socket and the port is really free.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

T = TypeVar("T")
F = TypeVar("F")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request, handed to ``LocalServer.handle``."""

    method: str
    path: str
    query: dict[str, str]
    headers: HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


@dataclass
class Response:
    """What to send back; ``Response.json`` covers almost every answer."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(payload).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})


class Reset:
    """Answer marker: drop the connection with a TCP reset instead of answering."""


RESET = Reset()


def random_token(length: int = 22) -> str:
    """An opaque id like the ones real services put in ids and trace headers."""
    return secrets.token_urlsafe(length)[:length]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # stop() closes connections and joins with a deadline itself; never block forever here.
    block_on_close = False
    # socketserver's default backlog of 5 makes bursts of connections wait a second for SYN
    # retransmission; real services accept bursts.
    request_queue_size = 128

    def __init__(self, owner: LocalServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """Turns raw HTTP into ``Request``/``Response`` and back; knows nothing about any API."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # The status line and headers go out in one write and the body in another; with
        # Nagle on, the body waits for the client's delayed ACK (40 ms on Linux) on every
        # keep-alive response that has one. Real services answer at once.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.server.owner._track(self.connection):
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    def handle_one_request(self) -> None:
        if self.server.owner._stopping.is_set():
            self.close_connection = True
            return
        try:
            super().handle_one_request()
        except (ConnectionError, OSError):
            # The client (or stop()) went away mid-request: nothing left to answer.
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.server.owner.name, format % args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=self.headers,
            body=self._read_body(),
        )
        try:
            answer = owner.handle(request)
        except Exception as error:  # a bug in a stand-in must still answer something
            log.exception("%s failed on %s %s", owner.name, request.method, request.path)
            answer = Response.json(500, {"error": {"message": f"stand-in error: {error!r}"}})
        if isinstance(answer, Reset):
            self._reset()
            return
        if owner._stopping.is_set():
            answer.headers.setdefault("Connection", "close")
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if answer.body:
            self.wfile.write(answer.body)
        if answer.headers.get("Connection", "").lower() == "close":
            self.close_connection = True

    def _reset(self) -> None:
        """Close with SO_LINGER 0: the client sees ECONNRESET, as with a dropped connection."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()


class LocalServer:
    """Base of every stand-in: lifecycle, connection tracking and waiting on recordings.

    Subclasses implement ``handle`` and record holding ``self._changed`` (a Condition over a
    re-entrant lock, so predicates may call the public helpers), then ``notify_all()`` it.
    """

    name = "local"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._changed = threading.Condition(threading.RLock())
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self so ``x = Server().start()`` reads."""
        if self._server is not None:
            raise RuntimeError(f"{self.name} is already running at {self.url}")
        self._stopping.clear()
        self._server = _Server(self, self._address)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, drop open connections, free the port; idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        with self._connections_lock:
            open_connections = dict(self._connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for handler_thread in open_connections.values():
            handler_thread.join(max(0.0, deadline - time.monotonic()))
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{self._address[0]}:{self.port}"

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<{type(self).__name__} {where}>"

    # -- for subclasses --------------------------------------------------------------------

    def handle(self, request: Request) -> Response | Reset:
        raise NotImplementedError

    def _pause(self, seconds: float) -> bool:
        """Sleep that stop() cuts short; False when the server is stopping."""
        if seconds > 0:
            self._stopping.wait(seconds)
        return not self._stopping.is_set()

    def _wait_for(
        self, predicate: Callable[[], T], timeout: float, what: str | Callable[[], str] = ""
    ) -> T:
        """Wait until ``predicate()`` is truthy and return it; TimeoutError otherwise.

        Wakes on every recording and also polls, so predicates may look at other state.
        ``what`` (or what it returns, at timeout) goes into the error message.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    said = what() if callable(what) else what
                    detail = f": {said}" if said else ""
                    raise TimeoutError(f"{self.name}: condition not met in {timeout}s{detail}")
                self._changed.wait(min(remaining, 0.05))

    def _track(self, connection: socket.socket) -> bool:
        with self._connections_lock:
            if self._stopping.is_set():
                return False
            self._connections[connection] = threading.current_thread()
            return True

    def _untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.pop(connection, None)


@dataclass
class _Queued(Generic[F]):
    fault: F
    times: int
    applies: Callable[[Any], bool] | None


class FaultQueue(Generic[F]):
    """Queued one-off misbehaviours, taken in order by the requests they apply to."""

    def __init__(self) -> None:
        self._items: list[_Queued[F]] = []
        self._lock = threading.Lock()

    def add(self, fault: F, times: int = 1, applies: Callable[[Any], bool] | None = None) -> None:
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self._lock:
            self._items.append(_Queued(fault, times, applies))

    def take(self, subject: Any = None) -> F | None:
        """The first queued fault that applies to ``subject`` (one use of it), or None."""
        with self._lock:
            for item in self._items:
                if item.applies is None or item.applies(subject):
                    item.times -= 1
                    if item.times == 0:
                        self._items.remove(item)
                    return item.fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(item.times for item in self._items)

    def __iter__(self) -> Iterator[F]:
        with self._lock:
            return iter([item.fault for item in self._items])
