"""What the bridge costs on AWS, from the measured durations, requests and log bytes.

Nothing here is measured: it prices what ``bench.e2e`` (and ``bench.warm``, ``bench.cold``)
measured and counted, with the prices below. Month = 30 days; no free tier is subtracted.

Per message: the webhook's invocation and its one SendMessageBatch; the mapping's
ReceiveMessage and DeleteMessageBatch and the worker's invocation, once per batch (a batch
holds one message at a trickle, which is what the one-at-a-time run measures, and up to ten
under load); the worker's DynamoDB requests, with transactions at twice the units; logs.
Fixed: the KMS key, the keep-warm ping, and the mapping's long polls of the empty queue.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from handler import schema

PRICES: dict[str, Any] = {
    "as_of": "2026 for AWS (us-east-1) and 2025 for OpenAI",
    "lambda_request": 0.20 / 1_000_000,
    "lambda_arm64_gb_second": 0.0000133334,
    "dynamodb_write_unit": 0.625 / 1_000_000,  # on demand, per write request unit
    "dynamodb_read_unit": 0.125 / 1_000_000,  # on demand, per read request unit
    "sqs_fifo_request": 0.50 / 1_000_000,  # per request (each 64 KB of payload is one)
    "logs_ingested_gb": 0.50,  # CloudWatch Logs, standard class
    "kms_key_month": 1.00,  # the stack's customer-managed key
    "ssm_standard_parameter": 0.0,  # standard parameters and their standard API throughput
    "openai_input_token": 0.40 / 1_000_000,
    "openai_output_token": 1.60 / 1_000_000,
}

MEMORY_MB = 512  # the stack's default (infra.config.BridgeSettings.memory_mb)
KEEP_WARM_MINUTES = 20  # the stack's default
# Lambda's pollers long-poll the queue even when it is empty: about 0.6 million requests a
# month (inside SQS's free million, which this model does not subtract).
IDLE_POLL_REQUESTS_MONTH = 600_000
DAYS = 30
VOLUMES = (100, 1_000, 10_000)  # messages a day
MODEL_LATENCIES_S = (0.0, 2.0, 5.0)  # the worker waits for the model: Lambda bills the wait
TYPICAL_TOKENS = {"input": 300, "output": 300}  # a question with its history, and the answer
CHARS_PER_TOKEN = 4
LOG_EVENT_OVERHEAD = 26  # bytes CloudWatch counts per event beyond the message (conservative)
GB = 1024**3


def platform_log_bytes(duration_ms: float) -> int:
    """Bytes of the two records Lambda writes per invocation in JSON log format."""
    request_id = str(uuid.uuid4())
    stamp = "2026-01-01T00:00:00.000Z"
    start = {
        "time": stamp,
        "type": "platform.start",
        "record": {"requestId": request_id, "version": "$LATEST"},
    }
    report = {
        "time": stamp,
        "type": "platform.report",
        "record": {
            "requestId": request_id,
            "metrics": {
                "durationMs": round(duration_ms, 2),
                "billedDurationMs": math.ceil(duration_ms),
                "memorySizeMB": MEMORY_MB,
                "maxMemoryUsedMB": 96,
            },
            "status": "success",
        },
    }
    return sum(
        len(json.dumps(r, separators=(",", ":"))) + 1 + LOG_EVENT_OVERHEAD for r in (start, report)
    )


def typical_exchange() -> dict[str, Any]:
    """A typical question and answer (``TYPICAL_TOKENS``) as DynamoDB stores them: the HISTORY
    item once a conversation of such exchanges fills the history budget, and the reply the
    event's item holds from the answer's record until the finish."""
    from bench.wire import attribute_size, item_size
    from handler.bot import text_reply
    from handler.conversation import remember
    from handler.settings import Settings

    defaults = Settings(table_name="t")
    question = "q" * (TYPICAL_TOKENS["input"] * CHARS_PER_TOKEN)
    answer = "a" * (TYPICAL_TOKENS["output"] * CHARS_PER_TOKEN)
    turns: list[dict[str, str]] = []
    for _ in range(10):
        turns = remember(
            turns, question, answer, defaults.history_turns, defaults.history_max_chars
        )
    item = {
        **schema.history_key("1000000000000001"),
        "turns": {"S": json.dumps(turns, ensure_ascii=False)},
        "expires_at": {"N": "1767225600"},
    }
    reply = text_reply(answer, question, answer).to_json()
    return {
        "history_bytes": item_size(item),
        "turns": len(turns),
        "reply_bytes": len("reply") + attribute_size({"S": reply}),
    }


def gb_seconds(ms: float) -> float:
    """Lambda bills whole milliseconds of the configured memory."""
    return math.ceil(ms) / 1000 * MEMORY_MB / 1024


def run(measured: dict[str, Any]) -> dict[str, Any]:
    e2e = measured["e2e"]
    seq = e2e["sequential"]
    warm = measured.get("warm")
    webhook_ms = warm["latency_ms"]["median"] if warm else seq["webhook_ms"]["median"]
    worker_ms = seq["worker_ms"]["median"]
    keep_warm_ms = e2e["keep_warm"]["ms"]["median"]
    invocations = seq["invocations"] / seq["messages"]  # worker invocations per message
    sqs_requests = seq["aws"]["sqs_per_message"]
    p = PRICES

    # DynamoDB as measured, and the same requests re-priced by bench.e2e for typical
    # exchanges (a full conversation, a typical answer recorded on the event's item).
    db = seq["dynamodb_per_message"]
    typical = seq["dynamodb_typical"]
    full_history = {
        "wru": typical["wru"] / seq["messages"],
        "rru": typical["rru"] / seq["messages"],
    }
    handler_log = sum(seq["log_bytes_per_message"].values())
    handler_lines = sum(seq["log_lines_per_message"].values())
    log_bytes = (
        handler_log
        + handler_lines * LOG_EVENT_OVERHEAD
        + platform_log_bytes(webhook_ms)
        + invocations * platform_log_bytes(worker_ms)
    )
    keep_warm_log = (
        e2e["keep_warm"]["log_bytes"] + LOG_EVENT_OVERHEAD + platform_log_bytes(keep_warm_ms)
    )
    pings = DAYS * 24 * 60 // KEEP_WARM_MINUTES

    def per_message(model_s: float, dynamo: dict[str, float]) -> dict[str, float]:
        parts = {
            "lambda_requests": (1 + invocations) * p["lambda_request"],
            "lambda_compute": (
                gb_seconds(webhook_ms) + invocations * gb_seconds(worker_ms + model_s * 1000)
            )
            * p["lambda_arm64_gb_second"],
            "sqs": sqs_requests * p["sqs_fifo_request"],
            "dynamodb": dynamo["wru"] * p["dynamodb_write_unit"]
            + dynamo["rru"] * p["dynamodb_read_unit"],
            "logs": log_bytes / GB * p["logs_ingested_gb"],
        }
        parts["total"] = sum(parts.values())
        return parts

    fixed = {
        "kms_key": p["kms_key_month"],
        "keep_warm": pings
        * (
            p["lambda_request"]
            + gb_seconds(keep_warm_ms) * p["lambda_arm64_gb_second"]
            + keep_warm_log / GB * p["logs_ingested_gb"]
        ),
        "sqs_idle_polling": IDLE_POLL_REQUESTS_MONTH * p["sqs_fifo_request"],
    }
    fixed["total"] = sum(fixed.values())
    openai = (
        TYPICAL_TOKENS["input"] * p["openai_input_token"]
        + TYPICAL_TOKENS["output"] * p["openai_output_token"]
    )

    cases = {}
    for model_s in MODEL_LATENCIES_S:
        for label, dynamo in (("short", db), ("full_history", full_history)):
            unit = per_message(model_s, dynamo)
            cases[f"model_{model_s:g}s_{label}"] = {
                "model_latency_s": model_s,
                "history": label,
                "per_message": unit,
                "per_1000_messages": unit["total"] * 1000,
                "per_month": {str(v): unit["total"] * v * DAYS + fixed["total"] for v in VOLUMES},
            }
    cold = measured.get("cold")
    init_ms = cold["variants"]["handler"]["to_200_ms"]["median"] if cold else None
    return {
        "prices": PRICES,
        "memory_mb": MEMORY_MB,
        "days": DAYS,
        "inputs": {
            "webhook_ms": webhook_ms,
            "worker_ms": worker_ms,
            "keep_warm_ms": keep_warm_ms,
            "billed_webhook_ms": math.ceil(webhook_ms),
            "billed_worker_ms": math.ceil(worker_ms),
            "worker_invocations_per_message": invocations,
            "burst_records_per_invocation": e2e["burst"]["records_per_invocation"]["mean"],
            "sqs_requests_per_message": sqs_requests,
            "sqs_operations_per_message": {
                name: n
                for role in ("function", "mapping")
                for name, n in seq["aws"][role].items()
                if name.startswith("sqs ") and "(empty)" not in name
            },
            "idle_poll_requests_per_month": IDLE_POLL_REQUESTS_MONTH,
            "dynamodb_measured": db,
            "dynamodb_full_history": full_history,
            "typical_exchange": seq["typical_exchange"],
            "dynamodb_typical_by_kind": {
                "wru": {k: v / seq["messages"] for k, v in typical["wru_by_kind"].items()},
                "rru": {k: v / seq["messages"] for k, v in typical["rru_by_kind"].items()},
            },
            "log_bytes_per_message": log_bytes,
            "handler_log_bytes_per_message": handler_log,
            "keep_warm_pings_per_month": pings,
            "keep_warm_log_bytes": keep_warm_log,
        },
        "fixed_per_month": fixed,
        "cases": cases,
        "openai_per_message": openai,
        "openai_per_1000": openai * 1000,
        "openai_per_month": {str(v): openai * v * DAYS for v in VOLUMES},
        "init_per_cold_start": gb_seconds(init_ms) * p["lambda_arm64_gb_second"]
        if init_ms
        else None,
    }
