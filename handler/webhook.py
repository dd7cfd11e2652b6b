"""The fast path: Facebook's verify challenge and signed event deliveries.

Nothing here waits for the model: a valid delivery is parsed, handed to an asynchronous
invocation, and answered 200 within milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import signature
from .events import HttpRequest, Inbound, MalformedBody, parse_webhook
from .logs import log

MAX_BODY_BYTES = 256 * 1024  # far above any real delivery; also the async payload limit
WEBHOOK_PATHS = {"", "/webhook"}  # compared without a trailing slash

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


def receive(
    request: HttpRequest, app_secret: str, hand_off: Callable[[list[Inbound]], None]
) -> Response:
    if len(request.body) > MAX_BODY_BYTES:
        log.warning("webhook.too_large", bytes=len(request.body))
        return respond(413, "Payload Too Large")
    if not signature.is_valid(request.body, request.header("x-hub-signature-256"), app_secret):
        log.warning("webhook.bad_signature", signed="x-hub-signature-256" in request.headers)
        return respond(403, "Forbidden")
    try:
        events = parse_webhook(request.body)
    except MalformedBody as error:
        # Signed, so it is Facebook's: a 5xx would only make it retry and, in the end,
        # disable the webhook. Say it was received and keep a record.
        log.error("webhook.malformed", why=str(error), bytes=len(request.body))
        return respond(200, "EVENT_RECEIVED")
    if events:
        hand_off(events)  # raises DispatchError: the caller answers 5xx so Facebook retries
    log.info("webhook.accepted", events=len(events))
    return respond(200, "EVENT_RECEIVED")


def route(
    request: HttpRequest,
    secrets: Callable[[], Any],
    hand_off: Callable[[list[Inbound]], None],
) -> Response:
    if request.path.rstrip("/") not in WEBHOOK_PATHS:
        return respond(404, "Not Found")
    if request.method == "GET":
        return verify_challenge(request, secrets().verify_token)
    if request.method == "POST":
        return receive(request, secrets().app_secret, hand_off)
    return respond(405, "Method Not Allowed")
