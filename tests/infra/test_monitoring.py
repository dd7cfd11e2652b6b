"""Alarms and the dashboard are built from the metrics the handler emits, and say what to do."""

from __future__ import annotations

import json

from handler.metrics import FAILURE_KINDS, METRICS, namespace
from infra.monitoring import (
    Thresholds,
    Watched,
    alarm_specs,
    dashboard_body,
    dashboard_url,
    metric_names_in,
)

WATCHED = Watched(
    stack="messenger-bridge-dev-1cfdc2",
    function="messenger-bridge-dev-1cfdc2",
    queue="messenger-bridge-dev-1cfdc2.fifo",
    dead_letter_queue="messenger-bridge-dev-1cfdc2-dead.fifo",
    region="us-east-1",
    dashboard="messenger-bridge-dev-1cfdc2-us-east-1",
)


def test_the_dashboard_reads_exactly_the_metrics_the_handler_emits():
    body = dashboard_body(WATCHED, FAILURE_KINDS)
    json.dumps(body)  # valid JSON
    read = metric_names_in(body, namespace(WATCHED.stack))
    assert read == set(METRICS)  # nothing it reads is missing, nothing emitted goes unseen


def test_the_dashboard_covers_the_queue_the_dead_letters_and_lambda():
    body = dashboard_body(WATCHED, FAILURE_KINDS)
    aws = {(m[0], m[1]) for w in body["widgets"] for m in w["properties"]["metrics"]}
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage") in aws
    assert ("AWS/Lambda", "ConcurrentExecutions") in aws and ("AWS/Lambda", "Duration") in aws
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert "Failures by kind" in titles and len(titles) == 6


def test_every_alarm_watches_a_metric_the_dashboard_shows():
    """An owner who gets an alarm's e-mail finds its metric on the dashboard."""
    body = dashboard_body(WATCHED, FAILURE_KINDS)
    shown = {(m[0], m[1]) for w in body["widgets"] for m in w["properties"]["metrics"]}
    for spec in alarm_specs(WATCHED, Thresholds()):
        assert (spec.namespace, spec.metric) in shown, spec.key


def test_every_alarm_on_our_metrics_names_one_the_handler_emits_with_a_known_kind():
    for spec in alarm_specs(WATCHED, Thresholds()):
        if spec.namespace == namespace(WATCHED.stack):
            assert spec.metric in METRICS, spec.key
            kind = spec.dimensions.get("Kind")
            assert kind is None or kind in FAILURE_KINDS, spec.key


def test_the_alarms_the_owner_needs_are_there_and_say_what_to_do():
    specs = {spec.key: spec for spec in alarm_specs(WATCHED, Thresholds(queue_age_seconds=600))}
    assert set(specs) == {
        "dead-letters", "stuck-queue", "function-errors", "throttles", "webhook-5xx",
        "page-token", "openai-quota", "spend-cap",
    }  # fmt: skip
    assert specs["dead-letters"].dimensions == {"QueueName": WATCHED.dead_letter_queue}
    assert specs["stuck-queue"].threshold == 600
    assert specs["webhook-5xx"].metric == "Url5xxCount"
    assert all(len(spec.description) > 60 for spec in specs.values())
    assert "python -m admin replay" in specs["dead-letters"].description


def test_the_dashboard_url_opens_it_in_its_region():
    url = dashboard_url("eu-west-1", "messenger-bridge-prod-abc123")
    assert url.startswith(
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
    )
    assert url.endswith("#dashboards/dashboard/messenger-bridge-prod-abc123")
