"""What the bridge costs, on AWS and at OpenAI, from what the benchmarks measured.

AWS: nothing here is measured; it prices what ``bench.e2e`` (and ``bench.warm``,
``bench.cold``) measured and counted, with the 2026 us-east-1 list prices below. Month = 30
days; no free tier is subtracted (the dashboard is counted as if the account's three free
ones were taken; the page says what it is without).

Per message: the webhook's invocation and its one SendMessageBatch; the mapping's
ReceiveMessage and DeleteMessageBatch and the worker's invocation, once per batch (the
stack's ``batchSize`` is 1: a message a batch); the worker's DynamoDB requests, with
transactions at twice the units; the log lines, the metric lines (EMF) among them.
Fixed: the KMS key, the keep-warm ping, the mapping's long polls of the empty queue, and the
operations: the custom metrics, the alarms, the dashboard and the owner's SNS topic.

OpenAI: the default model (``DEFAULTS["model"]``) at the handler's own default prices
(``DEFAULTS["modelPrices"]`` through ``handler.settings.parse_model_prices``, not a copy),
every call priced by ``handler.budget`` as the bot prices it against the page's spend cap.
Tokens cannot be measured here (the bench's model is a fake): one person's day of questions
is played through the handler's own conversation rules (``handler.conversation``: the
history budget, the summary of older turns) with the lengths in ``TYPICAL``, assumptions the
page states.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from handler import schema
from handler.defaults import DEFAULTS

PRICES: dict[str, Any] = {
    "as_of": "2026 list prices, us-east-1",
    "lambda_request": 0.20 / 1_000_000,
    "lambda_arm64_gb_second": 0.0000133334,
    "dynamodb_write_unit": 0.625 / 1_000_000,  # on demand, per write request unit
    "dynamodb_read_unit": 0.125 / 1_000_000,  # on demand, per read request unit
    "sqs_fifo_request": 0.50 / 1_000_000,  # per request (each 64 KB of payload is one)
    "logs_ingested_gb": 0.50,  # CloudWatch Logs, standard class (EMF lines too)
    "kms_key_month": 1.00,  # the stack's customer-managed key
    "ssm_standard_parameter": 0.0,  # standard parameters and their standard API throughput
    # Custom metrics, first 10,000: prorated by the hour and metered only while data comes,
    # so a metric that gets no data point (a failure that never happens) costs nothing.
    "cloudwatch_metric_month": 0.30,
    "cloudwatch_alarm_month": 0.10,  # per alarm metric, standard resolution (period >= 60 s)
    "cloudwatch_high_resolution_alarm_month": 0.30,
    "cloudwatch_dashboard_month": 3.00,  # per dashboard beyond the free ones
    "free_dashboards": 3,  # per account
    "sns_email_free_month": 1_000,  # e-mail notifications free a month
    "sns_email": 2.00 / 100_000,  # per e-mail notification beyond them
    "sns_publish": 0.50 / 1_000_000,  # per request, beyond the free million a month
}

MEMORY_MB: int = DEFAULTS["memoryMb"]
KEEP_WARM_MINUTES: int = DEFAULTS["keepWarmMinutes"]
# Lambda's pollers long-poll the queue even when it is empty: about 0.6 million requests a
# month (inside SQS's free million, which this model does not subtract).
IDLE_POLL_REQUESTS_MONTH = 600_000
DAYS = 30
VOLUMES = (100, 1_000, 10_000)  # messages a day
# The worker waits for the model and Lambda bills the wait; a reasoning model (even at low
# effort) takes seconds, longer with a summary to write first.
MODEL_LATENCIES_S = (0.0, 2.0, 5.0, 10.0)
HEADLINE_MODEL_S = 5.0  # the case the summary quotes
CHARS_PER_TOKEN = 4
LOG_EVENT_OVERHEAD = 26  # bytes CloudWatch counts per event beyond the message (conservative)
GB = 1024**3

# Assumptions of a typical exchange (not measured: the bench's model is a fake).
TYPICAL: dict[str, float] = {
    "question_tokens": 40,  # a question typed in Messenger, ~160 characters
    "answer_tokens": 250,  # the answer the person reads, ~1,000 characters
    "reasoning_tokens": 250,  # per model call at reasoningEffort low, billed as output
    "summary_tokens": 160,  # the summary of older turns: its prompt asks for <= 120 words
    "message_overhead_tokens": 4,  # per chat message: its role and delimiters
    "voice_seconds": 20,  # a voice message
    # OpenAI's own estimate for gpt-4o-mini-transcribe, $0.003 a minute at $3.00 per million
    # audio tokens, is ~1,000 audio tokens a minute; speech is ~150 words, ~200 tokens.
    "audio_tokens_per_minute": 1_000,
    "speech_tokens_per_minute": 200,
    # A phone photo (a 1536x2048 Messenger image, or any above ~1.5 megapixels) fills the
    # 1,536 patches of 32x32 px that gpt-5-mini's images are cut into; OpenAI documents 1.62
    # tokens per patch for it (developers measure ~1.2: this is the upper bound).
    "image_patches": 1_536,
    "image_tokens_per_patch": 1.62,
}
# One person's day: the stack's daily question limit, in one conversation (the history
# lives historyTtlHours, 24), each question within OpenAI's prompt-cache lifetime of the last.
CONVERSATION_MESSAGES: int = DEFAULTS["dailyLimit"]
CACHE_MIN_TOKENS = 1_024  # OpenAI caches prompts from this length...
CACHE_STEP_TOKENS = 128  # ...in steps of this many tokens of the shared prefix
# Metrics that get data only when something goes wrong or the page's cap is reached.
QUIET_METRICS = ("Failed", "Retries", "WebhookErrors", "SpendCapReached")


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


# -- the typical exchange, through the handler's conversation rules -------------------------


def _text(mark: str, n: int, tokens: float) -> str:
    """A text of ``tokens`` tokens, told apart from the others (the cache compares them)."""
    head = f"{mark}{n:03d} "
    return head + "x" * max(0, int(tokens * CHARS_PER_TOKEN) - len(head))


def _tokens(messages: list[dict[str, Any]]) -> int:
    overhead = int(TYPICAL["message_overhead_tokens"])
    return sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + overhead for m in messages)


def _cached(previous: list[dict[str, Any]] | None, messages: list[dict[str, Any]]) -> int:
    """The tokens OpenAI's prompt cache serves: the prefix shared with the previous request
    of the conversation, once it is long enough, in whole steps."""
    shared = 0
    for before, now in zip(previous or [], messages, strict=False):
        if before != now:
            break
        shared += _tokens([now])
    return shared // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS if shared >= CACHE_MIN_TOKENS else 0


def conversation_day() -> list[dict[str, Any]]:
    """One person's day of ``CONVERSATION_MESSAGES`` questions as the bot asks the model:
    per message its calls (``handler.llm.Usage``: a summary of older turns when the history
    outgrows its budget, then the answer) and the HISTORY item it stores."""
    from bench.wire import item_size
    from handler.conversation import build_messages, clip_summary, split_history, summary_request
    from handler.llm import Usage
    from handler.settings import Settings

    settings = Settings(table_name="t")  # the defaults: prompt, history budget, model
    reasoning = int(TYPICAL["reasoning_tokens"])
    turns: list[dict[str, str]] = []
    summary = ""
    previous: list[dict[str, Any]] | None = None
    day: list[dict[str, Any]] = []
    for n in range(CONVERSATION_MESSAGES):
        calls = []
        question = _text("q", n, TYPICAL["question_tokens"])
        older, history = split_history(turns, settings.history_turns, settings.history_max_chars)
        if older:
            request = summary_request(summary, older)
            output = int(TYPICAL["summary_tokens"]) + reasoning
            calls.append(Usage(settings.model, _tokens(request), 0, output, reasoning))
            summary = clip_summary(_text("s", n, TYPICAL["summary_tokens"]))
        messages = build_messages(settings.system_prompt, history, question, summary)
        output = int(TYPICAL["answer_tokens"]) + reasoning
        cached = _cached(previous, messages)
        calls.append(Usage(settings.model, _tokens(messages), cached, output, reasoning))
        previous = messages
        answer = _text("a", n, TYPICAL["answer_tokens"])
        turns = [
            *history,
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        item = {
            **schema.history_key("1000000000000001"),
            "turns": {"S": json.dumps(turns, ensure_ascii=False)},
            "expires_at": {"N": "1767225600"},
            **({"summary": {"S": summary}} if summary else {}),
        }
        day.append(
            {
                "calls": calls,
                "summarised": bool(older),
                "question": question,
                "answer": answer,
                "history_bytes": item_size(item),
                "turns": len(turns) // 2,
            }
        )
    return day


def typical_exchange() -> dict[str, Any]:
    """The typical exchange as DynamoDB stores it: the HISTORY item at its largest over a
    person's day (``conversation_day``), and the reply the event's item holds from the
    answer's record until the finish."""
    from bench.wire import attribute_size
    from handler.bot import text_reply

    day = conversation_day()
    largest = max(day, key=lambda m: m["history_bytes"])
    reply = text_reply(largest["answer"], largest["question"], largest["answer"]).to_json()
    return {
        "history_bytes": largest["history_bytes"],
        "turns": largest["turns"],
        "reply_bytes": len("reply") + attribute_size({"S": reply}),
        "question_tokens": TYPICAL["question_tokens"],
        "answer_tokens": TYPICAL["answer_tokens"],
    }


def openai_costs() -> dict[str, Any]:
    """The model's side per message: a text question, a voice message, a photo question."""
    from handler import budget
    from handler.llm import Usage
    from handler.settings import parse_model_prices

    prices = parse_model_prices(DEFAULTS["modelPrices"])
    model, transcriber = DEFAULTS["model"], DEFAULTS["transcriptionModel"]

    def dollars(usages: list[Any]) -> float:
        return budget.spend(usages, prices).cost_nusd / budget.NANO

    day = conversation_day()
    n = len(day)
    calls = [c for m in day for c in m["calls"]]
    text = dollars(calls) / n
    minutes = TYPICAL["voice_seconds"] / 60
    heard = Usage(
        transcriber,
        input_tokens=round(minutes * TYPICAL["audio_tokens_per_minute"]),
        output_tokens=round(minutes * TYPICAL["speech_tokens_per_minute"]),
    )
    image_tokens = round(TYPICAL["image_patches"] * TYPICAL["image_tokens_per_patch"])
    rows = {
        "text": text,
        # The transcript is then the question: the text exchange's tokens, and the audio's.
        "voice": text + dollars([heard]),
        # The photo rides on the answer's call as fresh input (the history keeps a mark).
        "photo": text + dollars([Usage(model, input_tokens=image_tokens)]),
    }
    cap = float(DEFAULTS["dailySpendLimitUsd"])

    def price(name: str) -> dict[str, float]:
        found = budget.price_of(name, prices)
        return {"input": found.input, "cached": found.cached, "output": found.output}

    return {
        "model": model,
        "reasoning_effort": DEFAULTS["reasoningEffort"],
        "price": price(model),
        "transcription_model": transcriber,
        "transcription_price": price(transcriber),
        "assumptions": dict(TYPICAL),
        "conversation_messages": n,
        "exchange": {
            "input_tokens": sum(c.input_tokens for c in calls) / n,
            "cached_tokens": sum(c.cached_tokens for c in calls) / n,
            "output_tokens": sum(c.output_tokens for c in calls) / n,
            "reasoning_tokens": sum(c.reasoning_tokens for c in calls) / n,
            "calls": len(calls) / n,
            "summaries": sum(1 for m in day if m["summarised"]) / n,
            "largest_prompt_tokens": max(c.input_tokens for c in calls),
        },
        "voice_usage": {"input_tokens": heard.input_tokens, "output_tokens": heard.output_tokens},
        "image_tokens": image_tokens,
        "rows": {
            kind: {
                "per_message": value,
                "per_1000": value * 1000,
                "per_month": {str(v): value * v * DAYS for v in VOLUMES},
            }
            for kind, value in rows.items()
        },
        "spend_cap": {
            "usd_per_day": cap,
            "text_messages_per_day": cap / text if cap > 0 and text > 0 else None,
            "text_messages_per_month": cap / text * DAYS if cap > 0 and text > 0 else None,
        },
    }


# -- operations: metrics, alarms, the dashboard, the topic ---------------------------------


def operations() -> dict[str, Any]:
    """What the stack's monitoring is made of, counted from the code that makes it."""
    from handler import metrics
    from infra.monitoring import Thresholds, Watched, alarm_specs

    by_kind = [name for name, m in metrics.METRICS.items() if m.by_kind]
    every = len(metrics.METRICS) + len(by_kind) * len(metrics.FAILURE_KINDS)
    quiet = [name for name in QUIET_METRICS if name in metrics.METRICS]
    usual = len(metrics.METRICS) - len(quiet)
    watched = Watched("stack", "function", "queue.fifo", "dead.fifo", "us-east-1", "dashboard")
    specs = alarm_specs(watched, Thresholds()) if DEFAULTS["alarms"] else []
    standard = sum(1 for s in specs if s.period >= 60)
    p = PRICES
    return {
        "metrics_declared": len(metrics.METRICS),
        "metrics_by_kind": by_kind,
        "failure_kinds": len(metrics.FAILURE_KINDS),
        "metrics_all_active": every,
        "metrics_quiet": quiet,
        "metrics_usual": usual,
        "alarms": len(specs),
        "alarms_standard": standard,
        "alarms_on_by_default": bool(DEFAULTS["alarms"]),
        "alarm_cost": standard * p["cloudwatch_alarm_month"]
        + (len(specs) - standard) * p["cloudwatch_high_resolution_alarm_month"],
        "dashboards": 1,
        "metrics_all_cost": every * p["cloudwatch_metric_month"],
        "metrics_usual_cost": usual * p["cloudwatch_metric_month"],
    }


# -- the model --------------------------------------------------------------------------------


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
    # The handler's lines as measured: its JSON log lines and its metric lines.
    handler_log = sum(seq["log_bytes_per_message"].values())
    handler_lines = sum(seq["log_lines_per_message"].values())
    metric_lines = seq.get("metric_lines", {})
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

    ops = operations()
    fixed = {
        "kms_key": p["kms_key_month"],
        "keep_warm": pings
        * (
            p["lambda_request"]
            + gb_seconds(keep_warm_ms) * p["lambda_arm64_gb_second"]
            + keep_warm_log / GB * p["logs_ingested_gb"]
        ),
        "sqs_idle_polling": IDLE_POLL_REQUESTS_MONTH * p["sqs_fifo_request"],
        "custom_metrics": ops["metrics_usual_cost"],
        "alarms": ops["alarm_cost"],
        # Counted: the account may have 3 other dashboards already; $0 if not (said so).
        "dashboard": ops["dashboards"] * p["cloudwatch_dashboard_month"],
        # Alarm and owner-alert e-mails: a handful a month, inside the free 1,000.
        "sns": 0.0,
    }
    fixed["total"] = sum(fixed.values())
    openai = openai_costs()
    text = openai["rows"]["text"]

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
        "keep_warm_minutes": KEEP_WARM_MINUTES,
        "headline_model_s": HEADLINE_MODEL_S,
        "inputs": {
            "webhook_ms": webhook_ms,
            "worker_ms": worker_ms,
            "keep_warm_ms": keep_warm_ms,
            "billed_webhook_ms": math.ceil(webhook_ms),
            "billed_worker_ms": math.ceil(worker_ms),
            "worker_invocations_per_message": invocations,
            "batch_size": e2e.get("batch_size"),
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
            "metric_log_bytes_per_message": metric_lines.get("bytes_per_message", 0.0),
            "metric_lines_per_message": metric_lines.get("lines_per_message", 0.0),
            "metric_lines_by_writer": metric_lines.get("by_writer", {}),
            # The owner's e-mails the function publishes (a new user's notice, no adminPsids).
            "sns_publishes_per_message": seq["aws"]["function"].get("sns Publish", 0.0),
            "keep_warm_pings_per_month": pings,
            "keep_warm_log_bytes": keep_warm_log,
        },
        "operations": ops,
        "fixed_per_month": fixed,
        "cases": cases,
        "openai": openai,
        "openai_per_message": text["per_message"],
        "openai_per_1000": text["per_1000"],
        "openai_per_month": text["per_month"],
        "init_per_cold_start": gb_seconds(init_ms) * p["lambda_arm64_gb_second"]
        if init_ms
        else None,
    }
