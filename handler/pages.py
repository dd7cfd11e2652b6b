"""The Function URL's pages beside the webhook, which Meta asks for before an app goes Live:
``GET /privacy``, and the data-deletion callback ``POST /data-deletion`` with its status page
``GET /data-deletion?code=...``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from .deletion import DeletionRefused, DeletionRequests, now_seconds, verify_signed_request
from .events import HttpRequest
from .logs import log
from .privacy import deletion_status_page, privacy_page
from .settings import Settings

PRIVACY_PATH = "/privacy"
DELETION_PATH = "/data-deletion"
PATHS = {PRIVACY_PATH, DELETION_PATH}
MAX_FORM_BYTES = 16 * 1024

Response = dict[str, Any]


def _html(status: int, body: str) -> Response:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        "body": body,
    }


def _json(status: int, payload: dict[str, Any]) -> Response:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(payload),
    }


def route(
    request: HttpRequest,
    settings: Callable[[], Settings],
    app_secret: Callable[[], str],
    deletions: Callable[[], DeletionRequests],
) -> Response:
    path = request.path.rstrip("/")
    if path == PRIVACY_PATH and request.method in ("GET", "HEAD"):
        return _html(200, privacy_page(settings(), os.environ.get("AWS_REGION")))
    if path == DELETION_PATH and request.method == "GET":
        status, at, deleted = deletions().status(request.query.get("code", ""))
        return _html(200 if status else 404, deletion_status_page(status, at, deleted))
    if path == DELETION_PATH and request.method == "POST":
        return _deletion_request(request, app_secret, deletions)
    return {"statusCode": 405, "headers": {"Content-Type": "text/plain"}, "body": "Not Allowed"}


def _deletion_request(
    request: HttpRequest, app_secret: Callable[[], str], deletions: Callable[[], DeletionRequests]
) -> Response:
    """Meta's callback: verified before anything is looked up or changed."""
    if len(request.body) > MAX_FORM_BYTES:
        return _json(400, {"error": "too large"})
    try:
        form = parse_qs(request.body.decode("utf-8"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        form = {}
    raw = (form.get("signed_request") or [""])[0]
    try:
        payload = verify_signed_request(raw, app_secret(), now_seconds())
    except DeletionRefused as error:
        log.warning("deletion.refused", why=str(error))
        return _json(400, {"error": "invalid signed_request"})
    outcome = deletions().handle(str(payload["user_id"]), datetime.now(UTC))
    host = request.header("host") or ""
    return _json(
        200,
        {
            "url": f"https://{host}{DELETION_PATH}?code={outcome.code}",
            "confirmation_code": outcome.code,
        },
    )
