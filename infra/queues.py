"""The FIFO queue between the webhook and the worker, its dead-letter queue, and the event
source mapping that feeds the function from it.

One message group per person (``handler/handoff.py``): SQS hands out a person's messages one
at a time and in order, while different people are answered in parallel. A message that
fails ``maxReceiveCount`` times moves to the dead-letter queue, so the person's later
messages go on (``handler/batch.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from .config import BridgeSettings
from .naming import Names

# AWS's advice for a queue that feeds Lambda: a batch that crashes or times out comes back
# only after this many function timeouts, so a slow batch is never handed out twice at once.
VISIBILITY_TIMEOUT_FACTOR = 6
# SQS's default. Messages leave the queue long before (answered, or dead-lettered after the
# receives); only an outage of the function itself (a bad deploy, the mapping off) keeps
# them, and then for four days: a message moves to the dead-letter queue only when it is
# received, so one nobody receives in that time expires unseen.
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
# SQS's longest, and longer than the queue's: time for the owner to look and redrive.
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
# The function reports which records failed (handler.batch); the rest are deleted.
FUNCTION_RESPONSE_TYPES = ("ReportBatchItemFailures",)


@dataclass(frozen=True)
class WorkQueues:
    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue


def visibility_timeout(function_timeout_seconds: int) -> int:
    """How long a received batch stays hidden: AWS's six function timeouts."""
    return VISIBILITY_TIMEOUT_FACTOR * function_timeout_seconds


def redrive_policy(dead_letter_arn: str, max_receive_count: int) -> dict[str, Any]:
    """After ``max_receive_count`` receives SQS moves a message to the dead-letter queue."""
    return {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}


def redrive_allow_policy(source_queue_arn: str) -> dict[str, Any]:
    """Only our queue may use the dead-letter queue: no other queue can fill it."""
    return {"redrivePermission": "byQueue", "sourceQueueArns": [source_queue_arn]}


def _fifo_queue(
    resource_name: str, name: str, parent: pulumi.Resource, **extra: Any
) -> aws.sqs.Queue:
    """High-throughput FIFO, encrypted. Deduplication by the id the webhook gives each event
    (never by content: two equal texts are two questions), within the person's group."""
    return aws.sqs.Queue(
        resource_name,
        name=name,
        fifo_queue=True,
        content_based_deduplication=False,
        deduplication_scope="messageGroup",
        fifo_throughput_limit="perMessageGroupId",
        sqs_managed_sse_enabled=True,
        opts=pulumi.ResourceOptions(parent=parent),
        **extra,
    )


def create_queues(
    resource_name: str, names: Names, settings: BridgeSettings, parent: pulumi.Resource
) -> WorkQueues:
    """The queue, its dead-letter queue, and the policy that ties the second to the first."""
    dead = _fifo_queue(
        f"{resource_name}-dead",
        names.dead_letter_queue,
        parent,
        message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
    )
    queue = _fifo_queue(
        resource_name,
        names.queue,
        parent,
        message_retention_seconds=QUEUE_RETENTION_SECONDS,
        visibility_timeout_seconds=visibility_timeout(settings.timeout_seconds),
        redrive_policy=dead.arn.apply(
            lambda arn: json.dumps(redrive_policy(arn, settings.max_receive_count))
        ),
    )
    # Its own resource: inline on the dead-letter queue it would need the queue's ARN, and
    # the queue already needs the dead-letter queue's.
    aws.sqs.RedriveAllowPolicy(
        f"{resource_name}-dead-allow",
        queue_url=dead.url,
        redrive_allow_policy=queue.arn.apply(lambda arn: json.dumps(redrive_allow_policy(arn))),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return WorkQueues(queue=queue, dead_letter_queue=dead)


def create_queue_trigger(
    resource_name: str,
    queue: aws.sqs.Queue,
    function: aws.lambda_.Function,
    settings: BridgeSettings,
    role_policy: aws.iam.RolePolicy,
    parent: pulumi.Resource,
) -> aws.lambda_.EventSourceMapping:
    """Lambda polls the queue and invokes the function with batches of records.

    ``maximum_concurrency`` is the cost cap: at most that many batches (people) at once.
    Lambda checks that the role may receive from the queue when the mapping is created,
    so the role's policy comes first.
    """
    return aws.lambda_.EventSourceMapping(
        resource_name,
        event_source_arn=queue.arn,
        function_name=function.arn,
        batch_size=settings.batch_size,
        function_response_types=list(FUNCTION_RESPONSE_TYPES),
        scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(
            maximum_concurrency=settings.max_concurrency
        ),
        enabled=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[role_policy]),
    )
