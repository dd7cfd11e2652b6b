"""The fast path: Facebook's verify challenge and signed event deliveries.

Nothing here waits for the model: a valid delivery is parsed, its events handed to the FIFO
queue, and answered 200 within milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import metrics, signature
from .events import HttpRequest, Inbound, MalformedBody, is_stale, parse_webhook
from .logs import log

# Meta batches up to about 1 MB of events into one delivery; the Function URL takes 6 MB.
MAX_BODY_BYTES = 2 * 1024 * 1024
WEBHOOK_PATHS = {"", "/webhook"}  # compared without a trailing slash
SIGNATURE_HEADER = "x-hub-signature-256"

Response = dict[str, Any]


def respond(status: int, body: str = "", content_type: str = "text/plain") -> Response:
    return {"statusCode": status, "headers": {"Content-Type": content_type}, "body": body}


def verify_challenge(request: HttpRequest, verify_token: str) -> Response:
    mode, token = request.query.get("hub.mode"), request.query.get("hub.verify_token")
    challenge = request.query.get("hub.challenge", "")
    if mode == "subscribe" and signature.tokens_match(token, verify_token):
        log.info("webhook.verified")
        return respond(200, challenge)
    log.warning("webhook.verify_refused", mode_ok=mode == "subscribe")
    return respond(403, "Forbidden")


def fresh(events: list[Inbound], now_ms: int) -> list[Inbound]:
    """The events still inside Messenger's window; the others are logged and dropped."""
    kept = [e for e in events if not is_stale(e.timestamp, now_ms)]
    for event in events:
        if is_stale(event.timestamp, now_ms):
            log.warning("event.stale", event_id=event.event_id, age_ms=event.age_ms(now_ms))
    return kept


def receive(
    request: HttpRequest,
    app_secret: Callable[[], str],
    hand_off: Callable[[list[Inbound]], None],
    app_id: str | None = None,
) -> Response:
    """A signed delivery's events to ``hand_off``; ``app_id`` (this app's) tells the bot's
    own echoes from the replies someone of the page types by hand."""
    if len(request.body) > MAX_BODY_BYTES:
        log.warning("webhook.too_large", bytes=len(request.body))
        return respond(413, "Payload Too Large")
    claimed = request.header(SIGNATURE_HEADER)
    if not signature.looks_signed(claimed):
        # Refused before any secret is loaded: an unsigned flood never reaches SSM or KMS.
        log.warning("webhook.bad_signature", signed=claimed is not None)
        return respond(403, "Forbidden")
    if not signature.is_valid(request.body, claimed, app_secret()):
        log.warning("webhook.bad_signature", signed=True)
        return respond(403, "Forbidden")
    try:
        events = parse_webhook(request.body, app_id)
    except MalformedBody as error:
        # Signed, so it is Facebook's: a 5xx would only make it retry and, in the end,
        # disable the webhook. Say it was received and keep a record.
        log.error("webhook.malformed", why=str(error), bytes=len(request.body))
        return respond(200, "EVENT_RECEIVED")
    events = fresh(events, time.time_ns() // 1_000_000)
    if events:
        hand_off(events)  # raises HandoffError: the caller answers 5xx so Facebook retries
        metrics.add("MessagesReceived", len(events))
    log.info("webhook.accepted", events=len(events))
    return respond(200, "EVENT_RECEIVED")


def route(
    request: HttpRequest,
    secrets: Callable[[], Any],
    hand_off: Callable[[list[Inbound]], None],
    app_id: str | None = None,
) -> Response:
    if request.path.rstrip("/") not in WEBHOOK_PATHS:
        return respond(404, "Not Found")
    if request.method == "GET":
        return verify_challenge(request, secrets().verify_token)
    if request.method == "POST":
        return receive(request, lambda: secrets().app_secret, hand_off, app_id)
    return respond(405, "Method Not Allowed")
