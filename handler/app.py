"""The Lambda entry point: one function for the webhook, the keep-warm ping and the queue.

Only what the webhook needs is imported here; the worker's modules (openai, requests, the
media downloads, budgets and owner alerts) load on its first batch.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from typing import Any

from . import clients, metrics
from .events import Inbound, classify, http_request
from .handoff import Handoff, HandoffError
from .logs import get_logger, log, log_context
from .secrets import Secrets, load_parameters
from .settings import Settings, load_settings
from .webhook import respond, route

# What a batch is given when the context cannot say (a local call without one).
DEFAULT_REMAINING_MS = 60_000
# handler.pages' paths, known here so that the webhook's cold start does not import it.
PAGE_PATHS = frozenset({"/privacy", "/data-deletion"})

_cold = True  # no invocation yet in this container


class Runtime:
    """What one container keeps between invocations: settings, secrets, clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secrets: Secrets | None = None

    def secrets(self) -> Secrets:
        if self._secrets is None:
            self._secrets, texts = load_parameters(self.settings)
            if texts:  # the prompt, privacy page, welcome, ice breakers: into the settings
                self.settings = dataclasses.replace(self.settings, **texts)
        return self._secrets

    @property
    def settings_with_texts(self) -> Settings:
        """The settings once the texts kept in parameters (prompt, privacy page) are in."""
        self.secrets()
        return self.settings

    def deletions(self) -> Any:
        """Meta's data-deletion requests: rare, so their clients are made on the first."""
        from .deletion import DeletionRequests, graph_psid_finder
        from .store import Store

        settings, secrets = self.settings_with_texts, self.secrets()
        dynamodb = clients.aws("dynamodb")
        finder = graph_psid_finder(
            clients.http_session(),
            settings.graph_api_url,
            settings.app_id,
            secrets.app_secret,
            settings.page_id,
        )
        store = Store(dynamodb, settings.table_name)
        forget = functools.partial(store.forget_user, keep_pause=True)  # as the person's /delete
        return DeletionRequests(dynamodb, settings.table_name, forget, finder)

    @functools.cached_property
    def handoff(self) -> Handoff:
        return Handoff(clients.webhook_aws("sqs"), self.settings.queue_url)

    @functools.cached_property
    def pauses(self) -> Any:
        """The takeovers' pauses: made on the first reply by hand (an echo is rare)."""
        from .takeover import Pauses

        return Pauses(clients.webhook_aws("dynamodb"), self.settings.table_name)

    @functools.cached_property
    def mailer(self) -> Any:
        """The owner's e-mail: the SNS client is made on the first e-mail."""
        from .mail import Mailer

        return Mailer(lambda: clients.aws("sns"), self.settings.owner_topic_arn)

    def hand_off(self, events: list[Inbound]) -> None:
        """A reply by hand pauses the bot for its person at once; then every event goes to
        the queue. ``HandoffError`` unless all of it was done: Facebook delivers again."""
        if any(event.kind == "echo" for event in events):
            from .takeover import take_over

            settings = self.settings
            try:
                events = take_over(
                    events,
                    self.pauses,
                    settings.human_pause_minutes,
                    settings.admin_psids,
                    int(time.time()),
                )
            except Exception as error:  # botocore raises many types; all mean "not paused"
                raise HandoffError(f"pause: {type(error).__name__}") from None
        if events:
            self.handoff.enqueue(events)

    def mail_overdue(self) -> None:
        """Notices that have waited an hour for an owner: by e-mail."""
        from .notices import Notices
        from .store import Store

        store = Store(clients.aws("dynamodb"), self.settings.table_name)
        Notices(self.settings, store, None, self.mailer).mail_overdue()

    @functools.cached_property
    def bot(self) -> Any:
        """The conversation rules with their clients, wired once per container."""
        from .bot import Bot
        from .claims import Claims
        from .llm import complete, transcribe
        from .media import download
        from .messenger import Messenger
        from .store import Store

        secrets = self.secrets()  # first: it may bring the prompt, the welcome into the settings
        settings = self.settings
        dynamodb = clients.aws("dynamodb")
        key = secrets.openai_api_key
        return Bot(
            settings=settings,
            store=Store(dynamodb, settings.table_name),
            claims=Claims(dynamodb, settings.table_name),
            messenger=Messenger(
                clients.http_session(), settings.graph_api_url, secrets.page_access_token
            ),
            ask_model=lambda messages, deadline: complete(settings, key, messages, deadline),
            transcribe=lambda audio, name, kind, deadline: transcribe(
                settings, key, audio, name, kind, deadline
            ),
            fetch=lambda url, most, accepted, deadline: download(
                clients.http_session(), url, most, accepted, deadline
            ),
            mailer=self.mailer,
        )

    def work(self, records: list[dict[str, Any]], remaining_ms: int) -> dict[str, Any]:
        """One batch from the queue: Lambda's partial batch response."""
        from .batch import Limits, Visibility, process

        settings = self.settings
        limits = Limits(settings.max_receives, settings.retry_delay_seconds)
        visibility = Visibility(clients.aws("sqs"), settings.queue_url)
        return process(records, self.bot.handle, remaining_ms, limits, visibility)


@functools.cache
def runtime() -> Runtime:
    settings = load_settings()
    get_logger(settings.log_level)
    return Runtime(settings)


def reset() -> None:
    """Start over as a new container would: re-read settings and secrets, new clients."""
    global _cold
    _cold = True
    runtime.cache_clear()
    clients.reset()
    # Loaded by a worker:
    for name in ("handler.llm", "handler.budget", "handler.alerts", "handler.notices"):
        module = sys.modules.get(name)
        forget = getattr(module, "forget_container_state", None)
        if forget is not None:
            forget()


def _remaining_ms(context: Any) -> int:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(remaining()) if callable(remaining) else DEFAULT_REMAINING_MS


def _http(event: dict[str, Any]) -> dict[str, Any]:
    request = http_request(event)
    if request.path.rstrip("/") in PAGE_PATHS:
        from . import pages

        rt = runtime()
        return pages.route(
            request, lambda: rt.settings_with_texts, lambda: rt.secrets().app_secret, rt.deletions
        )
    try:
        rt = runtime()
        return route(request, rt.secrets, rt.hand_off, rt.settings.app_id)
    except HandoffError as error:
        log.error("webhook.handoff_failed", why=str(error))
        metrics.add("WebhookErrors")
        return respond(503, "Service Unavailable")
    except Exception:
        metrics.add("WebhookErrors")  # Lambda answers the Function URL 502
        raise


def _mail_overdue() -> None:
    """The keep-warm ping e-mails the notices that waited an hour for an owner: on a page
    nobody writes to, nothing else would, and the container that kept them may not be the one
    pinged. It looks (one conditional write, one read) at most every few minutes across all
    containers, and only when there are owners and a topic; it touches nothing otherwise."""
    try:
        settings = runtime().settings
        if settings.admin_psids and settings.owner_topic_arn:
            runtime().mail_overdue()
    except Exception:  # the ping must not fail (nor count as the function's error)
        log.exception("notice.mail_failed")


def _dispatch(kind: str, event: Any, context: Any) -> Any:
    if kind == "http":
        return _http(event)
    if kind == "keep_warm":
        log.info("keep_warm")
        _mail_overdue()
        return {"warm": True}
    if kind == "queue":
        return runtime().work(event["Records"], _remaining_ms(context))
    log.warning("event.unknown")
    return None


def _write_metrics(batch: metrics.Batch) -> None:
    """One line for the invocation; a failure to write costs nobody their answer."""
    if not batch or runtime.cache_info().currsize == 0:  # the settings never loaded
        return
    settings = runtime().settings
    try:
        metrics.write(batch, settings.metrics_stack, settings.log_level)
    except Exception:
        log.warning("metrics.not_written")


def lambda_handler(event: Any, context: Any) -> Any:
    global _cold
    kind = classify(event)
    request_id = getattr(context, "aws_request_id", None)
    with log_context(request_id=request_id, event_kind=kind), metrics.collecting() as batch:
        if _cold:
            _cold = False
            metrics.add("ColdStarts")
        try:
            return _dispatch(kind, event, context)
        finally:
            _write_metrics(batch)
