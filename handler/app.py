"""The Lambda entry point: one function for the webhook, the keep-warm ping and the worker.

Only what the webhook needs is imported here; the worker's modules (openai, requests) load
on its first event.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from . import clients
from .dispatch import DispatchError, dispatch, invoke_drain
from .events import classify, http_request, work_request
from .inbox import Inbox
from .logs import get_logger, log, log_context
from .secrets import Secrets, load_secrets
from .settings import Settings, load_settings
from .webhook import respond, route

MIN_REMAINING = timedelta(seconds=30)


class Runtime:
    """What one container keeps between invocations: settings, secrets, clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secrets: Secrets | None = None

    def secrets(self) -> Secrets:
        if self._secrets is None:
            self._secrets = load_secrets(self.settings)
        return self._secrets

    @functools.cached_property
    def inbox(self) -> Inbox:
        return Inbox(clients.aws("dynamodb"), self.settings.table_name)

    @functools.cached_property
    def worker(self) -> Any:
        from .failures import FailureQueue
        from .llm import complete
        from .messenger import Messenger
        from .store import Store
        from .worker import RetryLater, Worker

        secrets = self.secrets()
        queue = FailureQueue(clients.aws("sqs"), self.settings.failure_queue_url)

        def hand_on(psid: str) -> None:
            try:
                invoke_drain(psid, [])
            except DispatchError as error:
                raise RetryLater(f"hand-on: {error}") from None

        return Worker(
            settings=self.settings,
            store=Store(clients.aws("dynamodb"), self.settings.table_name),
            inbox=self.inbox,
            messenger=Messenger(
                clients.http_session(), self.settings.graph_api_url, secrets.page_access_token
            ),
            ask_model=lambda messages, deadline: complete(
                self.settings, secrets.openai_api_key, messages, deadline
            ),
            hand_on=hand_on,
            park=queue.park,
        )


@functools.cache
def runtime() -> Runtime:
    settings = load_settings()
    get_logger(settings.log_level)
    return Runtime(settings)


def reset() -> None:
    """Start over as a new container would: re-read settings and secrets, new clients."""
    runtime.cache_clear()
    clients.reset()


def _remaining(context: Any) -> timedelta:
    """How long this invocation has until the function's own timeout."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    millis = remaining() if callable(remaining) else 0
    return max(MIN_REMAINING, timedelta(milliseconds=millis))


def _http(event: dict[str, Any]) -> dict[str, Any]:
    request = http_request(event)
    try:
        return route(request, runtime().secrets, lambda events: dispatch(runtime().inbox, events))
    except DispatchError as error:
        log.error("webhook.handoff_failed", why=str(error))
        return respond(503, "Service Unavailable")


def lambda_handler(event: Any, context: Any) -> Any:
    kind = classify(event)
    request_id = getattr(context, "aws_request_id", None)
    with log_context(request_id=request_id, event_kind=kind):
        if kind == "http":
            return _http(event)
        if kind == "keep_warm":
            log.info("keep_warm")
            return {"warm": True}
        if kind == "work":
            work = work_request(event)
            remaining = _remaining(context)
            runtime().worker.run(work.drain, remaining, work.events, request_id or "", work.replay)
            return {"drained": len(work.drain), "events": len(work.events)}
        log.warning("event.unknown")
        return None
