"""Photos and voice messages from Messenger's CDN: downloaded with a size cap and a content
type check, within the invocation's deadline, and kept only in memory.

The URL is the person's message, like its text: it is never logged, and neither are the
bytes. What the caller gets is the bytes and their type, or a ``MediaError`` that says
whether trying again later may help.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .logs import log

CHUNK_BYTES = 64 * 1024
MAX_TRY_SECONDS = 10.0
MIN_TRY_SECONDS = 1.0
# Voice messages come from Messenger as MP4 (often labelled video/mp4), or as audio/*; a CDN
# may also answer application/octet-stream (the attachment's own type says it is audio: the
# bytes tell which format).
OCTET_STREAM = "application/octet-stream"
AUDIO_TYPES = ("audio/", "video/mp4", "video/webm", "video/quicktime", OCTET_STREAM)
# The formats OpenAI's models open: anything else (HEIC, BMP, TIFF...) is refused before
# the model is asked. Exact types (an entry ending in "/" is a prefix).
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
# A voice message longer than this is not transcribed (it would cost tokens a minute and
# hold the answer up): Messenger's voice clips are MP4, whose header says how long they are.
MAX_VOICE_SECONDS = 5 * 60
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


def accepts(content_type: str, accepted: tuple[str, ...]) -> bool:
    """``content_type`` is one of ``accepted``: exact types, or prefixes ending in "/"."""
    return any(
        content_type.startswith(kind) if kind.endswith("/") else content_type == kind
        for kind in accepted
    )


# The first bytes of the audio formats the transcription endpoint takes.
_AUDIO_MAGIC = (
    (b"ID3", "audio/mpeg"),
    (b"\xff\xfb", "audio/mpeg"),
    (b"\xff\xf3", "audio/mpeg"),
    (b"\xff\xf2", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"\x1a\x45\xdf\xa3", "audio/webm"),
)


def sniff_audio(data: bytes) -> str | None:
    """The audio type the bytes show (for a file the CDN labels application/octet-stream)."""
    if data[4:8] == b"ftyp":
        return "audio/mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    return next((kind for magic, kind in _AUDIO_MAGIC if data.startswith(magic)), None)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, body end) of each ISO-BMFF box between ``start`` and ``end``."""
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if at + 16 > end:
                return
            size, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        elif size == 0:  # to the end of the file
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, at + header, at + size
        at += size


def mp4_seconds(data: bytes) -> float | None:
    """How long an MP4/M4A file says it is (``moov``/``mvhd``: duration over timescale), or
    None when it says nothing usable (another format, a damaged or cut file)."""
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for inner, body, stop in _boxes(data, start, end):
            if inner != b"mvhd" or stop - body < 20:
                continue
            version = data[body]
            if version == 1 and stop - body >= 32:
                scale = int.from_bytes(data[body + 20 : body + 24], "big")
                length = int.from_bytes(data[body + 24 : body + 32], "big")
                unknown = length == 2**64 - 1
            elif version == 0:
                scale = int.from_bytes(data[body + 12 : body + 16], "big")
                length = int.from_bytes(data[body + 16 : body + 20], "big")
                unknown = length == 2**32 - 1
            else:
                return None
            return None if unknown or not scale else length / scale
    return None


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
        if not accepts(content_type, accepted):
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
    data = b"".join(chunks)
    if content_type == OCTET_STREAM:  # only ever accepted for audio: the bytes say which
        content_type = sniff_audio(data) or content_type
    log.info("media.downloaded", content_type=content_type, bytes=size)
    return Media(data, content_type)
