"""The webhook's fast path: verification, signatures, hand-off, and what is ignored."""

from __future__ import annotations

import json

from handler import app
from tests.support.bridge import (
    ADMIN,
    APP_SECRET,
    SECRET_VALUES,
    VERIFY_TOKEN,
    Bridge,
    Context,
    function_url_event,
    messaging_text,
    webhook_body,
)

ALICE = "1000000000000001"


def verify(token: str, path: str = "/", mode: str = "subscribe") -> dict:
    query = {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"}
    return app.lambda_handler(function_url_event("GET", query=query, path=path), Context())


def test_the_verify_challenge_is_echoed_for_the_right_token(bridge: Bridge):
    for path in ("/", "/webhook"):
        response = verify(VERIFY_TOKEN, path)
        assert response["statusCode"] == 200
        assert response["body"] == "1158201444"
        assert response["headers"]["Content-Type"] == "text/plain"


def test_the_verify_challenge_is_refused_for_a_wrong_token_or_mode(bridge: Bridge):
    assert verify("guess")["statusCode"] == 403
    assert verify(VERIFY_TOKEN, mode="unsubscribe")["statusCode"] == 403


def test_other_paths_and_methods_are_refused(bridge: Bridge):
    assert verify(VERIFY_TOKEN, path="/admin")["statusCode"] == 404
    put = function_url_event("PUT", b"{}")
    assert app.lambda_handler(put, Context())["statusCode"] == 405


def test_a_forged_delivery_is_refused_and_changes_nothing(bridge: Bridge):
    body = webhook_body(messaging_text(ALICE, "hello"))
    unsigned = bridge.deliver(body, signed=False)
    forged = app.lambda_handler(
        function_url_event("POST", body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}),
        Context(),
    )
    assert unsigned["statusCode"] == forged["statusCode"] == 403
    bridge.settle()
    assert bridge.poller.invocations == []
    assert bridge.graph.calls == []
    assert bridge.model.requests == []
    assert bridge.items() == []


def test_an_unsigned_flood_never_loads_a_secret(bridge: Bridge):
    # Were the secrets loaded, this parameter would be missing and the function would fail.
    bridge.harness.set("APP_SECRET_PARAMETER", "/nowhere/app-secret")
    app.reset()
    body = webhook_body(messaging_text(ALICE, "hello"))
    for headers in ({}, {"X-Hub-Signature-256": "sha1=abc"}, {"X-Hub-Signature-256": "sha256=zz"}):
        event = function_url_event("POST", body, headers)
        assert app.lambda_handler(event, Context())["statusCode"] == 403


def test_a_valid_delivery_is_answered_at_once_and_queued_for_its_sender(bridge: Bridge):
    bridge.poller.pause()
    response = bridge.deliver(webhook_body(messaging_text(ALICE, "hello", mid="m_queued")))
    assert response["statusCode"] == 200
    assert response["body"] == "EVENT_RECEIVED"
    [message] = bridge.sqs.receive_message(
        QueueUrl=bridge.harness.queue_url, AttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    assert message["Attributes"]["MessageGroupId"] == ALICE
    assert json.loads(message["Body"])["event_id"] == "m_queued"
    bridge.poller.resume()
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    [invocation] = bridge.poller.invocations
    assert invocation.outcome == "succeeded"


def test_a_delivery_older_than_messengers_window_is_acknowledged_and_dropped(bridge: Bridge):
    old = messaging_text(ALICE, "from yesterday")
    old["timestamp"] -= 25 * 3600 * 1000
    assert bridge.deliver(webhook_body(old))["statusCode"] == 200
    bridge.settle()
    assert bridge.logs.named("event.stale") and bridge.poller.invocations == []


def test_a_megabyte_batch_from_facebook_is_taken_whole(bridge: Bridge):
    bridge.poller.pause()
    people = [f"10000000000{n:05d}" for n in range(100)]
    body = webhook_body(*(messaging_text(p, "x" * 10_000) for p in people), entries=10)
    assert len(body) > 1_000_000
    assert bridge.deliver(body)["statusCode"] == 200
    [accepted] = bridge.logs.named("webhook.accepted")
    assert accepted["events"] == 100
    assert bridge.poller.queue_depth() == (100, 0)


def test_a_plain_text_body_is_verified_on_its_exact_bytes(bridge: Bridge):
    body = webhook_body(messaging_text(ALICE, "caf\u00e9 \u2615"))
    response = bridge.deliver(body, base64_body=False)
    assert response["statusCode"] == 200
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]


def test_a_signed_but_malformed_body_is_accepted_and_logged(bridge: Bridge):
    for body in (b"not json", b"[]", json.dumps({"object": "page", "entry": 5}).encode()):
        assert bridge.deliver(body)["statusCode"] == 200
    assert len(bridge.logs.named("webhook.malformed")) == 3
    bridge.settle()
    assert bridge.poller.invocations == []


def test_echoes_deliveries_and_reads_are_acknowledged_and_ignored(bridge: Bridge):
    echo = messaging_text(ALICE, "page speaking")
    echo["message"]["is_echo"] = True
    delivery = {"sender": {"id": ALICE}, "delivery": {"mids": ["x"], "watermark": 1}}
    read = {"sender": {"id": ALICE}, "read": {"watermark": 1}}
    assert bridge.deliver(webhook_body(echo, delivery, read))["statusCode"] == 200
    bridge.settle()
    assert bridge.poller.invocations == []
    assert bridge.graph.calls == []


def test_an_oversized_body_is_refused_before_anything_else(bridge: Bridge):
    response = bridge.deliver(b"{" + b" " * 3_000_000 + b"}")
    assert response["statusCode"] == 413


def test_a_failed_hand_off_asks_facebook_to_retry(bridge: Bridge):
    queue = bridge.harness.queue_url
    bridge.harness.set("QUEUE_URL", queue + "-gone")  # SQS refuses: the queue does not exist
    app.reset()
    body = webhook_body(messaging_text(ALICE, "hello", mid="m_retry"))
    response = bridge.deliver(body)
    assert response["statusCode"] == 503
    assert bridge.logs.named("webhook.handoff_failed")
    # Facebook delivers the same body again; this time it goes through and is answered once.
    bridge.harness.set("QUEUE_URL", queue)
    app.reset()
    assert bridge.deliver(body)["statusCode"] == 200
    assert bridge.deliver(body)["statusCode"] == 200  # a repeat: SQS drops it
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert len(bridge.poller.invocations) == 1


def test_the_keep_warm_ping_touches_nothing(bridge: Bridge):
    event = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-25T06:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/keep-warm"],
        "detail": {},
    }
    assert app.lambda_handler(event, Context()) == {"warm": True}
    [line] = bridge.logs.events()
    assert line["message"] == "keep_warm" and line["event_kind"] == "keep_warm"
    assert bridge.graph.calls == [] and bridge.model.requests == []


def test_log_lines_are_json_with_request_id_and_kind_and_no_secrets(bridge: Bridge):
    bridge.say(ALICE, "my secret question about cats")
    bridge.say(ADMIN, "/users")
    events = bridge.logs.events()
    assert events
    assert all("request_id" in e and "event_kind" in e for e in events)
    text = "\n".join(bridge.logs.lines)
    for secret in (*SECRET_VALUES, APP_SECRET):
        assert secret not in text
    assert "cats" not in text and "The answer is 42" not in text
