"""Hands the slow work on: events into their senders' inboxes, then one asynchronous
invocation of this same function per sender to drain theirs.

The invocation carries the events it was started for, though the inbox has them: if its
retries run out, Lambda's record on the failure queue holds the messages themselves, and
invoking the function with that record's payload posts them again and answers them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator

from .clients import aws
from .events import WORK_MARKER, Inbound
from .inbox import Inbox, in_order

# Under Lambda's limit for an asynchronous payload (256 KB, raised to 1 MB in 2025).
PAYLOAD_BUDGET = 200_000


class DispatchError(RuntimeError):
    """The hand-off failed: the webhook answers 5xx so that Facebook delivers again."""


def drain_request(psid: str, events: Iterable[Inbound] = ()) -> dict:
    """The work event that asks a worker to answer what waits in one person's inbox."""
    return {WORK_MARKER: 1, "drain": [psid], "events": [e.to_dict() for e in events]}


def _encode(psid: str, events: list[Inbound]) -> bytes:
    # ensure_ascii=False: escaped non-Latin text would take up to six times the bytes.
    request = drain_request(psid, events)
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()


def payloads(psid: str, events: list[Inbound], budget: int = PAYLOAD_BUDGET) -> Iterator[bytes]:
    """One person's events in order, in as few drain requests under ``budget`` as fit."""
    batch: list[Inbound] = []
    for event in events:
        if batch and len(_encode(psid, [*batch, event])) > budget:
            yield _encode(psid, batch)
            batch = []
        batch.append(event)
    yield _encode(psid, batch)


def invoke_drain(psid: str, events: list[Inbound]) -> None:
    """Start the drain of one person's inbox: people are answered in parallel."""
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    if not function:
        raise DispatchError("AWS_LAMBDA_FUNCTION_NAME is not set")
    for payload in payloads(psid, events):
        try:
            response = aws("lambda").invoke(
                FunctionName=function, InvocationType="Event", Payload=payload
            )
        except Exception as error:  # botocore raises many types; all mean "not handed off"
            raise DispatchError(type(error).__name__) from None
        if response.get("StatusCode") != 202:
            raise DispatchError(f"status {response.get('StatusCode')}")


def dispatch(inbox: Inbox, events: list[Inbound]) -> None:
    """Post, then invoke: the drain always finds the events it was started for.

    Facebook delivers again after a failure; posting the same event again overwrites its
    entry, and a drain with nothing left to do ends at once.
    """
    events = in_order(events)
    try:
        inbox.post(events)
    except Exception as error:  # throttling, a dropped connection: not handed off
        raise DispatchError(f"inbox: {type(error).__name__}") from None
    by_person: dict[str, list[Inbound]] = {}
    for event in events:
        by_person.setdefault(event.psid, []).append(event)
    for psid, theirs in by_person.items():
        invoke_drain(psid, theirs)
