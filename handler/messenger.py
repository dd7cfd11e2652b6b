"""The Messenger Send API: messages and sender actions, within the invocation's deadline.

A call is tried again only when Graph surely did not take the message: it could not be
reached (no connection made) or it said so (5xx, "try again"). A read timeout, or a
connection that broke after the request went out, may have delivered it: that is
``maybe_delivered``, never sent again, so a person never gets the same bubble twice from a
retry here. Rate limits are left to the queue's backoff. Errors carry codes only: the
request URL holds the page token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .events import BOT_METADATA
from .logs import log

RATE_LIMIT_CODES = {4, 613, 32, 17}
TRANSIENT_CODES = {1, 2}
TOKEN_INVALID = 190
MIN_TRY_SECONDS = 0.5  # a try with less time than this left is not started


@dataclass
class SendError(Exception):
    """The Send API refused or could not be reached. ``permanent`` means do not retry."""

    reason: str
    permanent: bool
    status: int | None = None
    code: int | None = None
    subcode: int | None = None
    maybe_delivered: bool = False  # the request went out and no answer came back
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.reason} (status={self.status} code={self.code} subcode={self.subcode})"

    @property
    def owner_must_act(self) -> bool:
        return self.code == TOKEN_INVALID


def classify(status: int, body: Any) -> SendError:
    """Turn a non-2xx Graph answer into a named, retry-or-not error (pure)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    if code == TOKEN_INVALID:
        return SendError("page_token_invalid", True, status, code, subcode)
    if code == 551 or subcode == 1545041:
        return SendError("person_unavailable", True, status, code, subcode)
    if code == 10 or subcode == 2018278:
        return SendError("outside_messaging_window", True, status, code, subcode)
    if code in RATE_LIMIT_CODES:
        return SendError("rate_limited", False, status, code, subcode)
    if status >= 500 or code in TRANSIENT_CODES:
        return SendError("graph_unavailable", False, status, code, subcode)
    if code == 100:
        return SendError("bad_parameter", True, status, code, subcode)
    return SendError("send_refused", True, status, code, subcode)


def network_error(error: Exception) -> SendError:
    """A ``requests`` failure: not sent if no connection was made, else maybe delivered."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError

    reason = error.args[0] if error.args else None
    cause = getattr(reason, "reason", reason)
    if isinstance(error, requests.ConnectTimeout) or isinstance(cause, ConnectTimeoutError):
        # urllib3's NewConnectionError (refused, unresolvable) is a ConnectTimeoutError too.
        return SendError(f"connection:{type(error).__name__}", False)
    if isinstance(error, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
        # The TLS handshake or the proxy failed: no request reached Graph.
        return SendError(f"connection:{type(error).__name__}", False)
    return SendError(f"no_answer:{type(error).__name__}", False, maybe_delivered=True)


class Messenger:
    def __init__(
        self,
        session: Any,
        graph_api_url: str,
        page_access_token: str,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._session = session
        self._url = f"{graph_api_url.rstrip('/')}/me/messages"
        self._token = page_access_token
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds

    def _post(self, body: dict[str, Any], attempts: int, deadline: float) -> dict[str, Any]:
        import requests

        last: SendError | None = None
        made = 0
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self._backoff * 2 ** (attempt - 1), deadline - time.monotonic()))
            left = deadline - time.monotonic()
            if left < MIN_TRY_SECONDS:
                last = last or SendError("no_time_left", False)
                break
            made += 1
            try:
                response = self._session.post(
                    self._url,
                    params={"access_token": self._token},
                    json=body,
                    timeout=min(self._timeout, left),
                )
            except requests.RequestException as error:
                last = network_error(error)
                if last.maybe_delivered:
                    break
                continue
            try:
                data = response.json()
            except ValueError:
                data = None
            if 200 <= response.status_code < 300:
                return data if isinstance(data, dict) else {}
            last = classify(response.status_code, data)
            last.retry_after = _retry_after(response)
            if last.permanent or last.reason == "rate_limited":
                break
        assert last is not None
        if last.owner_must_act:
            log.error("send.failed", reason=last.reason, code=last.code, action="owner must renew")
        else:
            log.warning(
                "send.failed",
                reason=last.reason,
                status=last.status,
                code=last.code,
                subcode=last.subcode,
                permanent=last.permanent,
                maybe_delivered=last.maybe_delivered,
                attempts=made,
            )
        raise last

    def send_message(self, psid: str, message: dict[str, Any], deadline: float) -> None:
        """One message (a text bubble, buttons...), before ``deadline`` (``time.monotonic()``),
        marked as the bot's (``BOT_METADATA``): its echo never pauses the bot."""
        self._post(
            {
                "recipient": {"id": psid},
                "messaging_type": "RESPONSE",
                "message": {**message, "metadata": BOT_METADATA},
            },
            self._attempts,
            deadline,
        )

    def sender_action(self, psid: str, action: str, deadline: float) -> None:
        """``mark_seen`` / ``typing_on``: cosmetic, so tried once only."""
        self._post({"recipient": {"id": psid}, "sender_action": action}, 1, deadline)


def _retry_after(response: Any) -> float | None:
    raw = getattr(response, "headers", {}).get("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
