"""The failure queue, where a message the bridge gave up on waits for the owner.

Lambda sends an asynchronous invocation whose retries ran out to the same queue; records from
both have the same shape. Invoking the function with a record's ``requestPayload`` answers
what it names: a parked message's payload is a replay (the message is posted again), a
drain's payload drains the person's inbox, where its messages still wait.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .events import WORK_MARKER, Inbound
from .logs import log

CONDITION = "RetriesExhausted"


def parked_record(event: Inbound, tries: int, why: str, now: datetime) -> dict[str, Any]:
    """The record of a message tried ``tries`` times, in the shape of Lambda's own."""
    return {
        "version": "1.0",
        "timestamp": now.astimezone(UTC).isoformat(timespec="milliseconds"),
        "requestContext": {"condition": CONDITION, "approximateInvokeCount": tries},
        "requestPayload": {WORK_MARKER: 1, "events": [event.to_dict()], "replay": 1},
        "responsePayload": {"errorType": why},
    }


class FailureQueue:
    def __init__(self, client: Any, queue_url: str | None) -> None:
        self._sqs = client
        self._url = queue_url

    def park(self, event: Inbound, tries: int, why: str) -> None:
        record = parked_record(event, tries, why, datetime.now(UTC))
        if not self._url:  # a local run has no queue: the error log line is the record
            log.error("event.not_parked", event_id=event.event_id, why="no failure queue")
            return
        self._sqs.send_message(
            QueueUrl=self._url, MessageBody=json.dumps(record, ensure_ascii=False)
        )
