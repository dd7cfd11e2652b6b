"""The shared plumbing: lifecycle, freeing the port, dropping connections, fault queues."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from local import FakeOpenAI, MessengerSimulator
from local._http import FaultQueue, LocalServer, Request, Response


class Hello(LocalServer):
    name = "hello"

    def handle(self, request: Request) -> Response:
        return Response.json(200, {"path": request.path, "query": request.query})


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_start_binds_a_free_loopback_port_and_answers() -> None:
    with Hello() as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0
        answer = requests.get(f"{server.url}/a/b?x=1", timeout=5).json()
        assert answer == {"path": "/a/b", "query": {"x": "1"}}


def test_stop_frees_the_port() -> None:
    server = Hello().start()
    port = server.port
    requests.get(server.url, timeout=5)
    server.stop()
    assert refused(port)
    with socket.socket() as again:  # and it can be bound at once
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_stop_closes_idle_keep_alive_connections_quickly() -> None:
    server = Hello().start()
    url = server.url
    with requests.Session() as session:
        session.get(url, timeout=5)  # leaves a pooled keep-alive connection open
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.5
        with pytest.raises(requests.ConnectionError):
            session.get(url, timeout=2)


@pytest.mark.parametrize("make", [MessengerSimulator, FakeOpenAI])
def test_every_server_stops_and_frees_its_port(make: type) -> None:
    server = make()
    with server:
        port = server.port
    assert not server.running
    assert refused(port)


def test_stop_cuts_a_stalled_answer_short() -> None:
    model = FakeOpenAI().start()
    model.delay_next(30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.post(
                f"{model.base_url}/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                timeout=10,
            )
        except requests.RequestException as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    model.wait_for(lambda: model.requests)
    started = time.monotonic()
    model.stop()
    caller.join(5)
    assert time.monotonic() - started < 3
    assert errors and isinstance(errors[0], requests.ConnectionError)


def test_lifecycle_rules() -> None:
    server = Hello()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    server.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
        assert "127.0.0.1" in repr(server)
    finally:
        server.stop()
    server.stop()  # idempotent
    assert "stopped" in repr(server)
    with server:  # and it can start again
        assert requests.get(server.url, timeout=5).status_code == 200


def test_fixed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Hello(port=port) as server:
        assert server.port == port


def test_a_bug_in_a_stand_in_still_answers_500() -> None:
    class Broken(LocalServer):
        def handle(self, request: Request) -> Response:
            raise KeyError("oops")

    with Broken() as server:
        answer = requests.get(server.url, timeout=5)
        assert answer.status_code == 500
        assert "oops" in answer.json()["error"]["message"]


def test_chunked_request_bodies_are_read() -> None:
    class Echo(LocalServer):
        def handle(self, request: Request) -> Response:
            return Response(200, request.body)

    with Echo() as server:
        body = requests.post(server.url, data=iter([b"ab", b"cd", b"e"]), timeout=5).content
        assert body == b"abcde"


def test_fault_queue_order_filter_and_times() -> None:
    queue: FaultQueue[str] = FaultQueue()
    queue.add("only-b", applies=lambda subject: subject == "b")
    queue.add("twice", times=2)
    assert len(queue) == 3
    assert list(queue) == ["only-b", "twice"]
    assert queue.take("a") == "twice"
    assert queue.take("b") == "only-b"
    assert queue.take("b") == "twice"
    assert queue.take("b") is None
    with pytest.raises(ValueError):
        queue.add("never", times=0)
    queue.add("x")
    queue.clear()
    assert len(queue) == 0
