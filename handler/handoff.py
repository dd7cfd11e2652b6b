"""The webhook's hand-off: every event into the FIFO queue, one message group per person.

SQS keeps each group in order and gives Lambda one group's messages at a time, so a person's
messages are answered one by one in the order they arrived while other people are answered
in parallel. The deduplication id is the event's: Facebook's redelivery of an event within
five minutes is dropped by SQS itself, and a later one by the worker's record of the event.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from .events import Inbound, merge_captions

MAX_ENTRIES = 10  # SendMessageBatch's limit
# SQS refuses a batch whose bodies add up to more than 256 KiB: stay well under it.
MAX_BATCH_BYTES = 200_000
# Characters outside the XML 1.0 set, which SQS refuses in a message body.
_REFUSED_BY_SQS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class HandoffError(RuntimeError):
    """Not every event reached the queue: the webhook answers 5xx so Facebook delivers again
    (the queue drops what it already has)."""


def dedupe_id(event: Inbound) -> str:
    """SQS takes up to 128 characters from a narrow alphabet: a hash of the event id fits."""
    return hashlib.sha256(event.event_id.encode("utf-8", "surrogatepass")).hexdigest()


def body(event: Inbound) -> str:
    """The event as JSON in UTF-8 (escaped non-Latin text would take up to six times the
    bytes), but with what SQS refuses in a body (U+FFFE, U+FFFF) escaped: the text arrives
    whole, and a sender cannot make a delivery fail for good."""
    text = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return _REFUSED_BY_SQS.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def in_order(events: Sequence[Inbound]) -> list[Inbound]:
    """One delivery's events by the time they were sent, when Facebook gave every one a time;
    ties (and unknown times) keep their place in the delivery."""
    if all(e.timestamp > 0 for e in events):
        return sorted(events, key=lambda e: e.timestamp)
    return list(events)


def entries(events: Sequence[Inbound]) -> list[dict[str, Any]]:
    """SendMessageBatch entries, one per event; a repeat within the delivery is sent once, and
    a photo and the text sent with it are one event (``events.merge_captions``)."""
    unique: list[Inbound] = []
    seen: set[str] = set()
    for event in in_order(events):
        dedupe = dedupe_id(event)
        if dedupe not in seen:
            seen.add(dedupe)
            unique.append(event)
    return [
        {
            "Id": str(n),
            "MessageBody": body(event),
            "MessageGroupId": event.psid,
            "MessageDeduplicationId": dedupe_id(event),
        }
        for n, event in enumerate(merge_captions(unique))
    ]


def batches(made: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Entries in order, in calls of at most ten entries and ``MAX_BATCH_BYTES``."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in made:
        entry_size = len(entry["MessageBody"].encode("utf-8", "surrogatepass"))
        if batch and (len(batch) == MAX_ENTRIES or size + entry_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


class Handoff:
    def __init__(self, client: Any, queue_url: str | None) -> None:
        self._sqs = client
        self._url = queue_url

    def enqueue(self, events: Sequence[Inbound]) -> int:
        """Send every event, in order; returns how many were sent. Raises ``HandoffError``
        unless SQS accepted them all."""
        if not self._url:
            raise HandoffError("QUEUE_URL is not set")
        sent = 0
        for batch in batches(entries(events)):
            try:
                response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=batch)
            except Exception as error:  # botocore raises many types; all mean "not queued"
                raise HandoffError(type(error).__name__) from None
            failed = response.get("Failed") or []
            if failed:
                codes = sorted({str(f.get("Code")) for f in failed})
                raise HandoffError(f"{len(failed)} of {len(batch)} refused: {', '.join(codes)}")
            sent += len(batch)
        return sent
