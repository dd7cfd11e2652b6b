"""CloudWatch metrics end to end: what the bridge did, counted in the lines it writes.

Every line is also held to the EMF specification by the session's metric audit
(``tests/support/metric_audit.py``); these tests check what the numbers say.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from handler import app, bot, metrics
from tests.support.bridge import (
    ADMIN,
    JPEG,
    METRICS_STACK,
    VOICE,
    Bridge,
    messaging_attachment,
    messaging_text,
    webhook_body,
)
from tests.support.lambda_logs import kept_at
from tests.support.world import ALICE, BOB


def webhook_lines(bridge: Bridge) -> list[dict]:
    return [d for d in bridge.metric_lines.documents if "MessagesReceived" in d]


def test_an_answer_is_counted_with_its_latency_tokens_and_cost(bridge: Bridge):
    bridge.say(ALICE, "What is the meaning of life?")
    got = bridge.metric_lines
    assert got.total("MessagesReceived") == 1
    assert got.total("Answered") == 1
    [latency] = got.values("ReplyLatency")
    assert 0 <= latency < 30_000
    assert len(got.values("ModelLatency")) == 1
    assert got.total("TokensIn") > 0 and got.total("TokensOut") > 0
    assert got.total("EstimatedCost") > 0
    assert got.total("Failed") == 0 and got.total("Retries") == 0
    directive = got.documents[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == metrics.namespace(METRICS_STACK)
    assert got.documents[0]["Stack"] == METRICS_STACK


def test_the_webhook_writes_one_line_per_delivery_whatever_it_holds(bridge: Bridge):
    messages = [messaging_text(p, f"hi {n}") for n in range(3) for p in (ALICE, BOB)]
    bridge.deliver(webhook_body(*messages))
    bridge.settle()
    [line] = webhook_lines(bridge)
    assert line["MessagesReceived"] == 6
    assert bridge.metric_lines.total("Answered") == 6


def test_the_latency_is_logged_with_each_answer_for_the_slowest_query(bridge: Bridge):
    bridge.say(ALICE, "hello")
    [done] = bridge.logs.named("event.done")
    assert done["latency_ms"] == bridge.metric_lines.values("ReplyLatency")[0]


def test_refusals_by_limit_and_blocked_people_are_counted(make_bridge):
    bridge = make_bridge(DAILY_LIMIT="1")
    bridge.say(ALICE, "one")
    bridge.say(ALICE, "two")
    bridge.say(ADMIN, f"/block {BOB}")
    bridge.say(BOB, "let me in")
    got = bridge.metric_lines
    assert (got.total("Answered"), got.total("RefusedByLimit"), got.total("Blocked")) == (1, 1, 1)


def test_the_spend_cap_is_a_refusal_and_pages_the_owner(make_bridge):
    bridge = make_bridge(DAILY_SPEND_LIMIT_USD="0.000001")
    bridge.say(ALICE, "one")  # answered: the cap is judged before the question
    bridge.say(ALICE, "two")
    got = bridge.metric_lines
    assert got.total("SpendCapReached") == 1 and got.total("RefusedByLimit") == 1


def test_a_refused_page_token_is_a_token_failure_the_alarm_sees(bridge: Bridge):
    bridge.graph.fail_next(400, code=190, times=10, only="message")
    bridge.say(ALICE, "hi")
    got = bridge.metric_lines
    assert got.total("Failed", kind="token") == 5  # every receive, to the dead-letter queue
    assert got.total("Failed", kind="send") == 0
    assert got.total("Retries") == 4  # the fifth receive is the last: no retry after it


def test_a_model_failure_and_its_retry_are_counted(bridge: Bridge):
    bridge.model.fail_next(503, times=1)
    bridge.say(ALICE, "hi")
    got = bridge.metric_lines
    assert got.total("Failed", kind="model") == 1 and got.total("Retries") == 1
    assert got.total("Answered") == 1
    assert len(got.values("ModelLatency")) == 2  # the failed call is timed too


def test_insufficient_quota_is_a_quota_failure(bridge: Bridge):
    bridge.model.fail_next(429, code="insufficient_quota", times=1)
    bridge.say(ALICE, "hi")
    assert bridge.metric_lines.total("Failed", kind="quota") == 1


def test_photos_and_voice_messages_are_counted(bridge: Bridge):
    photo = bridge.graph.host_attachment(JPEG, "image/jpeg")
    voice = bridge.graph.host_attachment(VOICE, "audio/mp4")
    bridge.deliver(webhook_body(messaging_attachment(ALICE, "image", photo, text="What?")))
    bridge.deliver(webhook_body(messaging_attachment(BOB, "audio", voice)))
    bridge.settle()
    got = bridge.metric_lines
    assert (got.total("Images"), got.total("Transcriptions"), got.total("Answered")) == (1, 1, 2)


def test_a_failed_hand_off_is_a_webhook_error(bridge: Bridge):
    queue = bridge.harness.queue_url
    bridge.harness.set("QUEUE_URL", queue + "-gone")
    app.reset()
    assert bridge.deliver(webhook_body(messaging_text(ALICE, "hello")))["statusCode"] == 503
    [line] = bridge.metric_lines.documents  # the delivery's one line
    assert line["WebhookErrors"] == 1 and line["ColdStarts"] == 1
    assert "MessagesReceived" not in line  # nothing reached the queue
    bridge.harness.set("QUEUE_URL", queue)
    app.reset()


def test_a_cold_start_is_counted_once_per_container(bridge: Bridge):
    app.reset()
    bridge.say(ALICE, "one")
    bridge.say(ALICE, "two")
    assert bridge.metric_lines.total("ColdStarts") == 1


def test_metric_lines_pass_lambdas_filter_at_any_log_level(make_bridge):
    bridge = make_bridge(LOG_LEVEL="ERROR")
    bridge.say(ALICE, "hi")
    assert bridge.metric_lines.documents
    assert {d["level"] for d in bridge.metric_lines.documents} == {"ERROR"}
    assert all(kept_at(json.dumps(d), "ERROR") for d in bridge.metric_lines.documents)


def test_no_person_or_text_is_ever_in_a_metric_line(bridge: Bridge):
    bridge.say(ALICE, "my secret question")
    bridge.graph.fail_next(400, code=190, times=10, only="message")
    bridge.say(BOB, "another one")
    written = json.dumps(bridge.metric_lines.documents)
    for personal in (ALICE, BOB, "secret question", "another one", "The answer is 42"):
        assert personal not in written


def test_without_a_metrics_stack_nothing_is_written(make_bridge):
    bridge = make_bridge(METRICS_STACK="")
    bridge.say(ALICE, "hi")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert bridge.metric_lines.documents == []


def test_every_declared_metric_is_written_by_some_path_of_the_handler():
    """A metric on the dashboard that nothing writes would sit at zero, looking healthy."""
    handler = Path(app.__file__).parent
    source = "\n".join(p.read_text() for p in handler.glob("*.py") if p.name != "metrics.py")
    written = set(re.findall(r'metrics\.add\(\s*"(\w+)"', source))
    written |= set(bot.OUTCOME_METRICS.values())
    assert set(metrics.METRICS) - written == set()


def test_what_an_answer_writes_is_what_the_stacks_dashboard_reads(bridge: Bridge):
    from infra.monitoring import Watched, dashboard_body, metric_names_in

    bridge.say(ALICE, "hello")
    bridge.model.fail_next(503, times=1)
    bridge.say(BOB, "hi")
    written = {name for d in bridge.metric_lines.documents for name in d if name in metrics.METRICS}
    watched = Watched(METRICS_STACK, "f", "q.fifo", "d.fifo", "us-east-1", "dash")
    read = metric_names_in(
        dashboard_body(watched, metrics.FAILURE_KINDS), metrics.namespace(METRICS_STACK)
    )
    assert {"MessagesReceived", "Answered", "ReplyLatency", "Failed", "Retries"} <= written
    assert written <= read
