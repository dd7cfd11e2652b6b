"""Downloading what people send from Messenger's CDN (the simulator's): caps, types, failures,
and nothing of it in the logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import requests

from handler.media import (
    AUDIO_TYPES,
    IMAGE_TYPES,
    OCTET_STREAM,
    MediaError,
    download,
    mp4_seconds,
)
from local.graph import MessengerSimulator

JPEG = b"\xff\xd8\xff" + b"j" * 5000


@pytest.fixture
def cdn() -> Iterator[MessengerSimulator]:
    with MessengerSimulator() as simulator:
        yield simulator


def fetch(url: str, most: int = 10_000, accepted: tuple[str, ...] = IMAGE_TYPES):
    return download(requests.Session(), url, most, accepted, time.monotonic() + 10)


def test_a_photo_is_downloaded_with_its_type_and_becomes_a_data_url(cdn: MessengerSimulator):
    media = fetch(cdn.host_attachment(JPEG, "image/jpeg; charset=binary"))
    assert (media.data, media.content_type) == (JPEG, "image/jpeg")
    assert media.data_url().startswith("data:image/jpeg;base64,/9j/")


def test_a_voice_message_is_taken_as_audio_even_when_labelled_mp4_video(cdn: MessengerSimulator):
    media = fetch(cdn.host_attachment(b"\x00" * 100, "video/mp4"), accepted=AUDIO_TYPES)
    assert media.filename == "voice.mp4"
    with pytest.raises(MediaError, match="wrong_type"):
        fetch(cdn.host_attachment(b"\x00" * 100, "video/mp4"))  # not a photo
    assert fetch(cdn.host_attachment(b"x", "audio/mpeg"), accepted=AUDIO_TYPES).filename == (
        "voice.mp3"
    )


@pytest.mark.parametrize("content_type", ["image/png", "image/webp", "image/gif"])
def test_the_photo_formats_the_model_opens_are_taken(cdn: MessengerSimulator, content_type: str):
    assert fetch(cdn.host_attachment(b"img" * 10, content_type)).content_type == content_type


@pytest.mark.parametrize(
    "content_type", ["image/heic", "image/bmp", "image/tiff", "image/svg+xml", OCTET_STREAM]
)
def test_other_image_types_are_refused_before_the_model(cdn: MessengerSimulator, content_type):
    with pytest.raises(MediaError) as caught:
        fetch(cdn.host_attachment(b"img" * 10, content_type))
    assert (caught.value.reason, caught.value.retryable) == ("wrong_type", False)


def test_a_voice_message_served_as_octet_stream_is_taken_by_its_bytes(cdn: MessengerSimulator):
    mp4 = fetch(cdn.host_attachment(M4A, OCTET_STREAM), accepted=AUDIO_TYPES)
    assert (mp4.content_type, mp4.filename) == ("audio/mp4", "voice.mp4")
    ogg = fetch(cdn.host_attachment(b"OggS" + b"o" * 50, OCTET_STREAM), accepted=AUDIO_TYPES)
    assert ogg.filename == "voice.ogg"
    unknown = fetch(cdn.host_attachment(b"?" * 50, OCTET_STREAM), accepted=AUDIO_TYPES)
    assert (unknown.content_type, unknown.filename) == (OCTET_STREAM, "voice.mp4")


def mp4(seconds: float, timescale: int = 44_100, version: int = 0, moov_last: bool = True) -> bytes:
    """An M4A file as a phone records it: ftyp, then mdat and moov (with its mvhd) in either
    order."""

    def box(kind: bytes, body: bytes) -> bytes:
        return (8 + len(body)).to_bytes(4, "big") + kind + body

    duration = round(seconds * timescale)
    if version == 1:
        times = bytes(16) + timescale.to_bytes(4, "big") + duration.to_bytes(8, "big")
    else:
        times = bytes(8) + timescale.to_bytes(4, "big") + duration.to_bytes(4, "big")
    mvhd = box(b"mvhd", bytes([version]) + bytes(3) + times + bytes(80))
    moov = box(b"moov", mvhd + box(b"trak", bytes(40)))
    mdat = box(b"mdat", b"\x21" * 2000)
    ftyp = box(b"ftyp", b"M4A \x00\x00\x00\x00isomM4A ")
    return ftyp + (mdat + moov if moov_last else moov + mdat)


M4A = mp4(12)


def test_the_length_of_an_mp4_voice_clip_is_read_from_its_header():
    assert mp4_seconds(mp4(12)) == pytest.approx(12, abs=0.001)
    assert mp4_seconds(mp4(301, moov_last=False)) == pytest.approx(301, abs=0.001)
    assert mp4_seconds(mp4(3600, timescale=1000, version=1)) == 3600
    # Nothing usable: another format, a file cut before its moov, junk sizes, no timescale.
    for junk in (b"OggS" + bytes(100), mp4(12)[:-60], b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 99):
        assert mp4_seconds(junk) is None
    assert mp4_seconds(mp4(12, timescale=0)) is None


def test_a_file_over_the_cap_is_refused_without_reading_it_all(cdn: MessengerSimulator):
    with pytest.raises(MediaError) as caught:
        fetch(cdn.host_attachment(JPEG, "image/jpeg"), most=1000)
    assert (caught.value.reason, caught.value.retryable) == ("too_large", False)


@pytest.mark.parametrize(("status", "retryable"), [(403, False), (404, False), (503, True)])
def test_a_url_the_cdn_refuses_says_whether_to_try_again(
    cdn: MessengerSimulator, status: int, retryable: bool
):
    with pytest.raises(MediaError) as caught:
        fetch(cdn.host_attachment(JPEG, "image/jpeg", status=status))
    assert (caught.value.reason, caught.value.retryable) == (f"status_{status}", retryable)


def test_an_unreachable_cdn_may_do_better_later():
    with pytest.raises(MediaError) as caught:
        fetch("http://127.0.0.1:9/nothing.jpg")
    assert caught.value.retryable and caught.value.reason.startswith("connection:")


def test_no_time_left_is_retryable_without_a_request(cdn: MessengerSimulator):
    url = cdn.host_attachment(JPEG, "image/jpeg")
    with pytest.raises(MediaError, match="no_time_left"):
        download(requests.Session(), url, 10_000, IMAGE_TYPES, time.monotonic() + 0.5)
    assert cdn.downloads == []


def test_neither_the_url_nor_the_bytes_are_logged(cdn: MessengerSimulator):
    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.getMessage()} {getattr(record, 'fields', {})}")

    handler = Catch()
    logging.getLogger("bridge").addHandler(handler)
    try:
        url = cdn.host_attachment(JPEG, "image/jpeg", "secret-name.jpg")
        fetch(url)
        with pytest.raises(MediaError):
            fetch(url, accepted=AUDIO_TYPES)
    finally:
        logging.getLogger("bridge").removeHandler(handler)
    assert lines and not any("secret-name" in line or "cdn" in line for line in lines)
