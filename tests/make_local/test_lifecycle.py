"""Starting, stopping and the real-Graph mode of ``python -m local``."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import requests

from handler.replies import WELCOME_OPENING
from handler.signature import sign
from local.graph import MessengerSimulator
from tests.make_local.conftest import FAST, ChatApi, LocalProcess, listening


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_everything_and_frees_every_port(
    start_local: Callable[..., LocalProcess], sig: int
):
    local = start_local(*FAST, "--model-latency", "5")
    api = ChatApi(local.base)
    psid = api.new_user()
    api.send(psid, "a question the model is still thinking about when we stop")
    ports = listening(local.process.pid)
    started = time.monotonic()
    assert local.stop(sig) == 0
    assert time.monotonic() - started < 5
    assert "Stopped: every local server is closed." in local.output
    assert "Traceback" not in local.output
    for host, port in ports:
        assert refused(host, port), f"{host}:{port} still accepts connections"


def test_ctrl_c_during_a_pending_long_poll_still_stops_at_once(
    start_local: Callable[..., LocalProcess],
):
    local = start_local(*FAST)
    api = ChatApi(local.base)
    psid = api.new_user()

    def wait_for_replies() -> None:
        with contextlib.suppress(requests.ConnectionError):  # the server goes away
            requests.get(f"{local.base}/api/poll", params={"psid": psid, "timeout": 30}, timeout=40)

    poll = threading.Thread(target=wait_for_replies, daemon=True)
    poll.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert local.stop() == 0
    assert time.monotonic() - started < 5
    poll.join(5)
    assert not poll.is_alive()


def test_a_taken_port_is_said_plainly(start_local: Callable[..., LocalProcess]):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        local = LocalProcess("--port", str(port), "--echo")
        assert local.process.wait(30) == 2
        local.stop()
    assert f"cannot listen on 127.0.0.1:{port}" in local.output
    assert "--port" in local.output


def test_the_real_graph_mode_needs_the_page_secrets():
    local = LocalProcess("--port", "0", "--graph", "real")
    assert local.process.wait(30) == 2
    local.stop()
    assert "APP_SECRET, PAGE_ACCESS_TOKEN, VERIFY_TOKEN" in local.output


def test_with_real_secrets_a_tunnelled_delivery_is_answered_through_the_graph_api(
    start_local: Callable[..., LocalProcess],
):
    """What a real page does through a tunnel; the 'real' Graph API is a simulator here."""
    secrets = {
        "APP_SECRET": "app-secret-of-a-real-app",
        "PAGE_ACCESS_TOKEN": "EAAG-real-page-token",
        "VERIFY_TOKEN": "my-verify-token",
    }
    with MessengerSimulator(secrets["PAGE_ACCESS_TOKEN"]) as graph:
        real = {**secrets, "GRAPH_API_URL": graph.graph_api_url}
        local = start_local(*FAST, "--log-level", "INFO", env=real)
        assert local.printed("Graph API").startswith(f"REAL, {graph.graph_api_url}")
        assert local.printed("Verify token") == "from VERIFY_TOKEN"

        tunnel = {"X-Forwarded-For": "173.252.127.1", "Host": "abc.example-tunnel.dev"}
        verify = requests.get(
            f"{local.base}/webhook",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "my-verify-token",
                "hub.challenge": "77",
            },
            headers=tunnel,
            timeout=5,
        )
        assert verify.text == "77"

        psid = "2400000000000077"
        body = json.dumps(
            {
                "object": "page",
                "entry": [
                    {
                        "id": graph.page_id,
                        "time": int(time.time() * 1000),
                        "messaging": [
                            {
                                "sender": {"id": psid},
                                "recipient": {"id": graph.page_id},
                                "timestamp": int(time.time() * 1000),
                                "message": {"mid": f"m_{uuid.uuid4().hex}", "text": "hello"},
                            }
                        ],
                    }
                ],
            }
        ).encode()
        signed = {**tunnel, "X-Hub-Signature-256": sign(body, secrets["APP_SECRET"])}
        delivered = requests.post(f"{local.base}/webhook", data=body, headers=signed, timeout=5)
        assert (delivered.status_code, delivered.text) == (200, "EVENT_RECEIVED")
        welcome, reply = graph.wait_for_texts(psid, 2, timeout=10)  # a new person: welcomed
        assert welcome.startswith(WELCOME_OPENING)
        assert reply.startswith("Echo: hello")

        # The chat page would sign as anyone and reply to real people: it is off.
        config = requests.get(f"{local.base}/api/config", timeout=5).json()
        assert config["mode"] == "real"
        refused_send = requests.post(
            f"{local.base}/api/send", json={"psid": psid, "text": "x"}, timeout=5
        )
        assert refused_send.status_code == 409
        # A real page's Messenger profile is `pulumi up`'s to set: make local leaves it alone.
        assert requests.get(f"{local.base}/api/profile", timeout=5).status_code == 409
        assert graph.profile_calls == []

    local.stop()
    assert "reply.sent" in local.output  # the handler's INFO lines, read for secrets:
    assert not [value for value in secrets.values() if value in local.output]
