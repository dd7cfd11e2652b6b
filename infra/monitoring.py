"""What tells the owner the bot needs them, and shows at a glance how it is doing: CloudWatch
alarms to an SNS topic, and one dashboard, both built from the metric names the handler
emits (``handler.metrics.METRICS``) and AWS's own metrics for the queue and the function.

The builders are pure (names and settings in, alarm specs and the dashboard's JSON out);
``create_monitoring`` turns them into resources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from handler.metrics import FAILURE_KINDS, KIND_DIMENSION, STACK_DIMENSION, namespace

PERIOD = 300  # five minutes: CloudWatch's standard resolution, and its cheapest alarms
# The owner-must-act alarms look back an hour: they fire on the first failure but clear only
# after an hour without one, so a problem that recurs every few minutes (one message's
# retries, a capped day) is one e-mail, not an ALARM and OK pair every five minutes.
OWNER_WINDOW = 12
TRAFFIC = ("MessagesReceived", "Answered", "RefusedByLimit", "SpendCapReached", "Blocked")


@dataclass(frozen=True)
class Thresholds:
    queue_age_seconds: int = 900  # a person's oldest message waiting this long: stuck
    errors_per_period: int = 5  # function errors in five minutes


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm, in CloudWatch's terms; ``description`` says what to do."""

    key: str
    description: str
    namespace: str
    metric: str
    dimensions: dict[str, str]
    threshold: float
    statistic: str = "Sum"
    comparison: str = "GreaterThanOrEqualToThreshold"
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    period: int = PERIOD
    # No data is no trouble for the function and the handler's own metrics; the dead-letter
    # queue is the exception (below).
    missing_data: str = "notBreaching"


@dataclass(frozen=True)
class Watched:
    """The physical names the alarms and the dashboard look at."""

    stack: str  # the metrics' Stack dimension and namespace (names.prefix)
    function: str
    queue: str
    dead_letter_queue: str
    region: str
    dashboard: str  # account-wide, so unique across regions (names.dashboard)
    extra: dict[str, str] = field(default_factory=dict)


def alarm_specs(watched: Watched, thresholds: Thresholds) -> list[AlarmSpec]:
    ours = namespace(watched.stack)
    stack = {STACK_DIMENSION: watched.stack}
    function = {"FunctionName": watched.function}
    return [
        AlarmSpec(
            "dead-letters",
            "Messages wait on the dead-letter queue: each failed maxReceiveCount times. Run "
            "`python -m admin replay` to see why (often the page token), fix it, then "
            "`python -m admin replay --all`. Clears when the queue is empty.",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": watched.dead_letter_queue},
            0,
            statistic="Maximum",
            comparison="GreaterThanThreshold",
            # SQS stops sending a queue's metrics after about six hours without activity,
            # messages or not: a gap must keep the alarm where it is, never sound the all-clear
            # while a dead letter still waits.
            missing_data="ignore",
        ),
        AlarmSpec(
            "stuck-queue",
            f"A message has waited over {thresholds.queue_age_seconds} s in the queue: a person "
            "is not being answered. Check the function's errors and throttles and the logs of "
            "the last minutes (docs/queries/failures.query).",
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            {"QueueName": watched.queue},
            thresholds.queue_age_seconds,
            statistic="Maximum",
            comparison="GreaterThanThreshold",
        ),
        AlarmSpec(
            "function-errors",
            f"The function failed {thresholds.errors_per_period} times or more in five minutes. "
            "Read its logs (docs/queries/failures.query): a crash, a timeout, or a setting.",
            "AWS/Lambda",
            "Errors",
            function,
            thresholds.errors_per_period,
        ),
        AlarmSpec(
            "throttles",
            "Lambda refused to run the function (throttled): raise reservedConcurrency, lower "
            "maxConcurrency, or ask AWS for a higher concurrency quota.",
            "AWS/Lambda",
            "Throttles",
            function,
            1,
        ),
        AlarmSpec(
            "webhook-5xx",
            "The webhook answered Facebook with 5xx. Meta warns after about 15 minutes of "
            "failures and unsubscribes the app after about an hour: read the function's logs "
            "now (webhook.handoff_failed: the queue; anything else: the function).",
            "AWS/Lambda",
            "Url5xxCount",
            function,
            1,
        ),
        AlarmSpec(
            "page-token",
            "The Send API refused the page token (error 190): renew it with `pulumi config set "
            "--secret pageAccessToken` and `pulumi up`, then `python -m admin replay --all`.",
            ours,
            "Failed",
            {**stack, KIND_DIMENSION: "token"},
            1,
            evaluation_periods=OWNER_WINDOW,
        ),
        AlarmSpec(
            "openai-quota",
            "OpenAI answered insufficient_quota: the account is out of credit or over its "
            "monthly limit. Add credit or raise the limit at platform.openai.com; questions "
            "meanwhile get an apology and are not counted.",
            ours,
            "Failed",
            {**stack, KIND_DIMENSION: "quota"},
            1,
            evaluation_periods=OWNER_WINDOW,
        ),
        AlarmSpec(
            "spend-cap",
            "The page's daily spend cap (dailySpendLimitUsd) is reached: people get a polite "
            "'resting until tomorrow'. Raise the cap if this is expected traffic.",
            ours,
            "SpendCapReached",
            stack,
            1,
            evaluation_periods=OWNER_WINDOW,
        ),
    ]


def _ours(watched: Watched, name: str, **extra: str) -> list[Any]:
    return [namespace(watched.stack), name, STACK_DIMENSION, watched.stack, *_flat(extra)]


def _flat(pairs: dict[str, str]) -> list[str]:
    return [item for pair in pairs.items() for item in pair]


def _widget(title: str, metrics: list[list[Any]], x: int, y: int, **properties: Any) -> dict:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "metrics": metrics,
            "view": "timeSeries",
            "period": PERIOD,
            "stat": "Sum",
            **properties,
        },
    }


def dashboard_body(watched: Watched, failure_kinds: tuple[str, ...]) -> dict[str, Any]:
    """The dashboard's JSON: traffic, latency, failures, tokens and cost, the queue, Lambda."""
    region = watched.region
    latency = [
        [*_ours(watched, "ReplyLatency"), {"stat": stat, "label": f"reply {stat}"}]
        for stat in ("p50", "p90", "p99")
    ]
    latency.append([*_ours(watched, "ModelLatency"), {"stat": "p50", "label": "model p50"}])
    lambda_fn = ["AWS/Lambda", "Duration", "FunctionName", watched.function]
    widgets = [
        _widget(
            "Messages and answers",
            [_ours(watched, name) for name in TRAFFIC],
            0,
            0,
            region=region,
        ),
        _widget("Reply latency (ms)", latency, 12, 0, region=region),
        _widget(
            "Failures by kind",
            [_ours(watched, "Failed", **{KIND_DIMENSION: kind}) for kind in failure_kinds]
            + [_ours(watched, "Retries"), _ours(watched, "WebhookErrors")]
            # What the function, throttle and webhook alarms watch, beside our own kinds.
            + [
                ["AWS/Lambda", name, "FunctionName", watched.function, {"label": label}]
                for name, label in (
                    ("Errors", "function errors"),
                    ("Throttles", "throttles"),
                    ("Url5xxCount", "webhook 5xx"),
                )
            ],
            0,
            6,
            region=region,
        ),
        _widget(
            "Tokens and estimated cost per day",
            [
                _ours(watched, "TokensIn"),
                _ours(watched, "TokensOut"),
                [*_ours(watched, "EstimatedCost"), {"yAxis": "right"}],
            ],
            12,
            6,
            region=region,
            period=86400,
        ),
        _widget(
            "Queue and dead letters",
            [
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", watched.queue],
                [
                    "AWS/SQS",
                    "ApproximateAgeOfOldestMessage",
                    "QueueName",
                    watched.queue,
                    {"yAxis": "right", "stat": "Maximum"},
                ],
                [
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "QueueName",
                    watched.dead_letter_queue,
                    {"label": "dead letters"},
                ],
            ],
            0,
            12,
            region=region,
            stat="Maximum",
        ),
        _widget(
            "Lambda: duration, concurrency, cold starts",
            [
                [*lambda_fn, {"stat": "p90"}],
                [
                    "AWS/Lambda",
                    "ConcurrentExecutions",
                    "FunctionName",
                    watched.function,
                    {"stat": "Maximum", "yAxis": "right"},
                ],
                [*_ours(watched, "ColdStarts"), {"yAxis": "right"}],
                [*_ours(watched, "Transcriptions"), {"yAxis": "right"}],
                [*_ours(watched, "Images"), {"yAxis": "right"}],
                [*_ours(watched, "HumanTakeovers"), {"yAxis": "right"}],
            ],
            12,
            12,
            region=region,
        ),
    ]
    return {"widgets": widgets}


def metric_names_in(body: dict[str, Any], ours: str) -> set[str]:
    """The metric names a dashboard body reads from namespace ``ours`` (for the tests)."""
    names = set()
    for widget in body["widgets"]:
        for metric in widget["properties"]["metrics"]:
            if metric[0] == ours:
                names.add(metric[1])
    return names


def dashboard_url(region: str, name: str) -> str:
    console = f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
    return f"{console}#dashboards/dashboard/{name}"


def dashboard_json(watched: Watched, failure_kinds: tuple[str, ...]) -> str:
    return json.dumps(dashboard_body(watched, failure_kinds), separators=(",", ":"))


# -- the resources ---------------------------------------------------------------------------


def create_topic(
    resource_name: str,
    topic_name: str,
    key_arn: pulumi.Input[str],
    email: str | None,
    parent: pulumi.Resource,
) -> aws.sns.Topic:
    """The owner's topic, encrypted with the stack's key (whose policy lets CloudWatch alarms
    use it: ``infra.secrets.key_policy``); an e-mail subscription when ``ownerEmail`` is set
    (AWS sends a confirmation mail the owner must accept)."""
    topic = aws.sns.Topic(
        resource_name,
        name=topic_name,
        kms_master_key_id=key_arn,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    if email:
        aws.sns.TopicSubscription(
            f"{resource_name}-email",
            topic=topic.arn,
            protocol="email",
            endpoint=email,
            opts=pulumi.ResourceOptions(parent=parent),
        )
    return topic


def create_monitoring(
    resource_name: str,
    watched: Watched,
    thresholds: Thresholds,
    topic: aws.sns.Topic,
    alarms: bool,
    parent: pulumi.Resource,
) -> aws.cloudwatch.Dashboard:
    """The alarms (unless ``alarms`` is off) and the dashboard; returns the dashboard."""
    child = pulumi.ResourceOptions(parent=parent)
    if alarms:
        for spec in alarm_specs(watched, thresholds):
            aws.cloudwatch.MetricAlarm(
                f"{resource_name}-{spec.key}",
                name=f"{watched.stack}-{spec.key}",
                alarm_description=spec.description,
                namespace=spec.namespace,
                metric_name=spec.metric,
                dimensions=spec.dimensions,
                statistic=spec.statistic,
                period=spec.period,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                threshold=spec.threshold,
                comparison_operator=spec.comparison,
                treat_missing_data=spec.missing_data,
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],  # the all-clear, by itself
                opts=child,
            )
    return aws.cloudwatch.Dashboard(
        f"{resource_name}-dashboard",
        dashboard_name=watched.dashboard,
        dashboard_body=dashboard_json(watched, FAILURE_KINDS),
        opts=child,
    )
