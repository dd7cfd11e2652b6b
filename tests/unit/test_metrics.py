"""Metric lines: valid Embedded Metric Format, few dimensions, nothing personal in them."""

from __future__ import annotations

import io
import json

import pytest

from handler.metrics import FAILURE_KINDS, METRICS, Batch, lines, namespace, write
from tests.support import emf
from tests.support.lambda_logs import kept_at, level_lambda_reads


def test_a_batch_becomes_valid_emf_lines_one_per_failure_kind():
    batch = Batch()
    batch.add("MessagesReceived", 3)
    batch.add("ReplyLatency", 812.0)
    batch.add("ReplyLatency", 1240.5)
    batch.add("Failed", kind="send")
    batch.add("Failed", kind="model")
    batch.add("Failed", kind="send")
    out = lines(batch, "messenger-bridge-dev-1cfdc2", "WARN", now_ms=1_800_000_000_000)
    assert len(out) == 3
    for line in out:
        assert emf.problems(line) == []
    main, model, send = (json.loads(line) for line in out)
    assert main["MessagesReceived"] == 3 and main["ReplyLatency"] == [812.0, 1240.5]
    assert main["Failed"] == 3  # the total, without a kind
    assert (model["Kind"], model["Failed"]) == ("model", 1.0)
    assert (send["Kind"], send["Failed"]) == ("send", 2.0)
    directive = send["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == namespace("messenger-bridge-dev-1cfdc2")
    assert directive["Dimensions"] == [["Stack", "Kind"]]


def test_metric_lines_pass_lambdas_level_filter_whatever_the_level():
    batch = Batch()
    batch.add("Answered")
    for level in ("DEBUG", "INFO", "WARN", "ERROR", "FATAL"):
        [line] = lines(batch, "s", level)
        assert level_lambda_reads(line) == level
        assert kept_at(line, level)


def test_only_declared_metrics_and_kinds_are_accepted():
    batch = Batch()
    with pytest.raises(KeyError):
        batch.add("Psid1234567890")
    with pytest.raises(KeyError):
        batch.add("Answered", kind="model")  # Answered has no kinds


def test_a_series_keeps_at_most_the_hundred_values_emf_takes():
    batch = Batch()
    for n in range(150):
        batch.add("ModelLatency", float(n))
    [line] = lines(batch, "s", "INFO")
    assert len(json.loads(line)["ModelLatency"]) == 100 and emf.problems(line) == []


def test_nothing_is_written_without_a_stack_or_values():
    out = io.StringIO()
    write(Batch(), "s", "INFO", out)
    batch = Batch()
    batch.add("Answered")
    write(batch, None, "INFO", out)
    assert out.getvalue() == ""
    write(batch, "s", "INFO", out)
    assert emf.metric_lines(out.getvalue())[0]["Answered"] == 1


def test_every_metric_has_a_cloudwatch_unit_and_failures_have_kinds():
    assert all(metric.unit in emf.UNITS for metric in METRICS.values())
    assert [name for name, metric in METRICS.items() if metric.by_kind] == ["Failed"]
    assert set(FAILURE_KINDS) >= {"model", "send", "token", "quota"}


def test_the_checker_refuses_what_the_specification_refuses():
    assert emf.problems("{}") == ["no _aws object"]
    bad = {
        "_aws": {
            "Timestamp": 5,
            "CloudWatchMetrics": [
                {
                    "Namespace": "n",
                    "Dimensions": [["Stack"]],
                    "Metrics": [{"Name": "X", "Unit": "Apples"}],
                }
            ],
        },
        "X": "many",
    }
    found = emf.problems(json.dumps(bad))
    assert "Timestamp is not epoch milliseconds" in found
    assert "dimension Stack is not a top-level string" in found
    assert "X: unit 'Apples' is not CloudWatch's" in found and "X: values are not numbers" in found
