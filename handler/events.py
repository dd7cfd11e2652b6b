"""Pure parsing: which kind of Lambda event this is, and what a webhook body asks for."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

EventKind = Literal["http", "keep_warm", "work", "unknown"]
WORK_MARKER = "messenger_bridge_work"
InboundKind = Literal["text", "postback", "quick_reply", "attachments"]


class MalformedBody(ValueError):
    """A signed body that is not the JSON Facebook documents."""


def classify(event: Any) -> EventKind:
    if not isinstance(event, dict):
        return "unknown"
    if WORK_MARKER in event:
        return "work"
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        return "keep_warm"
    if isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]:
        return "http"
    return "unknown"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def http_request(event: dict[str, Any]) -> HttpRequest:
    """A Function URL event (payload format 2.0) as a plain request."""
    http = event.get("requestContext", {}).get("http", {})
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            body = b""
    else:
        body = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else b""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    return HttpRequest(
        method=str(http.get("method", "")).upper(),
        path=str(http.get("path") or event.get("rawPath") or "/"),
        query=query,
        headers=headers,
        body=body,
    )


@dataclass(frozen=True)
class Inbound:
    """One thing a person did in the chat that the bot answers."""

    event_id: str  # what dedupe is keyed on
    psid: str
    page_id: str
    timestamp: int
    kind: InboundKind
    text: str = ""  # what the person typed, or the title of the button they tapped
    payload: str = ""  # a postback's or quick reply's payload
    seq: int = 0  # place among the sender's events with this timestamp in one delivery

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inbound:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class WorkRequest:
    drain: list[str]  # inboxes to drain
    events: list[Inbound]  # the events the work is for
    replay: bool = False  # a parked message's record, invoked again by the owner


def work_request(event: dict[str, Any]) -> WorkRequest:
    drain = [str(p) for p in event.get("drain", []) if isinstance(p, (str, int)) and str(p)]
    events = [Inbound.from_dict(e) for e in event.get("events", [])]
    return WorkRequest(drain, events, bool(event.get("replay")))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """JSON may escape lone UTF-16 surrogates; they cannot be stored or sent: mark them."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _str_id(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return _clean(str(value))
    return ""


def _one(item: dict[str, Any], page_id: str) -> Inbound | None:
    psid = _str_id(item.get("sender"))
    if not psid or psid == page_id:
        return None
    timestamp = item.get("timestamp")
    timestamp = timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else 0
    message = item.get("message")
    if isinstance(message, dict):
        if message.get("is_echo"):
            return None
        mid = message.get("mid")
        event_id = _clean(mid) if isinstance(mid, str) and mid else f"{psid}:{timestamp}:m"
        text = _clean(message["text"]) if isinstance(message.get("text"), str) else None
        quick = message.get("quick_reply")
        if isinstance(quick, dict) and isinstance(quick.get("payload"), str):
            payload = _clean(quick["payload"])
            return Inbound(event_id, psid, page_id, timestamp, "quick_reply", text or "", payload)
        if text and text.strip():
            return Inbound(event_id, psid, page_id, timestamp, "text", text)
        if message.get("attachments") or message.get("sticker_id"):
            return Inbound(event_id, psid, page_id, timestamp, "attachments")
        return None
    postback = item.get("postback")
    if isinstance(postback, dict):
        payload = postback.get("payload")
        if not isinstance(payload, str):
            return None
        mid = postback.get("mid")
        event_id = _clean(mid) if isinstance(mid, str) and mid else f"{psid}:{timestamp}:p"
        title = _clean(postback["title"]) if isinstance(postback.get("title"), str) else ""
        return Inbound(event_id, psid, page_id, timestamp, "postback", title, _clean(payload))
    return None  # delivery, read, reaction, optin, referral...


def parse_webhook(body: bytes) -> list[Inbound]:
    """Every message and postback in a page webhook body, in order; nothing else."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedBody(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise MalformedBody("not a JSON object")
    if data.get("object") != "page":
        return []
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedBody("no entry list")
    found: list[Inbound] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        page_id = _str_id(entry.get("id"))
        messaging = entry.get("messaging")
        for item in messaging if isinstance(messaging, list) else []:
            if isinstance(item, dict):
                inbound = _one(item, page_id or _str_id(item.get("recipient")))
                if inbound is not None:
                    found.append(inbound)
    return found
