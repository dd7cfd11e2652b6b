"""Pure parsing: which kind of Lambda event this is, and what a webhook body asks for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any, Literal

EventKind = Literal["http", "keep_warm", "queue", "unknown"]
# "image": photos or stickers (with the person's text, if any; a sticker's media is
# ("sticker", url), a photo's ("image", url)); "audio": a voice message;
# "like": the thumbs-up sticker; "attachments": what the bot cannot take (video, files...);
# "echo": someone of the page wrote to the person by hand (Page Inbox, Business Suite).
InboundKind = Literal[
    "text", "postback", "quick_reply", "attachments", "image", "audio", "like", "referral", "echo"
]
SQS_SOURCE = "aws:sqs"
# Messenger lets a page answer within 24 hours of a person's message; an older event is
# not answerable (and a delivery replayed that late is not trusted to be new).
MESSAGING_WINDOW = timedelta(hours=24)
# Far above what Messenger lets a person type, and it keeps one event well inside one
# queue message however large the signed body around it.
MAX_TEXT_CHARS = 20_000
# Messenger's thumbs-up "like" sticker, in its three sizes: acknowledged, never answered.
LIKE_STICKERS = frozenset({369239263222822, 369239343222814, 369239383222810})
# The attachment types looked at as an image: photos, and stickers (Meta sends a sticker as a
# ``sticker`` attachment with ``payload.url`` and ``payload.sticker_id``; older deliveries
# sent an ``image`` attachment and a top-level ``sticker_id``).
IMAGE_ATTACHMENTS = ("image", "sticker")
MAX_IMAGES = 4  # photos of one message sent to the model
MAX_URL_CHARS = 2048
# Messenger sends a photo and the text typed with it as two messages, the photo first: a
# text this soon after a photo-only message of the same person, in the same delivery, is
# its question.
CAPTION_WINDOW_MS = 60_000
# More often the text comes in a delivery of its own: a photo sent without text is kept (its
# URL, on the person's conversation) this long for the person's next message to ask about.
PHOTO_WAIT_SECONDS = 10 * 60
# What a reply by hand without text (a photo, a sticker) is remembered as.
ECHO_WITHOUT_TEXT = "[an attachment sent by hand]"
# What the bot puts in the ``metadata`` of every message it sends (the Send API takes up to
# 1,000 characters and gives it back in the echo): its own echoes are known by it even in a
# stack that does not set appId.
BOT_METADATA = "messenger-bridge"
# The Page Inbox's (and the Business Suite app's) app id on the echoes of replies typed there.
PAGE_INBOX_APP_ID = 263902037430900


class MalformedBody(ValueError):
    """A signed body that is not the JSON Facebook documents."""


def classify(event: Any) -> EventKind:
    if not isinstance(event, dict):
        return "unknown"
    records = event.get("Records")
    if (
        isinstance(records, list)
        and records
        and all(isinstance(r, dict) and r.get("eventSource") == SQS_SOURCE for r in records)
    ):
        return "queue"
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

    event_id: str  # the message's mid, else a hash of what identifies it: dedupe key
    psid: str
    page_id: str
    timestamp: int  # when the person acted, ms since the epoch (Facebook's); 0 if unknown
    kind: InboundKind
    text: str = ""  # what the person typed, or the title of the button they tapped
    payload: str = ""  # a postback's or quick reply's payload
    ref_source: str = ""  # where the person came from: SHORTLINK (m.me), ADS, CUSTOMER_CHAT_PLUGIN
    ref: str = ""  # the ref parameter of that link or ad, if any
    # (type, url) of the photos or the voice message: the message itself, like its text,
    # so it travels in the queue, and is never logged nor stored.
    media: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inbound:
        """The inverse of ``to_dict``; ``ValueError`` for anything that is not one."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "media" in fields:
            fields["media"] = _media_of(fields["media"])
        try:
            event = cls(**fields)
        except TypeError as error:
            raise ValueError(f"missing fields: {error}") from None
        if not (event.event_id and event.psid and isinstance(event.timestamp, int)):
            raise ValueError("no event id, sender or timestamp")
        return event

    def age_ms(self, now_ms: int) -> int | None:
        return now_ms - self.timestamp if self.timestamp > 0 else None


def _media_of(value: Any) -> tuple[tuple[str, str], ...]:
    """``media`` as JSON gives it back (lists): pairs of text, or ``ValueError``."""
    if not isinstance(value, list | tuple) or not all(
        isinstance(pair, list | tuple)
        and len(pair) == 2
        and all(isinstance(part, str) for part in pair)
        for pair in value
    ):
        raise ValueError("media is not a list of (type, url)")
    return tuple((kind, url) for kind, url in value)


def is_stale(timestamp_ms: int, now_ms: int) -> bool:
    """Older than Messenger's 24-hour window; an unknown time (0) is never stale."""
    return timestamp_ms > 0 and now_ms - timestamp_ms > MESSAGING_WINDOW.total_seconds() * 1000


def derived_id(psid: str, timestamp: int, kind: str, payload: str, text: str) -> str:
    """An id for an event Facebook gave none (no ``mid``): the same event always gets it."""
    basis = json.dumps([psid, timestamp, kind, payload, text], ensure_ascii=False)
    return "h_" + hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:40]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """JSON may escape lone UTF-16 surrogates; they cannot be stored or sent: mark them."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _text(value: Any) -> str | None:
    return _clean(value[:MAX_TEXT_CHARS]) if isinstance(value, str) else None


def _str_id(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return _clean(str(value))
    return ""


def _referral(*holders: Any) -> tuple[str, str]:
    """(source, ref) of the first ``referral`` object among ``holders``: what the bot keeps of
    an m.me link, an ad or the chat plugin, and nothing else of it."""
    for holder in holders:
        referral = holder.get("referral") if isinstance(holder, dict) else None
        if isinstance(referral, dict):
            source = _text(referral.get("source")) or ""
            ref = _text(referral.get("ref")) or ""
            if source or ref:
                return source[:64], ref[:256]
    return "", ""


def is_ours(app_id: Any, metadata: Any, our_app_id: str | None) -> bool:
    """An echo of a message this bot sent: our metadata, or our app's id. A reply typed by hand
    carries the Page Inbox's app id or none, and never our metadata."""
    if metadata == BOT_METADATA:
        return True
    if our_app_id and isinstance(app_id, (int, str)) and not isinstance(app_id, bool):
        return str(app_id) == our_app_id
    return False


def _timestamp(item: dict[str, Any]) -> int:
    timestamp = item.get("timestamp")
    return timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else 0


def _echo(
    item: dict[str, Any], message: dict[str, Any], page_id: str, app_id: str | None
) -> Inbound | None:
    """A message the page sent: the bot's own (dropped), or one typed by hand by someone of
    the page, to the person it went to (the recipient)."""
    psid = _str_id(item.get("recipient"))
    if not psid or psid == page_id:
        return None
    if is_ours(message.get("app_id"), message.get("metadata"), app_id):
        return None
    timestamp = _timestamp(item)
    text = _text(message.get("text")) or ""
    if not text.strip():
        text = ECHO_WITHOUT_TEXT if message.get("attachments") or message.get("sticker_id") else ""
    if not text.strip():
        return None
    event_id = _event_id(message.get("mid"), psid, timestamp, "echo", "", text)
    return Inbound(event_id, psid, page_id, timestamp, "echo", text)


def _one(item: dict[str, Any], page_id: str, app_id: str | None = None) -> Inbound | None:
    message = item.get("message")
    if isinstance(message, dict) and message.get("is_echo"):
        return _echo(item, message, page_id, app_id)
    psid = _str_id(item.get("sender"))
    if not psid or psid == page_id:
        return None
    timestamp = _timestamp(item)
    if isinstance(message, dict):
        text = _text(message.get("text"))
        quick = message.get("quick_reply")
        media: tuple[tuple[str, str], ...] = ()
        if isinstance(quick, dict) and isinstance(quick.get("payload"), str):
            found = ("quick_reply", text or "", _text(quick["payload"]) or "")
        elif _stickers(message) & LIKE_STICKERS:
            found = ("like", "", "")
        elif media := _images(message)[:MAX_IMAGES]:
            found = ("image", text if text and text.strip() else "", "")
        elif media := _attachments(message.get("attachments"), "audio")[:1]:
            found = ("audio", "", "")
        elif text and text.strip():
            found = ("text", text, "")
        elif message.get("attachments") or message.get("sticker_id"):
            found = ("attachments", "", "")
        else:
            return None
        kind, text, payload = found
        event_id = _event_id(message.get("mid"), psid, timestamp, kind, payload, text)
        source, ref = _referral(message)
        return Inbound(event_id, psid, page_id, timestamp, kind, text, payload, source, ref, media)
    postback = item.get("postback")
    if isinstance(postback, dict):
        payload = _text(postback.get("payload"))
        if payload is None:
            return None
        title = _text(postback.get("title")) or ""
        event_id = _event_id(postback.get("mid"), psid, timestamp, "postback", payload, title)
        source, ref = _referral(postback)
        return Inbound(event_id, psid, page_id, timestamp, "postback", title, payload, source, ref)
    source, ref = _referral(item)
    if source or ref:  # an m.me link or ad opened an existing conversation: nothing to answer
        event_id = derived_id(psid, timestamp, "referral", ref, source)
        return Inbound(event_id, psid, page_id, timestamp, "referral", "", "", source, ref)
    return None  # delivery, read, reaction, optin...


def _sticker(value: Any) -> int | None:
    """A sticker id, whatever the delivery holds (ids are numbers, maybe given as text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _stickers(message: dict[str, Any]) -> set[int]:
    """The sticker ids of a message: the top-level ``sticker_id`` (older deliveries, with an
    ``image`` attachment) and each attachment's ``payload.sticker_id`` (the ``sticker``
    attachment Meta sends now)."""
    ids = {_sticker(message.get("sticker_id"))}
    attachments = message.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        payload = attachment.get("payload") if isinstance(attachment, dict) else None
        if isinstance(payload, dict):
            ids.add(_sticker(payload.get("sticker_id")))
    return {i for i in ids if i is not None}


def _images(message: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Photos ("image", url) and stickers ("sticker", url), both looked at as images, each URL
    once (a sticker may come both as a ``sticker`` and as an ``image`` attachment)."""
    sticker = bool(_stickers(message))
    found: dict[str, str] = {}
    for kind in IMAGE_ATTACHMENTS:
        for _, url in _attachments(message.get("attachments"), kind):
            found.setdefault(url, "sticker" if sticker or kind == "sticker" else "image")
    return tuple((kind, url) for url, kind in found.items())


def _attachments(attachments: Any, kind: str) -> tuple[tuple[str, str], ...]:
    """(kind, url) of the attachments of that type with a usable URL, in order."""
    found = []
    for attachment in attachments if isinstance(attachments, list) else []:
        if not isinstance(attachment, dict) or attachment.get("type") != kind:
            continue
        payload = attachment.get("payload")
        url = payload.get("url") if isinstance(payload, dict) else None
        if (
            isinstance(url, str)
            and url.startswith(("https://", "http://"))
            and len(url) <= MAX_URL_CHARS
        ):
            found.append((kind, url))
    return tuple(found)


def merge_captions(events: Sequence[Inbound]) -> list[Inbound]:
    """A photo-only message followed, within ``CAPTION_WINDOW_MS``, by a text message of the
    same person becomes one event: the photo with that text as its question (the photo's
    id, so a redelivery of the pair is still one event)."""
    merged: list[Inbound] = []
    skip = False
    for index, event in enumerate(events):
        if skip:
            skip = False
            continue
        following = events[index + 1] if index + 1 < len(events) else None
        if (
            following is not None
            and event.kind == "image"
            and not event.text.strip()
            and following.kind == "text"
            and following.psid == event.psid
            and event.timestamp > 0
            and 0 <= following.timestamp - event.timestamp <= CAPTION_WINDOW_MS
        ):
            merged.append(replace(event, text=following.text))
            skip = True
            continue
        merged.append(event)
    return merged


def _event_id(mid: Any, psid: str, timestamp: int, kind: str, payload: str, text: str) -> str:
    if isinstance(mid, str) and mid:
        return _clean(mid)
    return derived_id(psid, timestamp, kind, payload, text)


def parse_webhook(body: bytes, app_id: str | None = None) -> list[Inbound]:
    """Every message and postback in a page webhook body, in order, and the page's messages
    typed by hand (``echo``); nothing else. ``app_id``: this app's, whose echoes are the
    bot's own."""
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
                inbound = _one(item, page_id or _str_id(item.get("recipient")), app_id)
                if inbound is not None:
                    found.append(inbound)
    return found
