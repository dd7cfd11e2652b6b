"""Hands the slow work to an asynchronous invocation of this same function."""

from __future__ import annotations

import json
import os

from .clients import aws
from .events import WORK_MARKER, Inbound


class DispatchError(RuntimeError):
    """The hand-off failed: the webhook answers 5xx so that Facebook delivers again."""


def build_work_event(events: list[Inbound]) -> dict:
    return {WORK_MARKER: 1, "events": [e.to_dict() for e in events]}


def dispatch(events: list[Inbound]) -> None:
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    if not function:
        raise DispatchError("AWS_LAMBDA_FUNCTION_NAME is not set")
    payload = json.dumps(build_work_event(events), separators=(",", ":")).encode()
    try:
        response = aws("lambda").invoke(
            FunctionName=function, InvocationType="Event", Payload=payload
        )
    except Exception as error:  # botocore raises many types; all mean "not handed off"
        raise DispatchError(type(error).__name__) from None
    if response.get("StatusCode") != 202:
        raise DispatchError(f"status {response.get('StatusCode')}")
