"""SQS for ``replay``: a thin client over the calls it makes, and the walk over a FIFO
dead-letter queue that sees every message once, in each person's order.

A FIFO queue hands out no further message of a group while one of the group is in flight,
so reading the whole dead-letter queue means keeping what was read in flight (a visibility
timeout) until the end, then making it visible again (``ChangeMessageVisibility`` 0): what
the CLI did not take off the queue is left as it was, for the next look or the next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Long enough for one run to decide on everything it read; short enough that a run killed
# half-way leaves the messages hidden only for a few minutes.
READ_VISIBILITY_SECONDS = 300
# One long poll when the queue looks empty: a short one may miss messages SQS holds elsewhere.
EMPTY_WAIT_SECONDS = 1
SQS_BATCH_MAX = 10  # ReceiveMessage, ChangeMessageVisibilityBatch
# A round reopens the groups a deletion unblocked; each needs a deletion, so this only guards
# against a queue that fills as fast as it is emptied.
MAX_ROUNDS = 100


@dataclass(frozen=True)
class Letter:
    """One message read from the dead-letter queue, as SQS gave it."""

    message_id: str
    receipt_handle: str
    body: str
    group: str  # MessageGroupId: the person's PSID
    receive_count: int  # ApproximateReceiveCount, this receive included
    sent_ms: int  # SentTimestamp (for a FIFO dead-letter queue: when it was moved there)
    dedupe_id: str


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def letter_from(raw: dict[str, Any]) -> Letter:
    attributes = raw.get("Attributes") or {}
    return Letter(
        message_id=str(raw.get("MessageId", "")),
        receipt_handle=str(raw.get("ReceiptHandle", "")),
        body=str(raw.get("Body", "")),
        group=str(attributes.get("MessageGroupId", "")),
        receive_count=_int(attributes.get("ApproximateReceiveCount")),
        sent_ms=_int(attributes.get("SentTimestamp")),
        dedupe_id=str(attributes.get("MessageDeduplicationId", "")),
    )


def queue_name(arn: str) -> tuple[str, str]:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` -> (NAME, ACCOUNT)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return parts[5], parts[4]


class Sqs:
    """The SQS calls ``replay`` makes, one method each, over a boto3 SQS client."""

    def __init__(self, client: Any) -> None:
        self._sqs = client

    def receive(self, url: str, wait_seconds: int = 0) -> list[Letter]:
        response = self._sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=SQS_BATCH_MAX,
            VisibilityTimeout=READ_VISIBILITY_SECONDS,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
        )
        return [letter_from(raw) for raw in response.get("Messages", [])]

    def release(self, url: str, receipt_handles: Iterable[str]) -> None:
        """Visible again at once, as if never read."""
        handles = list(receipt_handles)
        for start in range(0, len(handles), SQS_BATCH_MAX):
            entries = [
                {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for n, handle in enumerate(handles[start : start + SQS_BATCH_MAX])
            ]
            self._sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)

    def delete(self, url: str, receipt_handle: str) -> None:
        self._sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt_handle)

    def send(self, url: str, body: str, group: str, dedupe_id: str) -> str:
        """Send one message to a FIFO queue; returns its new message id."""
        response = self._sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedupe_id
        )
        return str(response.get("MessageId", ""))

    def depth(self, url: str) -> tuple[int, int]:
        """(messages waiting, messages in flight), as SQS approximates them."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ).get("Attributes", {})
        return (
            _int(attributes.get("ApproximateNumberOfMessages")),
            _int(attributes.get("ApproximateNumberOfMessagesNotVisible")),
        )

    def url_of(self, queue: str) -> str:
        """A queue URL as given, or the URL of a queue named in this account and region."""
        if "://" in queue:
            return queue
        return str(self._sqs.get_queue_url(QueueName=queue)["QueueUrl"])

    def dead_letter_of(self, queue_url: str) -> str | None:
        """The dead-letter queue the queue's redrive policy names, if any."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
        ).get("Attributes", {})
        try:
            arn = json.loads(attributes.get("RedrivePolicy") or "{}").get("deadLetterTargetArn")
        except (json.JSONDecodeError, AttributeError):
            return None
        if not arn:
            return None
        name, account = queue_name(arn)
        found = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
        return str(found["QueueUrl"])

    def sources_of(self, dead_letter_url: str) -> list[str]:
        """The queues whose redrive policy names this dead-letter queue."""
        urls: list[str] = []
        token: str | None = None
        while True:
            page = self._sqs.list_dead_letter_source_queues(
                QueueUrl=dead_letter_url, **({"NextToken": token} if token else {})
            )
            urls.extend(page.get("queueUrls", []))
            token = page.get("NextToken")
            if not token:
                return urls


def walk(sqs: Sqs, url: str, visit: Callable[[Letter], bool]) -> None:
    """Call ``visit`` once for every message on the queue, each person's in order.

    ``visit`` returns True when it took the message off the queue; the others stay in flight
    until the walk ends and are then made visible again, untouched. A message held in flight
    keeps its group's later messages from being handed out, so when a deletion happened in a
    group that also holds one, the held ones are let go and the queue is read again (they
    come back first and are recognised by their message id).
    """
    held: dict[str, Letter] = {}
    seen: set[str] = set()
    try:
        for _ in range(MAX_ROUNDS):
            reopen = False
            while batch := sqs.receive(url) or sqs.receive(url, EMPTY_WAIT_SECONDS):
                for letter in batch:
                    if letter.message_id in seen:
                        held[letter.message_id] = letter  # its new receipt handle
                        continue
                    seen.add(letter.message_id)
                    if not visit(letter):
                        held[letter.message_id] = letter
                    elif any(h.group == letter.group for h in held.values()):
                        reopen = True
            if not (reopen and held):
                return
            sqs.release(url, [h.receipt_handle for h in held.values()])
            held.clear()
    finally:
        if held:
            sqs.release(url, [h.receipt_handle for h in held.values()])
