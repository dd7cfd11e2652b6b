"""A schedule that pings the function so a cold start rarely lands on a user's message."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

EVENTS_SERVICE = "events.amazonaws.com"


def rate_expression(minutes: int) -> str:
    """EventBridge wants the singular for one: ``rate(1 minute)``, ``rate(20 minutes)``."""
    if minutes < 1:
        raise ValueError(f"a schedule needs at least one minute, got {minutes}")
    return f"rate({minutes} {'minute' if minutes == 1 else 'minutes'})"


def create_keep_warm(
    resource_name: str,
    rule_name: str,
    minutes: int,
    function: aws.lambda_.Function,
    parent: pulumi.Resource,
) -> aws.cloudwatch.EventRule:
    """Rule, target and the permission that lets only this rule invoke the function."""
    opts = pulumi.ResourceOptions(parent=parent)
    rule = aws.cloudwatch.EventRule(
        resource_name,
        name=rule_name,
        description="Keeps the Messenger bridge warm",
        schedule_expression=rate_expression(minutes),
        opts=opts,
    )
    # No input: the handler recognises EventBridge's own "Scheduled Event" payload.
    aws.cloudwatch.EventTarget(
        f"{resource_name}-target",
        rule=rule.name,
        arn=function.arn,
        opts=opts,
    )
    aws.lambda_.Permission(
        f"{resource_name}-permission",
        statement_id="KeepWarmSchedule",
        action="lambda:InvokeFunction",
        function=function.name,
        principal=EVENTS_SERVICE,
        source_arn=rule.arn,
        opts=opts,
    )
    return rule
