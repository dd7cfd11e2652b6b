"""Meta's data-deletion callback: a signed request names a person by their app-scoped id; the
bot finds their page-scoped id, deletes what it holds, and keeps a status to show.

The bot stores page-scoped ids (PSIDs) only. The app-scoped id in the request is mapped
through the Graph API (``/{app-scoped id}/ids_for_pages``, with the app's token), which
answers when the app and the page belong to the same business; when it does not, nothing is
deleted and the status page says so, and how to delete from Messenger instead (/delete).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import schema
from .logs import log

MAX_AGE = timedelta(hours=1)  # a signed request older than this is refused as stale
STATUS_RETENTION = timedelta(days=90)


class DeletionRefused(ValueError):
    """The signed request is forged, malformed or stale: nothing is changed."""


def _b64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DeletionRefused("not base64url") from None


def verify_signed_request(raw: str, app_secret: str, now: float) -> dict[str, Any]:
    """The payload of a ``signed_request`` (signature ``.`` payload, HMAC-SHA256 with the app
    secret over the payload as sent), or ``DeletionRefused``."""
    if not raw or raw.count(".") != 1 or not app_secret:
        raise DeletionRefused("not a signed request")
    signature_part, payload_part = raw.split(".", 1)
    signature = _b64url(signature_part)
    expected = hmac.new(app_secret.encode(), payload_part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise DeletionRefused("bad signature")
    try:
        payload = json.loads(_b64url(payload_part))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DeletionRefused("payload is not JSON") from None
    if not isinstance(payload, dict) or str(payload.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise DeletionRefused("unknown algorithm")
    issued = payload.get("issued_at")
    if not isinstance(issued, int) or abs(now - issued) > MAX_AGE.total_seconds():
        raise DeletionRefused("stale")
    user_id = payload.get("user_id")
    if not isinstance(user_id, str | int) or not str(user_id).isdigit():
        raise DeletionRefused("no user id")
    return payload


@dataclass(frozen=True)
class Outcome:
    code: str
    status: str  # deleted | nothing | unmatched
    deleted: int = 0


class DeletionRequests:
    def __init__(
        self,
        client: Any,
        table: str,
        forget: Callable[[str], int],
        find_psid: Callable[[str], str | None],
    ) -> None:
        self._db = client
        self._table = table
        self._forget = forget
        self._find_psid = find_psid

    def handle(self, user_id: str, now: datetime) -> Outcome:
        """Delete what is held about the person, and remember what was done under a code."""
        code = secrets.token_hex(10)
        psid = self._find_psid(user_id)
        if psid is None:
            outcome = Outcome(code, "unmatched")
        else:
            deleted = self._forget(psid)
            outcome = Outcome(code, "deleted" if deleted else "nothing", deleted)
        self._db.put_item(
            TableName=self._table,
            Item={
                **schema.deletion_key(code),
                "status": {"S": outcome.status},
                "deleted": {"N": str(outcome.deleted)},
                "at": {"S": now.astimezone(UTC).isoformat(timespec="seconds")},
                schema.TTL_ATTRIBUTE: {"N": str(int((now + STATUS_RETENTION).timestamp()))},
            },
        )
        log.info("deletion.request", status=outcome.status, deleted=outcome.deleted)
        return outcome

    def status(self, code: str) -> tuple[str | None, datetime | None, int]:
        if not code or not code.isalnum() or len(code) > 64:
            return None, None, 0
        item = self._db.get_item(TableName=self._table, Key=schema.deletion_key(code)).get("Item")
        if not item:
            return None, None, 0
        return (
            item["status"]["S"],
            datetime.fromisoformat(item["at"]["S"]),
            int(item.get("deleted", {}).get("N", "0")),
        )


def graph_psid_finder(
    session: Any, graph_api_url: str, app_id: str | None, app_secret: str, page_id: str | None
) -> Callable[[str], str | None]:
    """Asks Graph for the person's page-scoped id on this page; None when it cannot say."""

    def find(user_id: str) -> str | None:
        if not (app_id and page_id):
            return None
        try:
            response = session.get(
                f"{graph_api_url}/{user_id}/ids_for_pages",
                params={"page": page_id, "access_token": f"{app_id}|{app_secret}"},
                timeout=5,
            )
            data = response.json() if response.status_code == 200 else {}
        except Exception:  # no answer: the status page says what the person can do instead
            log.warning("deletion.lookup_failed")
            return None
        for entry in data.get("data", []) if isinstance(data, dict) else []:
            page = entry.get("page", {}) if isinstance(entry, dict) else {}
            if str(page.get("id")) == page_id and str(entry.get("id", "")).isdigit():
                return str(entry["id"])
        return None

    return find


def now_seconds() -> float:
    return time.time()
