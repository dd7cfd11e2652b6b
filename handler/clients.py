"""AWS and HTTP clients, created once per container and reused by every invocation.

boto3 finds its endpoints through its own variables (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_DYNAMODB``...), which is how local runs and tests redirect it.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config

# Short timeouts: the webhook must answer Facebook within seconds, whatever AWS does.
_AWS_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"max_attempts": 3, "mode": "standard"},
)
# The webhook's own calls after the cold start (the hand-off to the queue, a takeover's
# pause): Meta wants the 200 within 5 s, so two tries (botocore's max_attempts counts the
# retries) of at most 2.5 s each, then a 5xx and Meta's redelivery (deduplicated) rather
# than an answer that comes too late.
_WEBHOOK_CONFIG = Config(
    connect_timeout=1,
    read_timeout=1.5,
    retries={"max_attempts": 1, "mode": "standard"},
)


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> Any:
    """One boto3 Session for every client: each new Session loads botocore's endpoint rules,
    partitions and defaults again (about 40 ms of the cold start, measured by make bench)."""
    return boto3.session.Session()


@functools.cache
def aws(service: str) -> Any:
    with _SESSION_LOCK:  # a Session is not thread-safe; the clients it makes are
        return _session().client(service, config=_AWS_CONFIG)


@functools.cache
def webhook_aws(service: str) -> Any:
    """A client for the webhook's calls, bounded to fit in Meta's 5 s (``_WEBHOOK_CONFIG``)."""
    with _SESSION_LOCK:
        return _session().client(service, config=_WEBHOOK_CONFIG)


@functools.cache
def http_session() -> Any:
    """One ``requests`` session per container, imported only by the worker."""
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = "messenger-bridge/1.0"
    return session


def reset() -> None:
    """Forget every client, so new settings or endpoints take effect (local runs, tests)."""
    aws.cache_clear()
    webhook_aws.cache_clear()
    _session.cache_clear()
    http_session.cache_clear()
