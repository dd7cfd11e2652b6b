"""The real Pulumi program under mocks: the owner's topic, the alarms and the dashboard."""

from __future__ import annotations

import json

import pytest

from handler.metrics import METRICS, namespace
from handler.settings import Env
from infra.monitoring import OWNER_WINDOW, PERIOD, metric_names_in
from tests.infra.capture import ACCOUNT_ID, REGION, CapturedResource, CapturedStack
from tests.infra.test_stack import (
    BYO_KEY,
    DEAD_LETTER_QUEUE,
    FUNCTION_NAME,
    KEY,
    NAMES,
    WORK_QUEUE,
    Capture,
    env_of,
    statements_by_sid,
)

TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
ALARM_KEYS = {
    "dead-letters", "stuck-queue", "function-errors", "throttles", "webhook-5xx",
    "page-token", "openai-quota", "spend-cap",
}  # fmt: skip


def alarms(stack: CapturedStack) -> dict[str, dict]:
    prefix = f"{NAMES.prefix}-"
    return {a.inputs["name"].removeprefix(prefix): a.inputs for a in stack.of_type(ALARM)}


def topic(stack: CapturedStack) -> CapturedResource:
    return stack.one(TOPIC)


# --- the owner's topic ----------------------------------------------------------------------


def test_the_owners_topic_is_encrypted_with_the_stacks_key(stack: CapturedStack) -> None:
    owner = topic(stack)
    assert owner.inputs["name"] == NAMES.topic
    assert owner.inputs["kmsMasterKeyId"] == stack.one(KEY).arn
    assert stack.output("ownerTopicArn") == owner.arn


def test_without_an_owner_email_nobody_is_subscribed(stack: CapturedStack) -> None:
    assert stack.of_type(SUBSCRIPTION) == []


def test_an_owner_email_is_subscribed_to_the_topic(capture: Capture) -> None:
    stack = capture({"ownerEmail": "owner@example.com"})
    (subscription,) = stack.of_type(SUBSCRIPTION)
    assert subscription.inputs == {
        "topic": topic(stack).arn,
        "protocol": "email",
        "endpoint": "owner@example.com",
    }


def test_an_owner_email_that_is_not_one_is_refused(capture: Capture) -> None:
    with pytest.raises(Exception, match="ownerEmail: must be an e-mail address"):
        capture({"ownerEmail": "owner at example"})


def test_an_own_key_encrypts_the_topic_too(capture: Capture) -> None:
    stack = capture({"kmsKeyArn": BYO_KEY})
    assert topic(stack).inputs["kmsMasterKeyId"] == BYO_KEY


def test_the_function_may_publish_to_its_topic_and_nowhere_else(stack: CapturedStack) -> None:
    statements = statements_by_sid(stack)
    assert statements["OwnerTopic"]["Action"] == ["sns:Publish"]
    assert statements["OwnerTopic"]["Resource"] == [topic(stack).arn]
    # Publishing to an encrypted topic takes a data key from the topic's key.
    assert statements["SecretsKey"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statements["SecretsKey"]["Resource"] == [stack.one(KEY).arn]


def test_the_function_is_told_its_topic_and_its_metrics_stack(stack: CapturedStack) -> None:
    env = env_of(stack)
    assert env[Env.OWNER_TOPIC_ARN] == topic(stack).arn
    assert env[Env.METRICS_STACK] == NAMES.prefix


def test_cloudwatch_may_use_the_stacks_key_to_publish_alarms(stack: CapturedStack) -> None:
    policy = json.loads(stack.one(KEY).inputs["policy"])
    (statement,) = [
        s for s in policy["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}


# --- alarms ---------------------------------------------------------------------------------


def test_every_alarm_is_declared_once_under_the_stacks_name(stack: CapturedStack) -> None:
    assert set(alarms(stack)) == ALARM_KEYS
    assert len(stack.of_type(ALARM)) == len(ALARM_KEYS)


def test_every_alarm_tells_the_topic_and_clears_by_itself(stack: CapturedStack) -> None:
    arn = topic(stack).arn
    for key, alarm in alarms(stack).items():
        assert alarm["alarmActions"] == [arn], key
        assert alarm["okActions"] == [arn], key
        assert alarm["period"] == PERIOD and alarm["datapointsToAlarm"] == 1, key
        assert len(alarm["alarmDescription"]) > 60, key
        if key != "dead-letters":
            assert alarm["treatMissingData"] == "notBreaching", key  # no traffic is no trouble


def test_a_dead_letter_alarm_never_clears_on_a_gap_in_sqs_metrics(stack: CapturedStack) -> None:
    """SQS stops publishing an idle queue's metrics after hours, dead letters or not."""
    assert alarms(stack)["dead-letters"]["treatMissingData"] == "ignore"


def test_owner_must_act_alarms_fire_at_once_and_clear_after_a_quiet_hour(
    stack: CapturedStack,
) -> None:
    for key, alarm in alarms(stack).items():
        expected = OWNER_WINDOW if key in ("page-token", "openai-quota", "spend-cap") else 1
        assert alarm["evaluationPeriods"] == expected, key
        assert alarm["evaluationPeriods"] * alarm["period"] == (3600 if expected > 1 else PERIOD)


def test_the_queue_alarms_watch_the_stacks_queues(stack: CapturedStack) -> None:
    found = alarms(stack)
    assert found["dead-letters"]["namespace"] == "AWS/SQS"
    assert found["dead-letters"]["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert found["dead-letters"]["dimensions"] == {"QueueName": DEAD_LETTER_QUEUE}
    assert found["dead-letters"]["comparisonOperator"] == "GreaterThanThreshold"
    assert found["dead-letters"]["threshold"] == 0
    assert found["stuck-queue"]["metricName"] == "ApproximateAgeOfOldestMessage"
    assert found["stuck-queue"]["dimensions"] == {"QueueName": WORK_QUEUE}
    assert found["stuck-queue"]["threshold"] == 900


def test_the_function_alarms_watch_the_function(stack: CapturedStack) -> None:
    found = alarms(stack)
    for key, metric, threshold in (
        ("function-errors", "Errors", 5),
        ("throttles", "Throttles", 1),
        ("webhook-5xx", "Url5xxCount", 1),
    ):
        assert found[key]["namespace"] == "AWS/Lambda", key
        assert found[key]["metricName"] == metric, key
        assert found[key]["dimensions"] == {"FunctionName": FUNCTION_NAME}, key
        assert found[key]["threshold"] == threshold, key
        assert found[key]["statistic"] == "Sum", key


def test_the_owner_must_act_alarms_watch_the_handlers_own_metrics(stack: CapturedStack) -> None:
    found = alarms(stack)
    ours = namespace(NAMES.prefix)
    stack_only = {"Stack": NAMES.prefix}
    assert (found["page-token"]["metricName"], found["page-token"]["dimensions"]) == (
        "Failed", {**stack_only, "Kind": "token"}
    )  # fmt: skip
    assert found["openai-quota"]["dimensions"] == {**stack_only, "Kind": "quota"}
    assert found["spend-cap"]["metricName"] == "SpendCapReached"
    assert found["spend-cap"]["dimensions"] == stack_only
    for key in ("page-token", "openai-quota", "spend-cap"):
        assert found[key]["namespace"] == ours and found[key]["metricName"] in METRICS


def test_alarm_thresholds_follow_the_settings(capture: Capture) -> None:
    found = alarms(capture({"alarmQueueAgeSeconds": 300, "alarmErrors": 2}))
    assert found["stuck-queue"]["threshold"] == 300
    assert found["function-errors"]["threshold"] == 2


def test_alarms_false_declares_none_but_keeps_the_dashboard_and_topic(capture: Capture) -> None:
    stack = capture({"alarms": False})
    assert stack.of_type(ALARM) == []
    assert len(stack.of_type(DASHBOARD)) == 1 and len(stack.of_type(TOPIC)) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"alarmQueueAgeSeconds": 30}, "alarmQueueAgeSeconds: must be between 60 and 86400"),
        ({"alarmErrors": 0}, "alarmErrors: must be at least 1"),
        ({"alarms": "sometimes"}, "alarms: must be true or false"),
    ],
)
def test_alarm_settings_out_of_range_fail_with_the_key(
    capture: Capture, config: dict, message: str
) -> None:
    with pytest.raises(Exception, match=message):
        capture(config)


# --- the dashboard --------------------------------------------------------------------------


def test_one_dashboard_whose_url_is_an_output(stack: CapturedStack) -> None:
    dashboard = stack.one(DASHBOARD).inputs
    assert dashboard["dashboardName"] == NAMES.dashboard
    assert stack.output("dashboardUrl") == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}"
        f"#dashboards/dashboard/{NAMES.dashboard}"
    )


def test_the_dashboard_reads_only_metrics_the_handler_emits(stack: CapturedStack) -> None:
    body = json.loads(stack.one(DASHBOARD).inputs["dashboardBody"])
    read = metric_names_in(body, namespace(NAMES.prefix))
    assert read and read <= set(METRICS)
    regions = {w["properties"].get("region") for w in body["widgets"]}
    assert regions == {REGION}
