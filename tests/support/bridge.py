"""Drives ``handler.app.lambda_handler`` as Facebook and Lambda would, over real loopback HTTP.

Storage and secrets live in a moto server, the model is a fake OpenAI server, the Send API a
Messenger simulator, and the self-invocation goes through a Lambda Invoke stand-in that calls
the same handler, so every request between the parts is a real one.
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

import boto3
import pytest

from handler import app, signature
from handler.logs import JsonFormatter
from local.graph import MessengerSimulator
from local.invoke import LambdaInvokeStandIn
from local.model import FakeOpenAI
from tests.conftest import new_table

PAGE_ID = "100000000000001"
FUNCTION = "messenger-bridge-test"
APP_SECRET = "app-secret-7f3a9c2b1e"
PAGE_TOKEN = "EAAPageToken-5d8e2f1a9b7c"
VERIFY_TOKEN = "verify-token-3c6e9a1d4f"
OPENAI_KEY = "sk-test-key-8b1d4e7a2c"
SECRET_VALUES = (APP_SECRET, PAGE_TOKEN, VERIFY_TOKEN, OPENAI_KEY)
ADMIN = "1000000000009999"


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


class Bridge:
    """The whole bridge on loopback, with helpers that read like what a person does."""

    def __init__(self, moto_url: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
        self.graph = MessengerSimulator(access_token=PAGE_TOKEN).start()
        self.model = FakeOpenAI(api_key=OPENAI_KEY, answer="The answer is 42.").start()
        self.invoke = LambdaInvokeStandIn({FUNCTION: app.lambda_handler}, retry_delay=0.05)
        self.invoke.start()
        self.dynamodb, self.table = new_table(moto_url)
        self._store_secrets(moto_url)
        self.sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
        self.failure_queue = self.sqs.create_queue(QueueName=f"{self.table}-failures")["QueueUrl"]
        self._parked: list[dict[str, Any]] = []
        settings = {
            "TABLE_NAME": self.table,
            "GRAPH_API_URL": self.graph.graph_api_url,
            "OPENAI_BASE_URL": f"{self.model.url}/v1",
            "OPENAI_MAX_RETRIES": "0",
            "OPENAI_TIMEOUT_SECONDS": "5",
            "DAILY_LIMIT": "3",
            "ADMIN_PSIDS": ADMIN,
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
            "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
            "AWS_ENDPOINT_URL_SSM": moto_url,
            "AWS_ENDPOINT_URL_SQS": moto_url,
            "FAILURE_QUEUE_URL": self.failure_queue,
            "AWS_ENDPOINT_URL_LAMBDA": self.invoke.url,
            "APP_SECRET_PARAMETER": f"/{self.table}/app-secret",
            "PAGE_ACCESS_TOKEN_PARAMETER": f"/{self.table}/page-access-token",
            "VERIFY_TOKEN_PARAMETER": f"/{self.table}/verify-token",
            "OPENAI_API_KEY_PARAMETER": f"/{self.table}/openai-api-key",
            **env,
        }
        for name in ("OPENAI_API_KEY", "APP_SECRET", "PAGE_ACCESS_TOKEN", "VERIFY_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        self.logs = LogLines()
        logging.getLogger("bridge").addHandler(self.logs)
        app.reset()

    def _store_secrets(self, moto_url: str) -> None:
        ssm = boto3.client("ssm", endpoint_url=moto_url, region_name="us-east-1")
        names = ("app-secret", "page-access-token", "verify-token", "openai-api-key")
        for name, value in zip(names, SECRET_VALUES, strict=True):
            ssm.put_parameter(
                Name=f"/{self.table}/{name}", Value=value, Type="SecureString", Overwrite=True
            )

    def close(self) -> None:
        logging.getLogger("bridge").removeHandler(self.logs)
        self.invoke.stop()
        self.model.stop()
        self.graph.stop()
        app.reset()

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

    def settle(self) -> None:
        self.invoke.wait_idle(timeout=30)

    # -- what we look at ------------------------------------------------------------------

    def texts_to(self, psid: str) -> list[str]:
        return self.graph.texts_to(psid)

    def used_today(self, psid: str) -> int:
        from datetime import UTC, datetime

        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"USER#{psid}"}, "sk": {"S": f"DAY#{datetime.now(UTC).date()}"}},
        ).get("Item")
        return int(item["count"]["N"]) if item else 0

    def parked(self) -> list[dict[str, Any]]:
        """Records workers sent to the failure queue (messages they gave up on), read once
        from the queue and kept."""
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.failure_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return list(self._parked)
            for message in messages:
                self._parked.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.failure_queue, ReceiptHandle=message["ReceiptHandle"]
                )

    def failure_records(self) -> list[dict[str, Any]]:
        """Everything on the failure queue: Lambda's records of invocations whose retries
        ran out, then the workers' records of messages they gave up on."""
        return [f.record for f in self.invoke.failures] + self.parked()

    def items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.table)["Items"]


def bridge_on(
    engine: str,
    request: pytest.FixtureRequest,
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> Bridge:
    """A bridge whose table is in moto, or (``engine="dynamodb-local"``) in DynamoDB Local,
    AWS's own engine, whose conditional writes are atomic under concurrency as DynamoDB's
    are; moto's are not (two can pass one condition). Races need DynamoDB Local."""
    if engine == "moto":
        return Bridge(moto_url, monkeypatch, env)
    if engine != "dynamodb-local":
        raise ValueError(f"unknown engine {engine!r}")
    local = request.getfixturevalue("dynamodb_local")
    client, table = new_table(local.url)
    bridge = Bridge(
        moto_url, monkeypatch, {"TABLE_NAME": table, "AWS_ENDPOINT_URL_DYNAMODB": local.url, **env}
    )
    bridge.dynamodb, bridge.table = client, table
    return bridge
