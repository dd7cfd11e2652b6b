"""Photos and voice messages from Messenger's CDN: downloaded with a size cap and a content
type check, within the invocation's deadline, and kept only in memory.

The URL is the person's message, like its text: it is never logged, and neither are the
bytes. What the caller gets is the bytes and their type, or a ``MediaError`` that says
whether trying again later may help.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

from .logs import log

CHUNK_BYTES = 64 * 1024
MAX_TRY_SECONDS = 10.0
MIN_TRY_SECONDS = 1.0
# Voice messages come from Messenger as MP4 (often labelled video/mp4), or as audio/*.
AUDIO_TYPES = ("audio/", "video/mp4", "video/webm", "video/quicktime")
IMAGE_TYPES = ("image/",)
# The file name the transcription endpoint is given: it reads the format from it.
AUDIO_EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "mp4",
    "audio/x-m4a": "m4a",
    "audio/m4a": "m4a",
    "audio/aac": "m4a",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/flac": "flac",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mp4",
}


class MediaError(Exception):
    """No usable file: ``reason`` is loggable (never the URL); ``retryable`` when the CDN
    or the network may do better later."""

    def __init__(self, reason: str, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Media:
    data: bytes
    content_type: str

    def data_url(self) -> str:
        """The photo as the model takes it inline: nothing for the provider to fetch."""
        encoded = base64.b64encode(self.data).decode("ascii")
        return f"data:{self.content_type};base64,{encoded}"

    @property
    def filename(self) -> str:
        return f"voice.{AUDIO_EXTENSIONS.get(self.content_type, 'mp4')}"


def _content_type(response: Any) -> str:
    raw = str(response.headers.get("Content-Type") or "")
    return raw.split(";", 1)[0].strip().lower()


def download(
    session: Any, url: str, max_bytes: int, accepted: tuple[str, ...], deadline: float
) -> Media:
    """The file at ``url``, if it is one of the ``accepted`` types (prefixes) and at most
    ``max_bytes``, before ``deadline`` (``time.monotonic()``)."""
    import requests

    left = deadline - time.monotonic()
    if left < MIN_TRY_SECONDS:
        raise MediaError("no_time_left", retryable=True)
    try:
        response = session.get(url, stream=True, timeout=min(MAX_TRY_SECONDS, left))
    except requests.RequestException as error:
        raise MediaError(f"connection:{type(error).__name__}", retryable=True) from None
    with response:
        if response.status_code >= 500 or response.status_code == 429:
            raise MediaError(f"status_{response.status_code}", retryable=True)
        if response.status_code != 200:  # expired or removed: asking again will not help
            raise MediaError(f"status_{response.status_code}")
        content_type = _content_type(response)
        if not content_type.startswith(accepted):
            log.info("media.refused", content_type=content_type[:60])
            raise MediaError("wrong_type")
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise MediaError("too_large")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise MediaError("too_large")
                if time.monotonic() > deadline:
                    raise MediaError("no_time_left", retryable=True)
                chunks.append(chunk)
        except requests.RequestException as error:
            raise MediaError(f"broken:{type(error).__name__}", retryable=True) from None
    if not size:
        raise MediaError("empty")
    log.info("media.downloaded", content_type=content_type, bytes=size)
    return Media(b"".join(chunks), content_type)
