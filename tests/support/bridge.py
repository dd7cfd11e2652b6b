"""Drives ``handler.app.lambda_handler`` as Facebook and Lambda would, over real loopback HTTP.

The stand-ins are wired by ``local.harness`` (the same wiring as ``make local`` and the
benchmarks): storage, the FIFO queue and secrets in a moto server, the model a fake OpenAI
server, the Send API a Messenger simulator, and the queue poller that plays Lambda's event
source mapping calls the same handler, so every request between the parts is a real one.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from handler import app, metrics, replies, schema, signature
from handler.logs import JsonFormatter
from local.harness import FUNCTION_NAME, Harness, HarnessOptions
from local.model import FakeOpenAI

PAGE_ID = "100000000000001"
FUNCTION = FUNCTION_NAME
APP_SECRET = "app-secret-7f3a9c2b1e"
PAGE_TOKEN = "EAAPageToken-5d8e2f1a9b7c"
VERIFY_TOKEN = "verify-token-3c6e9a1d4f"
OPENAI_KEY = "sk-test-key-8b1d4e7a2c"
SECRET_VALUES = (APP_SECRET, PAGE_TOKEN, VERIFY_TOKEN, OPENAI_KEY)
ADMIN = "1000000000009999"
# A photo and a voice message as Messenger's CDN serves them (their first bytes are real).
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x42" * 3000
VOICE = b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 40_000


class LogLines(logging.Handler):
    """Every line the handler logs, formatted exactly as it is written."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lock_lines:
            self.lines.append(line)

    def events(self) -> list[dict[str, Any]]:
        with self._lock_lines:
            return [json.loads(line) for line in self.lines]

    def named(self, message: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["message"] == message]


class MetricLines(logging.Handler):
    """Every metric line the handler writes (``handler.metrics``), parsed."""

    def __init__(self) -> None:
        super().__init__()
        self.documents: list[dict[str, Any]] = []
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_lines:
            self.documents.append(json.loads(record.getMessage()))

    def total(self, name: str, kind: str | None = None) -> float:
        """The sum of ``name`` over every line (of that failure kind, if given)."""
        with self._lock_lines:
            documents = list(self.documents)
        total = 0.0
        for document in documents:
            if name in document and document.get("Kind") == kind:
                value = document[name]
                total += sum(value) if isinstance(value, list) else value
        return total

    def values(self, name: str) -> list[float]:
        """Every value of ``name`` (latencies), in the order written."""
        with self._lock_lines:
            documents = list(self.documents)
        found: list[float] = []
        for document in documents:
            if name in document and "Kind" not in document:
                value = document[name]
                found += value if isinstance(value, list) else [value]
        return found


@dataclass
class Context:
    """The parts of Lambda's context object that the handler reads."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = FUNCTION
    timeout_ms: int = 120_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


def function_url_event(
    method: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    path: str = "/",
    base64_body: bool = True,
) -> dict[str, Any]:
    """A Lambda Function URL event (payload format 2.0), as AWS builds it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        **({"queryStringParameters": query} if query else {}),
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
            "requestId": str(uuid.uuid4()),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "isBase64Encoded": base64_body,
    }


def messaging_text(psid: str, text: str, mid: str | None = None) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": mid or f"m_{uuid.uuid4().hex}", "text": text},
    }


def messaging_postback(psid: str, payload: str, title: str = "") -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": int(time.time() * 1000),
        "postback": {"mid": f"m_{uuid.uuid4().hex}", "payload": payload, "title": title},
    }


def messaging_attachment(psid: str, kind: str, url: str, **message: Any) -> dict[str, Any]:
    """A photo, voice message or file from ``psid``, hosted at ``url`` (Messenger's CDN)."""
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": int(time.time() * 1000),
        "message": {
            "mid": f"m_{uuid.uuid4().hex}",
            "attachments": [{"type": kind, "payload": {"url": url}}],
            **message,
        },
    }


def messaging_echo(
    psid: str, text: str, app_id: int | None = 263902037430900, metadata: str | None = None
) -> dict[str, Any]:
    """The echo of a message the page sent to ``psid``: by default one typed by hand in the
    Page Inbox (its app id, no metadata)."""
    message: dict[str, Any] = {"is_echo": True, "mid": f"m_{uuid.uuid4().hex}", "text": text}
    if app_id is not None:
        message["app_id"] = app_id
    if metadata is not None:
        message["metadata"] = metadata
    return {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": psid},
        "timestamp": int(time.time() * 1000),
        "message": message,
    }


def webhook_body(*messaging: dict[str, Any], entries: int = 1) -> bytes:
    """A page webhook delivery; ``entries`` spreads the items over that many entries."""
    items = list(messaging)
    chunks = [items[i::entries] for i in range(entries)]
    return json.dumps(
        {
            "object": "page",
            "entry": [
                {"id": PAGE_ID, "time": int(time.time() * 1000), "messaging": chunk}
                for chunk in chunks
            ],
        }
    ).encode()


SECRETS = {
    "app_secret": APP_SECRET,
    "page_access_token": PAGE_TOKEN,
    "verify_token": VERIFY_TOKEN,
    "openai_api_key": OPENAI_KEY,
}
# Settings every test bridge has unless it says otherwise: quick model failures and retries.
METRICS_STACK = "messenger-bridge-test-0a1b2c"
TEST_SETTINGS = {
    "METRICS_STACK": METRICS_STACK,  # metric lines written, as in a deployed stack
    "OPENAI_MAX_RETRIES": "0",
    "OPENAI_TIMEOUT_SECONDS": "5",
    "DAILY_LIMIT": "3",
    "ADMIN_PSIDS": ADMIN,
}


class Bridge:
    """The whole bridge on loopback, with helpers that read like what a person does.

    ``env`` holds handler variables; ``queue`` options of the harness (``batch_size``,
    ``max_receives``, ``visibility_timeout``, ``retry_delay_seconds``, ``function_timeout``).
    """

    def __init__(
        self,
        moto_url: str,
        env: dict[str, str],
        dynamodb_url: str | None = None,
        **queue: Any,
    ) -> None:
        queue.setdefault("visibility_timeout", 2)
        queue.setdefault("retry_delay_seconds", 0)
        self.harness = Harness(
            HarnessOptions(
                aws_url=moto_url,
                dynamodb_url=dynamodb_url,
                secrets=SECRETS,
                settings={**TEST_SETTINGS, **env},
                model=FakeOpenAI(api_key=OPENAI_KEY, answer="The answer is 42.").start(),
                **queue,
            )
        )
        self.logs = LogLines()
        self.metric_lines = MetricLines()
        logging.getLogger("bridge").addHandler(self.logs)
        logging.getLogger(metrics.LOGGER).addHandler(self.metric_lines)
        try:
            self.harness.start()
        except BaseException:
            logging.getLogger("bridge").removeHandler(self.logs)
            logging.getLogger(metrics.LOGGER).removeHandler(self.metric_lines)
            raise
        assert self.harness.graph is not None and self.harness.model is not None
        assert self.harness.poller is not None
        self.graph = self.harness.graph
        self.model = self.harness.model
        self.poller = self.harness.poller
        self.dynamodb = self.harness.dynamodb
        self.sqs = self.harness.sqs
        self.table = self.harness.table

    def close(self) -> None:
        logging.getLogger("bridge").removeHandler(self.logs)
        logging.getLogger(metrics.LOGGER).removeHandler(self.metric_lines)
        model = self.model
        self.harness.stop()
        model.stop()

    # -- what Facebook does ---------------------------------------------------------------

    def deliver(self, body: bytes, signed: bool = True, **event: Any) -> dict[str, Any]:
        """POST a webhook delivery to the function, as Facebook does, and return the response."""
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["X-Hub-Signature-256"] = signature.sign(body, APP_SECRET)
        return app.lambda_handler(function_url_event("POST", body, headers, **event), Context())

    def say(self, psid: str, text: str, mid: str | None = None) -> dict[str, Any]:
        response = self.deliver(webhook_body(messaging_text(psid, text, mid)))
        self.settle()
        return response

    def tap(self, psid: str, payload: str) -> dict[str, Any]:
        response = self.deliver(webhook_body(messaging_postback(psid, payload)))
        self.settle()
        return response

    def settle(self, timeout: float = 30.0) -> None:
        """Until the queue is empty: every message answered or on the dead-letter queue."""
        self.poller.wait_idle(timeout)

    def subscribe_echoes(self) -> None:
        """The page subscribed to ``message_echoes``: from now on the simulator delivers the
        echo of every message the page sends to the webhook, as Meta does."""
        self.graph.deliver_echoes(lambda body: self.deliver(body))

    def reply_as_page(self, psid: str, text: str) -> None:
        """Someone of the page answers ``psid`` by hand in the Page Inbox; its echo reaches the
        webhook and the queue has taken it all in."""
        self.subscribe_echoes()
        self.graph.reply_as_page(psid, text)
        self.graph.wait_echoes()
        self.settle()

    def emails(self) -> list[dict[str, str]]:
        """What the owner's SNS topic published since the last look: ``subject``, ``body``."""
        return self.harness.owner_mail()

    # -- what we look at ------------------------------------------------------------------

    def texts_to(self, psid: str, welcome: bool = False) -> list[str]:
        """The texts delivered to ``psid``. A new person's first message that is not Get
        Started is answered after the welcome (``user.welcomed``): that welcome, their first
        message from the page, is left out unless ``welcome``; any other stays, so a second
        welcome would show. Tests of the welcome itself say ``welcome=True``."""
        messages = self.graph.messages_to(psid)
        first = str(messages[0].get("text", "")) if messages else ""
        if not welcome and first.startswith(replies.WELCOME_OPENING) and self.welcomed(psid):
            messages = messages[1:]
        return [m["text"] for m in messages if isinstance(m.get("text"), str)]

    def welcomed(self, psid: str) -> bool:
        """Whether the handler sent ``psid`` the welcome before an answer."""
        return any(line.get("psid") == psid for line in self.logs.named("user.welcomed"))

    def used_today(self, psid: str) -> int:
        from datetime import UTC, datetime

        item = self.dynamodb.get_item(
            TableName=self.table,
            Key=schema.counter_key(psid, datetime.now(UTC).date().isoformat()),
            ConsistentRead=True,
        ).get("Item")
        return int(item["count"]["N"]) if item and "count" in item else 0

    def dead_letters(self) -> list[dict[str, Any]]:
        """The events on the dead-letter queue, parsed."""
        return [json.loads(m["Body"]) for m in self.harness.dead_letters()]

    def items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.table, ConsistentRead=True)["Items"]


def bridge_on(
    engine: str, request: pytest.FixtureRequest, moto_url: str, env: dict[str, str], **queue: Any
) -> Bridge:
    """A bridge whose table is in moto, or (``engine="dynamodb-local"``) in DynamoDB Local,
    AWS's own engine, whose conditional writes and transactions are atomic under concurrency
    as DynamoDB's are; moto's are not (two can pass one condition). Races need DynamoDB
    Local."""
    if engine == "moto":
        return Bridge(moto_url, env, **queue)
    if engine != "dynamodb-local":
        raise ValueError(f"unknown engine {engine!r}")
    local = request.getfixturevalue("dynamodb_local")
    return Bridge(moto_url, env, dynamodb_url=local.url, **queue)
