"""What the stand-ins pass a handler as Lambda's Python runtime does: the context object."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass
class LambdaContext:
    """The attributes and method of the Python runtime's context object.

    ``memory_limit_in_mb`` is a string, as in the real runtime (it comes from an env var).
    """

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float = field(repr=False)  # time.monotonic() when the function times out
    client_context: Any = None
    identity: Any = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def lambda_context(
    function_name: str, timeout_seconds: float, memory_mb: int = 512
) -> LambdaContext:
    """A fresh context for one invocation that times out ``timeout_seconds`` from now."""
    request_id = str(uuid.uuid4())
    return LambdaContext(
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}",
        memory_limit_in_mb=str(memory_mb),
        aws_request_id=request_id,
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name=f"{time.strftime('%Y/%m/%d')}/[$LATEST]{request_id.replace('-', '')}",
        deadline=time.monotonic() + timeout_seconds,
    )
