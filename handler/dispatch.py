"""Hands the slow work to asynchronous invocations of this same function."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from .clients import aws
from .events import WORK_MARKER, Inbound

# Under Lambda's limit for an asynchronous payload (256 KB, raised to 1 MB in 2025).
PAYLOAD_BUDGET = 200_000


class DispatchError(RuntimeError):
    """The hand-off failed: the webhook answers 5xx so that Facebook delivers again."""


def build_work_event(events: list[Inbound]) -> dict:
    return {WORK_MARKER: 1, "events": [e.to_dict() for e in events]}


def _encode(events: list[Inbound]) -> bytes:
    # ensure_ascii=False: escaped non-Latin text would take up to six times the bytes.
    event = build_work_event(events)
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def payloads(events: list[Inbound], budget: int = PAYLOAD_BUDGET) -> Iterator[bytes]:
    """The events in order, in as few payloads under ``budget`` as they fit in."""
    batch: list[Inbound] = []
    for event in events:
        if batch and len(_encode([*batch, event])) > budget:
            yield _encode(batch)
            batch = []
        batch.append(event)
    if batch:
        yield _encode(batch)


def dispatch(events: list[Inbound]) -> None:
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    if not function:
        raise DispatchError("AWS_LAMBDA_FUNCTION_NAME is not set")
    for payload in payloads(events):
        try:
            response = aws("lambda").invoke(
                FunctionName=function, InvocationType="Event", Payload=payload
            )
        except Exception as error:  # botocore raises many types; all mean "not handed off"
            raise DispatchError(type(error).__name__) from None
        if response.get("StatusCode") != 202:
            raise DispatchError(f"status {response.get('StatusCode')}")
