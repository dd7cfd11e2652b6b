"""The pure parts of ``make local``: Function URL events, Facebook bodies, options, echo model."""

from __future__ import annotations

import base64
import json
from email.message import Message

import pytest

from handler.events import classify, http_request, parse_webhook
from handler.signature import is_valid, sign
from handler.text import split_message
from local.__main__ import parse_args
from local._http import Request
from local.model import ECHO_NOTE
from local.stack import DEFAULT_PORT, Options, offline_responder
from local.webapp import (
    function_url_event,
    function_url_response,
    new_psid,
    postback_event,
    text_event,
    webhook_body,
)

PAGE = "100000000000001"
PSID = "2400000000000001"


def request(method: str, path: str, body: bytes = b"", query=None, headers=()) -> Request:
    message = Message()
    for name, value in headers:
        message[name] = value
    return Request(method, path, dict(query or {}), message, body)


def test_a_request_becomes_a_function_url_event_the_handler_reads_back():
    body = b'{"object":"page","entry":[]}'
    event = function_url_event(
        request(
            "POST",
            "/webhook",
            body,
            {"a": "1"},
            [
                ("Content-Type", "application/json"),
                ("X-Hub-Signature-256", "sha256=ab"),
                ("X-Many", "1"),
                ("X-Many", "2"),
                ("Cookie", "c=1; d=2"),
            ],
        )
    )
    assert classify(event) == "http"
    assert event["version"] == "2.0" and event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    assert event["headers"]["x-hub-signature-256"] == "sha256=ab"
    assert event["headers"]["x-many"] == "1,2"
    assert event["cookies"] == ["c=1", "d=2"] and "cookie" not in event["headers"]
    assert event["queryStringParameters"] == {"a": "1"} and event["rawQueryString"] == "a=1"
    parsed = http_request(event)
    assert (parsed.method, parsed.path, parsed.body) == ("POST", "/webhook", body)


def test_no_query_means_no_query_parameters_as_on_aws():
    event = function_url_event(request("GET", "/webhook"))
    assert "queryStringParameters" not in event and event["rawQueryString"] == ""


@pytest.mark.parametrize(
    ("result", "status", "body", "kind"),
    [
        ({"statusCode": 200, "body": "EVENT_RECEIVED"}, 200, b"EVENT_RECEIVED", "application/json"),
        (
            {"statusCode": 403, "headers": {"Content-Type": "text/plain"}, "body": "Forbidden"},
            403,
            b"Forbidden",
            "text/plain",
        ),
        (
            {
                "statusCode": 200,
                "body": base64.b64encode(b"\x00\x01").decode(),
                "isBase64Encoded": True,
            },
            200,
            b"\x00\x01",
            "application/json",
        ),
        ({"warm": True}, 200, b'{"warm": true}', "application/json"),
    ],
)
def test_what_the_function_returns_becomes_the_http_answer(result, status, body, kind):
    answer = function_url_response(result)
    assert (answer.status, answer.body, answer.headers["Content-Type"]) == (status, body, kind)


def test_the_bodies_are_what_facebook_sends_and_sign_like_it():
    body = webhook_body(
        PAGE,
        text_event(PSID, PAGE, "Grüße"),
        text_event(PSID, PAGE, "Help", quick_reply="HELP"),
        postback_event(PSID, PAGE, "ADMIN:unlimited:123456", "Allow unlimited"),
    )
    assert body.isascii() and b"\\u00fc" in body  # \u escapes, as Facebook writes them
    assert b'": ' not in body and b", " not in body  # compact
    assert is_valid(body, sign(body, "s3cret"), "s3cret")
    text, quick, postback = parse_webhook(body)
    assert (text.kind, text.text, text.psid, text.page_id) == ("text", "Grüße", PSID, PAGE)
    assert (quick.kind, postback.kind) == ("quick_reply", "postback")
    items = json.loads(body)["entry"][0]["messaging"]
    assert items[1]["message"]["quick_reply"] == {"payload": "HELP"}
    assert items[1]["message"]["text"] == "Help"  # the chip's title, as Messenger sends it
    assert items[2]["postback"] | {"title": "Allow unlimited"} == items[2]["postback"]
    assert items[2]["postback"]["payload"] == "ADMIN:unlimited:123456"
    assert len({text.event_id, quick.event_id, postback.event_id}) == 3
    assert all(e.event_id.startswith("m_") for e in (text, quick, postback))
    assert json.loads(body)["entry"][0]["id"] == PAGE


def test_new_psids_are_sixteen_digits():
    ids = {new_psid() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 16 and i.isdigit() for i in ids)


def test_the_offline_model_echoes_and_can_show_a_long_answer():
    ask = lambda text: offline_responder({"messages": [{"role": "user", "content": text}]})  # noqa: E731
    assert ask("hi").startswith("Echo: hi")
    long = ask("A LONG ANSWER please")
    # Three bubbles, and short enough for the default max_tokens (800) not to cut it.
    assert len(split_message(long)) == 3 and len(long) < 800 * 4


def test_the_offline_model_says_it_is_an_echo_in_a_conversations_first_answer_only():
    first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    later = [
        *first[:1],
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Echo"},
    ]
    assert offline_responder({"messages": first}) == f"Echo: hi\n\n{ECHO_NOTE}"
    assert offline_responder({"messages": [*later, first[1]]}) == "Echo: hi"
    assert offline_responder({"input": [*later, first[1]]}) == "Echo: hi"  # Responses API
    for history in ([], later):
        long = offline_responder(
            {"messages": [*history, {"role": "user", "content": "long answer"}]}
        )
        assert len(split_message(long)) == 3 and (ECHO_NOTE in long) is not bool(history)


def test_options_default_to_the_environment_then_to_the_handler(monkeypatch):
    for name in ("LOCAL_PORT", "DAILY_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    assert parse_args([]) == Options()
    assert Options().port == DEFAULT_PORT and Options().daily_limit is None
    monkeypatch.setenv("LOCAL_PORT", "8123")
    options = parse_args(["--daily-limit", "2", "--admin", "123456", "--admin", "654321"])
    assert (options.port, options.daily_limit, options.admins) == (8123, 2, ("123456", "654321"))
    assert parse_args(["--graph", "real", "--log-level", "warning"]).log_level == "WARNING"


@pytest.mark.parametrize("argv", [["--port", "70000"], ["--model-latency", "-1"], ["--graph", "x"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
