"""The Messenger Send API: text bubbles, buttons and sender actions, with bounded retries.

Transient failures (5xx, rate limits, dropped connections) are retried with backoff;
permanent ones (person unavailable, outside the 24-hour window, bad token) are not, and are
logged once here. Errors carry codes only: the request URL holds the page token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .logs import log
from .text import split_message

RATE_LIMIT_CODES = {4, 613, 32, 17}
TRANSIENT_CODES = {1, 2} | RATE_LIMIT_CODES
TOKEN_INVALID = 190


@dataclass
class SendError(Exception):
    """The Send API refused or could not be reached. ``permanent`` means do not retry."""

    reason: str
    permanent: bool
    status: int | None = None
    code: int | None = None
    subcode: int | None = None
    delivered: int = 0  # bubbles of a long answer that did arrive before the failure

    def __str__(self) -> str:
        return f"{self.reason} (status={self.status} code={self.code} subcode={self.subcode})"


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


class Messenger:
    def __init__(
        self,
        session: Any,
        graph_api_url: str,
        page_access_token: str,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._session = session
        self._url = f"{graph_api_url.rstrip('/')}/me/messages"
        self._token = page_access_token
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds

    def _post(self, body: dict[str, Any], attempts: int) -> dict[str, Any]:
        import requests

        last: SendError | None = None
        made = 0
        for attempt in range(attempts):
            made += 1
            if attempt:
                time.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                response = self._session.post(
                    self._url,
                    params={"access_token": self._token},
                    json=body,
                    timeout=self._timeout,
                )
            except requests.RequestException as error:
                last = SendError(f"connection:{type(error).__name__}", False)
                continue
            try:
                data = response.json()
            except ValueError:
                data = None
            if 200 <= response.status_code < 300:
                return data if isinstance(data, dict) else {}
            last = classify(response.status_code, data)
            if last.permanent:
                break
        assert last is not None
        if last.code == TOKEN_INVALID:
            log.error("send.failed", reason=last.reason, code=last.code, action="owner must renew")
        else:
            log.warning(
                "send.failed",
                reason=last.reason,
                status=last.status,
                code=last.code,
                subcode=last.subcode,
                permanent=last.permanent,
                attempts=made,
            )
        raise last

    def send_message(self, psid: str, message: dict[str, Any]) -> None:
        self._post(
            {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": message},
            self._attempts,
        )

    def send_text(self, psid: str, text: str) -> int:
        """Send ``text`` as as many bubbles as it needs; returns how many were sent."""
        chunks = split_message(text)
        for sent, chunk in enumerate(chunks):
            try:
                self.send_message(psid, {"text": chunk})
            except SendError as error:
                error.delivered = sent
                raise
        return len(chunks)

    def sender_action(self, psid: str, action: str) -> None:
        """``mark_seen`` / ``typing_on``: cosmetic, so tried once only."""
        self._post({"recipient": {"id": psid}, "sender_action": action}, 1)
