"""MessengerSimulator through ``requests``, the way the handler's Graph client calls it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from handler import profile
from handler.events import HttpRequest
from handler.settings import DEFAULT_GRAPH_API_VERSION, Settings
from handler.webhook import verify_challenge
from local._http import LocalServer, Request, Response
from local.graph import MessengerSimulator

TOKEN = "EAA-page-token"
PSID = "2400000000000001"


@pytest.fixture
def graph() -> Iterator[MessengerSimulator]:
    with MessengerSimulator(access_token=TOKEN) as simulator:
        yield simulator


def send(
    graph: MessengerSimulator,
    body: dict[str, Any],
    token: str | None = TOKEN,
    timeout: float = 5,
    version: str = "v24.0",
) -> requests.Response:
    params = {"access_token": token} if token is not None else {}
    return requests.post(
        f"{graph.url}/{version}/me/messages", params=params, json=body, timeout=timeout
    )


def text(psid: str, words: str) -> dict[str, Any]:
    return {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": words}}


def action(psid: str, name: str) -> dict[str, Any]:
    return {"recipient": {"id": psid}, "sender_action": name}


def assert_graph_error(answer: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["type"] == "OAuthException"
    assert error["fbtrace_id"]
    return error


# -- success ---------------------------------------------------------------------------------


def test_text_message_is_delivered_and_recorded(graph: MessengerSimulator) -> None:
    before = time.monotonic()
    answer = send(graph, text(PSID, "Hello there"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["recipient_id"] == PSID
    assert body["message_id"].startswith("m_")
    [call] = graph.calls
    assert (call.psid, call.kind, call.status, call.access_token) == (PSID, "message", 200, TOKEN)
    assert before <= call.at <= time.monotonic()
    assert call.body == text(PSID, "Hello there")
    assert call.response == body
    assert graph.messages_to(PSID) == [{"text": "Hello there"}]
    assert graph.texts_to(PSID) == ["Hello there"]
    assert graph.texts_to("someone-else") == []


def test_graph_api_url_is_what_the_handler_is_configured_with(graph: MessengerSimulator) -> None:
    assert graph.graph_api_url == f"{graph.url}/{DEFAULT_GRAPH_API_VERSION}"
    assert Settings(table_name="t").graph_api_url.endswith(f"/{DEFAULT_GRAPH_API_VERSION}")
    answer = requests.post(
        f"{graph.graph_api_url}/me/messages",
        params={"access_token": TOKEN},
        json=text(PSID, "hi"),
        timeout=5,
    )
    assert answer.status_code == 200


@pytest.mark.parametrize("version", ["v2.0", "v19.0", "v24.0", "v100.12"])
def test_any_graph_version_is_accepted(graph: MessengerSimulator, version: str) -> None:
    assert send(graph, text(PSID, "hi"), version=version).status_code == 200


@pytest.mark.parametrize(
    "path", ["/v24/me/messages", "/v24.0/me/messages/extra", "/nothing/here/at/all"]
)
def test_unknown_paths_get_graphs_unknown_path_error(graph: MessengerSimulator, path: str) -> None:
    answer = requests.post(f"{graph.url}{path}", params={"access_token": TOKEN}, json={}, timeout=5)
    assert answer.status_code == 400


@pytest.mark.parametrize("name", ["mark_seen", "typing_on", "typing_off"])
def test_sender_actions(graph: MessengerSimulator, name: str) -> None:
    answer = send(graph, action(PSID, name))
    assert answer.status_code == 200
    assert answer.json() == {"recipient_id": PSID}
    assert graph.actions_to(PSID) == [name]
    assert graph.messages_to(PSID) == []
    assert graph.calls[0].kind == "sender_action"


def test_token_in_authorization_header_is_accepted(graph: MessengerSimulator) -> None:
    answer = requests.post(
        f"{graph.graph_api_url}/me/messages",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json=text(PSID, "hi"),
        timeout=5,
    )
    assert answer.status_code == 200
    assert graph.calls[0].access_token == TOKEN


def test_form_encoded_send_is_accepted(graph: MessengerSimulator) -> None:
    answer = requests.post(
        f"{graph.graph_api_url}/me/messages",
        data={
            "access_token": TOKEN,
            "recipient": json.dumps({"id": PSID}),
            "message": '{"text": "form"}',
        },
        timeout=5,
    )
    assert answer.status_code == 200
    assert graph.texts_to(PSID) == ["form"]
    assert "access_token" not in graph.calls[0].body


def test_without_an_expected_token_any_token_or_none_is_accepted() -> None:
    with MessengerSimulator() as graph:
        assert send(graph, text(PSID, "a"), token="whatever").status_code == 200
        assert send(graph, text(PSID, "b"), token=None).status_code == 200
        assert graph.texts_to(PSID) == ["a", "b"]
        assert [c.access_token for c in graph.calls] == ["whatever", None]


def test_messenger_profile_is_recorded(graph: MessengerSimulator) -> None:
    url = f"{graph.graph_api_url}/me/messenger_profile"
    profile = {
        "get_started": {"payload": "GET_STARTED"},
        "greeting": [{"locale": "default", "text": "Hi"}],
    }
    answer = requests.post(url, params={"access_token": TOKEN}, json=profile, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"result": "success"}
    assert graph.profile_calls == [{"method": "POST", **profile}]
    stored = requests.get(url, params={"access_token": TOKEN}, timeout=5).json()
    assert stored["data"][0]["get_started"] == {"payload": "GET_STARTED"}
    deleted = requests.delete(
        url, params={"access_token": TOKEN}, json={"fields": ["greeting"]}, timeout=5
    )
    assert deleted.json() == {"result": "success"}
    assert (
        "greeting"
        not in requests.get(url, params={"access_token": TOKEN}, timeout=5).json()["data"][0]
    )
    bad = requests.post(url, params={"access_token": "nope"}, json=profile, timeout=5)
    assert_graph_error(bad, 400, 190)


def test_page_and_user_lookups(graph: MessengerSimulator) -> None:
    me = requests.get(f"{graph.graph_api_url}/me", params={"access_token": TOKEN}, timeout=5)
    assert me.json() == {"name": "Local Page", "id": graph.page_id}
    user = requests.get(f"{graph.graph_api_url}/{PSID}", params={"access_token": TOKEN}, timeout=5)
    assert user.json()["id"] == PSID


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["wrong-token", None])
def test_wrong_or_missing_token_is_oauth_error_190(
    graph: MessengerSimulator, token: str | None
) -> None:
    answer = send(graph, text(PSID, "hi"), token=token)
    error = assert_graph_error(answer, 400, 190)
    assert error["message"] == "Invalid OAuth access token."
    assert "invalid_token" in answer.headers["WWW-Authenticate"]
    assert graph.calls[0].status == 400
    assert graph.texts_to(PSID) == []


def test_text_limit_is_2000_characters(graph: MessengerSimulator) -> None:
    assert send(graph, text(PSID, "x" * 2000)).status_code == 200
    assert send(graph, text(PSID, "é" * 2000)).status_code == 200  # characters, not bytes
    answer = send(graph, text(PSID, "x" * 2001))
    error = assert_graph_error(answer, 400, 100)
    assert (
        error["message"]
        == "(#100) Length of param message[text] must be less than or equal to 2000"
    )
    assert len(graph.texts_to(PSID)) == 2


def test_at_most_13_quick_replies(graph: MessengerSimulator) -> None:
    def with_replies(count: int) -> dict[str, Any]:
        replies = [
            {"content_type": "text", "title": f"Q{i}", "payload": f"Q{i}"} for i in range(count)
        ]
        body = text(PSID, "Pick one")
        body["message"]["quick_replies"] = replies
        return body

    assert send(graph, with_replies(13)).status_code == 200
    assert_graph_error(send(graph, with_replies(14)), 400, 100)


def test_button_template_takes_at_most_3_buttons(graph: MessengerSimulator) -> None:
    def template(count: int) -> dict[str, Any]:
        buttons = [{"type": "postback", "title": f"B{i}", "payload": f"B{i}"} for i in range(count)]
        payload = {"template_type": "button", "text": "Choose", "buttons": buttons}
        return {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {"attachment": {"type": "template", "payload": payload}},
        }

    assert send(graph, template(3)).status_code == 200
    assert_graph_error(send(graph, template(4)), 400, 100)
    assert graph.messages_to(PSID)[0]["attachment"]["payload"]["template_type"] == "button"
    assert graph.texts_to(PSID) == []


@pytest.mark.parametrize(
    "body",
    [
        {"messaging_type": "RESPONSE", "message": {"text": "no recipient"}},
        {"recipient": {}, "message": {"text": "no id"}},
        {"sender_action": "typing_on"},
    ],
)
def test_missing_recipient_is_error_100(graph: MessengerSimulator, body: dict[str, Any]) -> None:
    error = assert_graph_error(send(graph, body), 400, 100)
    assert error["message"] == "(#100) The parameter recipient is required"
    assert graph.calls[0].psid is None


@pytest.mark.parametrize(
    "body",
    [
        {"recipient": {"id": PSID}, "sender_action": "dance"},
        {"recipient": {"id": PSID}, "message": {}},
        {"recipient": {"id": PSID}, "message": {"text": ""}},
        {"recipient": {"id": PSID}, "messaging_type": "SPAM", "message": {"text": "x"}},
        {"recipient": {"id": PSID}, "messaging_type": "MESSAGE_TAG", "message": {"text": "x"}},
        {"recipient": {"id": PSID}},
    ],
)
def test_other_malformed_sends_are_error_100(
    graph: MessengerSimulator, body: dict[str, Any]
) -> None:
    assert_graph_error(send(graph, body), 400, 100)
    assert graph.outbox_since(PSID) == []


def test_body_that_is_not_json_is_error_100(graph: MessengerSimulator) -> None:
    answer = requests.post(
        f"{graph.graph_api_url}/me/messages",
        params={"access_token": TOKEN},
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert_graph_error(answer, 400, 100)
    assert [(c.status, c.body) for c in graph.calls] == [(400, {})]


# -- faults ----------------------------------------------------------------------------------


def test_fail_next_answers_graph_errors_then_recovers(graph: MessengerSimulator) -> None:
    graph.fail_next(400, 551, 1545041, "This person isn't available right now.", times=2)
    for _ in range(2):
        error = assert_graph_error(send(graph, text(PSID, "hi")), 400, 551)
        assert error["error_subcode"] == 1545041
        assert error["message"] == "This person isn't available right now."
    assert send(graph, text(PSID, "hi")).status_code == 200
    assert [c.status for c in graph.calls] == [400, 400, 200]
    assert graph.texts_to(PSID) == ["hi"]


def test_fail_next_defaults_and_retry_after(graph: MessengerSimulator) -> None:
    graph.fail_next(429, 613, retry_after=7)
    answer = send(graph, text(PSID, "hi"))
    error = assert_graph_error(answer, 429, 613)
    assert "rate limit" in error["message"]
    assert "error_subcode" not in error
    assert answer.headers["Retry-After"] == "7"
    graph.fail_next(500, 2)
    assert assert_graph_error(send(graph, text(PSID, "hi")), 500, 2)["message"]


def test_faults_can_target_only_message_sends(graph: MessengerSimulator) -> None:
    graph.fail_next(500, 2, only="message")
    assert send(graph, action(PSID, "typing_on")).status_code == 200
    assert send(graph, text(PSID, "hi")).status_code == 500
    assert send(graph, text(PSID, "hi")).status_code == 200


def test_faults_can_target_only_sender_actions(graph: MessengerSimulator) -> None:
    graph.fail_next(500, 2, only="sender_action")
    assert send(graph, text(PSID, "hi")).status_code == 200
    assert send(graph, action(PSID, "typing_on")).status_code == 500
    with pytest.raises(ValueError):
        graph.fail_next(500, 2, only="everything")  # type: ignore[arg-type]


def test_faults_can_target_one_recipient(graph: MessengerSimulator) -> None:
    admin = "2400000000000009"
    graph.fail_next(400, 551, 1545041, only="message", psid=PSID)
    graph.reset_connection_next(psid=admin)
    assert send(graph, action(PSID, "typing_on")).status_code == 200
    with pytest.raises(requests.ConnectionError):
        send(graph, text(admin, "new user"))
    assert send(graph, text(admin, "new user")).status_code == 200
    assert send(graph, text(PSID, "hi")).status_code == 400
    assert send(graph, text(PSID, "hi")).status_code == 200


def test_fault_wins_over_a_bad_token(graph: MessengerSimulator) -> None:
    graph.fail_next(503, 2)
    assert send(graph, text(PSID, "hi"), token="wrong").status_code == 503


def test_reset_connection_next(graph: MessengerSimulator) -> None:
    graph.reset_connection_next(only="message")
    assert send(graph, action(PSID, "typing_on")).status_code == 200
    with pytest.raises(requests.ConnectionError):
        send(graph, text(PSID, "lost"))
    assert send(graph, text(PSID, "found")).status_code == 200
    assert [c.status for c in graph.calls] == [200, 0, 200]
    assert graph.texts_to(PSID) == ["found"]


def test_reset_with_a_reused_session(graph: MessengerSimulator) -> None:
    graph.reset_connection_next(times=2)
    with requests.Session() as session:
        url = f"{graph.graph_api_url}/me/messages"
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                session.post(url, params={"access_token": TOKEN}, json=text(PSID, "x"), timeout=5)
        ok = session.post(url, params={"access_token": TOKEN}, json=text(PSID, "y"), timeout=5)
        assert ok.status_code == 200


def test_delay_next_makes_the_client_time_out(graph: MessengerSimulator) -> None:
    graph.delay_next(0.5)
    with pytest.raises(requests.Timeout):
        send(graph, text(PSID, "slow"), timeout=0.1)
    assert send(graph, text(PSID, "fast")).status_code == 200
    # The stalled call is still answered (and delivered) once its delay is over.
    assert graph.wait_for_texts(PSID, 2) == ["fast", "slow"]


# -- recording and waiting -------------------------------------------------------------------


def later(delay: float, work: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        work()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_wait_for_wakes_when_a_call_arrives(graph: MessengerSimulator) -> None:
    thread = later(0.1, lambda: send(graph, text(PSID, "eventually")))
    started = time.monotonic()
    texts = graph.wait_for(lambda: graph.texts_to(PSID), timeout=5)
    thread.join()
    assert texts == ["eventually"]
    assert time.monotonic() - started < 2


def test_wait_for_times_out(graph: MessengerSimulator) -> None:
    with pytest.raises(TimeoutError, match="graph"):
        graph.wait_for(lambda: graph.texts_to(PSID), timeout=0.1)
    with pytest.raises(TimeoutError, match="wanted 2 texts"):
        send(graph, text(PSID, "one"))
        graph.wait_for_texts(PSID, 2, timeout=0.1)


def test_concurrent_sends_are_all_recorded(graph: MessengerSimulator) -> None:
    count = 30
    threads = [
        threading.Thread(target=send, args=(graph, text(str(1000 + i % 3), f"t{i}")))
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = graph.calls
    assert len(calls) == count
    assert len({c.response["message_id"] for c in calls if c.response}) == count
    items = [item for psid in ("1000", "1001", "1002") for item in graph.outbox_since(psid)]
    assert sorted(item.seq for item in items) == list(range(1, count + 1))


def test_outbox_keeps_a_conversation_per_psid(graph: MessengerSimulator) -> None:
    other = "2400000000000002"
    send(graph, action(PSID, "mark_seen"))
    send(graph, action(PSID, "typing_on"))
    send(graph, text(other, "for someone else"))
    send(graph, text(PSID, "answer"))
    graph.fail_next(500, 2)
    send(graph, text(PSID, "failed, so not shown"))
    items = graph.outbox_since(PSID)
    assert [(i.kind, i.action, i.message) for i in items] == [
        ("sender_action", "mark_seen", None),
        ("sender_action", "typing_on", None),
        ("message", None, {"text": "answer"}),
    ]
    seqs = [i.seq for i in items]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert items[2].message_id == graph.calls[3].response["message_id"]
    assert graph.outbox_since(PSID, seqs[1]) == [items[2]]
    assert graph.outbox_since(PSID, seqs[2]) == []
    assert [i.message for i in graph.outbox_since(other)] == [{"text": "for someone else"}]
    as_json = items[2].to_dict()
    assert as_json["seq"] == seqs[2] and as_json["message"] == {"text": "answer"}


def test_wait_outbox_long_polls(graph: MessengerSimulator) -> None:
    assert graph.wait_outbox(PSID, 0, timeout=0.05) == []
    thread = later(0.1, lambda: send(graph, text(PSID, "pushed")))
    items = graph.wait_outbox(PSID, 0, timeout=5)
    thread.join()
    assert [i.message for i in items] == [{"text": "pushed"}]


def test_wait_outbox_returns_when_the_simulator_stops() -> None:
    graph = MessengerSimulator().start()
    thread = later(0.1, graph.stop)
    started = time.monotonic()
    assert graph.wait_outbox(PSID, 0, timeout=10) == []
    thread.join()
    assert time.monotonic() - started < 3


def test_clear_forgets_but_sequence_keeps_growing(graph: MessengerSimulator) -> None:
    send(graph, text(PSID, "before"))
    first = graph.outbox_since(PSID)[0].seq
    graph.fail_next(500, 2)
    graph.clear()
    assert graph.calls == [] and graph.outbox_since(PSID) == []
    assert send(graph, text(PSID, "after")).status_code == 200  # the fault was cleared too
    assert graph.outbox_since(PSID)[0].seq > first


# -- webhook set-up: the app's subscriptions and the page's subscribed apps -------------------

APP_ID = "1234567890123"
APP_SECRET = "app-secret-for-tests"
APP_TOKEN = f"{APP_ID}|{APP_SECRET}"
VERIFY = "verify-token-for-tests"
FIELDS = "messages,messaging_postbacks,messaging_referrals,message_echoes"


class Webhook(LocalServer):
    """A callback URL that answers Meta's verify challenge as the handler does."""

    name = "webhook"

    def __init__(self, verify_token: str) -> None:
        super().__init__()
        self.verify_token = verify_token
        self.seen: list[dict[str, str]] = []

    def handle(self, request: Request) -> Response:
        self.seen.append(dict(request.query))
        inbound = HttpRequest(request.method, request.path, request.query, {}, request.body)
        answer = verify_challenge(inbound, self.verify_token)
        return Response(answer["statusCode"], answer["body"].encode(), answer["headers"])


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def meta(clock: list[float]) -> Iterator[MessengerSimulator]:
    simulator = MessengerSimulator(
        TOKEN, app_id=APP_ID, app_secret=APP_SECRET, clock=lambda: clock[0]
    )
    with simulator:
        yield simulator


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook(VERIFY) as server:
        yield server


def subscribe(
    meta: MessengerSimulator,
    callback: str,
    token: str | None = APP_TOKEN,
    verify_token: str = VERIFY,
    fields: str = FIELDS,
    app: str = APP_ID,
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    form = {"object": "page", "callback_url": callback, "verify_token": verify_token}
    return requests.post(
        f"{meta.graph_api_url}/{app}/subscriptions",
        data={**form, "fields": fields},
        headers=headers,
        timeout=15,
    )


def app_call(meta: MessengerSimulator, method: str, **params: str) -> requests.Response:
    return requests.request(
        method,
        f"{meta.graph_api_url}/{APP_ID}/subscriptions",
        params={"access_token": APP_TOKEN, **params},
        timeout=5,
    )


def page_call(
    meta: MessengerSimulator, method: str, token: str = TOKEN, **form: str
) -> requests.Response:
    return requests.request(
        method,
        f"{meta.graph_api_url}/{meta.page_id}/subscribed_apps",
        params={"access_token": token},
        data=form or None,
        timeout=5,
    )


def test_subscribing_the_app_verifies_the_callback_first(
    meta: MessengerSimulator, webhook: Webhook
) -> None:
    answer = subscribe(meta, f"{webhook.url}/")
    assert answer.status_code == 200 and answer.json() == {"success": True}
    [challenge] = webhook.seen
    assert challenge["hub.mode"] == "subscribe"
    assert challenge["hub.verify_token"] == VERIFY
    assert challenge["hub.challenge"].isdigit()
    listed = app_call(meta, "GET").json()["data"]
    assert listed == [
        {
            "object": "page",
            "callback_url": f"{webhook.url}/",
            "active": True,
            "fields": [{"name": f, "version": meta.version} for f in FIELDS.split(",")],
        }
    ]
    [post, get] = meta.setup_calls
    assert (post.method, post.path, post.access_token) == (
        "POST",
        f"/{APP_ID}/subscriptions",
        APP_TOKEN,
    )
    assert post.params == {
        "object": "page",
        "callback_url": f"{webhook.url}/",
        "verify_token": VERIFY,
        "fields": FIELDS,
    }
    assert (get.method, get.params) == ("GET", {})  # the access token is never kept in params


def test_a_verify_token_of_digits_stays_text(meta: MessengerSimulator) -> None:
    with Webhook("0012345") as digits:
        assert subscribe(meta, digits.url, verify_token="0012345").status_code == 200
        assert digits.seen[0]["hub.verify_token"] == "0012345"


def test_a_callback_that_does_not_echo_the_challenge_is_graph_error_2200(
    meta: MessengerSimulator,
) -> None:
    with Webhook("another-token") as wrong:
        error = assert_graph_error(subscribe(meta, wrong.url), 400, 2200)
    assert error["message"].startswith("(#2200) callback verification failed: ")
    assert 'received="Forbidden"' in error["message"]
    assert meta.app_subscriptions == {}
    unreachable = assert_graph_error(subscribe(meta, "http://127.0.0.1:9/"), 400, 2200)
    assert "Couldn't connect" in unreachable["message"]


def test_more_fields_are_added_and_a_delete_removes_fields_or_all(
    meta: MessengerSimulator, webhook: Webhook
) -> None:
    assert subscribe(meta, webhook.url, fields="messages").status_code == 200
    assert subscribe(meta, webhook.url, fields="messaging_postbacks").status_code == 200
    assert meta.app_subscriptions["page"]["fields"] == ["messages", "messaging_postbacks"]
    removed = app_call(meta, "DELETE", object="page", fields="messages")
    assert removed.json() == {"success": True}
    assert meta.app_subscriptions["page"]["fields"] == ["messaging_postbacks"]
    assert app_call(meta, "DELETE", object="page").json() == {"success": True}
    assert app_call(meta, "GET").json() == {"data": []}


@pytest.mark.parametrize(
    ("token", "code"),
    [(TOKEN, 15), (None, 15), (f"{APP_ID}|wrong-secret", 190), ("999|x", 190)],
)
def test_the_apps_subscriptions_take_only_its_app_token(
    meta: MessengerSimulator, webhook: Webhook, token: str | None, code: int
) -> None:
    assert_graph_error(subscribe(meta, webhook.url, token=token), 400, code)
    assert webhook.seen == [] and meta.app_subscriptions == {}


def test_another_apps_subscriptions_do_not_exist_here(
    meta: MessengerSimulator, webhook: Webhook
) -> None:
    assert_graph_error(subscribe(meta, webhook.url, app="999"), 400, 100)


@pytest.mark.parametrize(
    ("fields", "fragment"), [("", "fields is required"), ("messages,bogus", "fields[1]")]
)
def test_subscription_fields_are_checked(
    meta: MessengerSimulator, webhook: Webhook, fields: str, fragment: str
) -> None:
    error = assert_graph_error(subscribe(meta, webhook.url, fields=fields), 400, 100)
    assert fragment in error["message"]


def test_the_page_subscribes_to_the_app_with_its_token(meta: MessengerSimulator) -> None:
    assert page_call(meta, "GET").json() == {"data": []}
    answer = page_call(meta, "POST", subscribed_fields=FIELDS)
    assert answer.json() == {"success": True}
    [app] = page_call(meta, "GET").json()["data"]
    assert app["id"] == APP_ID and app["subscribed_fields"] == FIELDS.split(",")
    # A second POST replaces the app's fields.
    page_call(meta, "POST", subscribed_fields="messages")
    assert meta.subscribed_fields == ["messages"]
    assert page_call(meta, "DELETE").json() == {"success": True}
    assert meta.subscribed_fields is None
    assert [(c.method, c.path) for c in meta.setup_calls][1:] == [
        ("POST", f"/{meta.page_id}/subscribed_apps"),
        ("GET", f"/{meta.page_id}/subscribed_apps"),
        ("POST", f"/{meta.page_id}/subscribed_apps"),
        ("DELETE", f"/{meta.page_id}/subscribed_apps"),
    ]


def test_the_page_subscription_refuses_the_app_token_and_a_bad_token(
    meta: MessengerSimulator,
) -> None:
    error = assert_graph_error(
        page_call(meta, "POST", APP_TOKEN, subscribed_fields=FIELDS), 400, 210
    )
    assert "page access token is required" in error["message"]
    assert_graph_error(page_call(meta, "POST", "wrong", subscribed_fields=FIELDS), 400, 190)
    assert_graph_error(page_call(meta, "POST"), 400, 100)
    assert_graph_error(page_call(meta, "POST", subscribed_fields="messages,nope"), 400, 100)
    assert meta.subscribed_fields is None


def test_a_token_without_pages_manage_metadata_cannot_subscribe_the_page(
    meta: MessengerSimulator,
) -> None:
    meta.revoke_permission("pages_manage_metadata")
    answer = page_call(meta, "POST", subscribed_fields=FIELDS)
    error = assert_graph_error(answer, 403, 200)
    assert (
        error["message"] == "(#200) Requires pages_manage_metadata permission to manage the object"
    )
    assert meta.subscribed_fields is None
    assert send(meta, text(PSID, "still sends")).status_code == 200  # pages_messaging is kept
    meta.grant_permission("pages_manage_metadata")
    assert page_call(meta, "POST", subscribed_fields=FIELDS).status_code == 200


def test_without_pages_messaging_neither_sends_nor_profile_work(meta: MessengerSimulator) -> None:
    meta.revoke_permission("pages_messaging")
    error = assert_graph_error(send(meta, text(PSID, "hi")), 403, 200)
    assert "pages_messaging" in error["message"]
    answer = profile_call(meta, "POST", {"get_started": {"payload": "GET_STARTED"}})
    assert_graph_error(answer, 403, 200)
    meta.clear()  # forgets revoked permissions with the rest
    assert send(meta, text(PSID, "hi")).status_code == 200


# -- the messenger profile: Messenger's limits and its rate limit ----------------------------


def profile_call(
    graph: MessengerSimulator, method: str, body: dict[str, Any] | None = None, **params: str
) -> requests.Response:
    return requests.request(
        method,
        f"{graph.graph_api_url}/me/messenger_profile",
        params={"access_token": TOKEN, **params},
        json=body,
        timeout=5,
    )


def whole_profile() -> dict[str, Any]:
    return profile.messenger_profile(
        {"default": "Hello!", "fr_FR": "Bonjour !"},
        ["What can you do?"],
        [("Our site", "https://example.com")],
    )


def test_the_whole_profile_is_set_in_one_call_and_read_back(meta: MessengerSimulator) -> None:
    body = whole_profile()
    assert profile_call(meta, "POST", body).json() == {"result": "success"}
    assert meta.profile == body
    got = profile_call(meta, "GET", fields="greeting,ice_breakers").json()
    assert got == {"data": [{"greeting": body["greeting"], "ice_breakers": body["ice_breakers"]}]}
    assert profile_call(meta, "GET").json() == {"data": [body]}


def test_delete_takes_the_fields_in_the_body_or_the_query(meta: MessengerSimulator) -> None:
    profile_call(meta, "POST", whole_profile())
    assert profile_call(meta, "DELETE", {"fields": ["ice_breakers"]}).status_code == 200
    assert profile_call(meta, "DELETE", fields='["greeting"]').status_code == 200
    assert set(meta.profile) == {"get_started", "persistent_menu"}
    deleted = profile_call(meta, "DELETE", {"fields": ["persistent_menu", "get_started"]})
    assert deleted.status_code == 200 and meta.profile == {}


def menu(*titles: str, url: str = "https://example.com") -> list[dict[str, Any]]:
    actions = [{"type": "web_url", "title": title, "url": url} for title in titles]
    return [{"locale": "default", "composer_input_disabled": False, "call_to_actions": actions}]


@pytest.mark.parametrize(
    ("method", "body", "fragment"),
    [
        ("POST", {}, "Requires one of the params"),
        ("POST", {"whatever": 1}, "Param whatever is not a valid"),
        ("POST", {"get_started": {}}, "get_started[payload]"),
        ("POST", {"greeting": [{"locale": "default", "text": "x" * 161}]}, "at most 160"),
        ("POST", {"greeting": [{"locale": "fr_FR", "text": "Salut"}]}, "default locale"),
        ("POST", {"ice_breakers": profile.ice_breakers(list("abcde"))}, "at most 4 elements"),
        ("POST", {"persistent_menu": menu("Site")}, "must set a Get Started button"),
        (
            "POST",
            {"get_started": {"payload": "GET_STARTED"}, "persistent_menu": menu("T" * 31)},
            "[title] must be at most 30",
        ),
        (
            "POST",
            {"get_started": {"payload": "G"}, "persistent_menu": menu("Site", url="http://x")},
            "[url] must be a valid https URL",
        ),
        (
            "POST",
            {"get_started": {"payload": "G"}, "persistent_menu": menu(*"abcdefghijklmnopqrstu")},
            "at most 20 elements",
        ),
        ("DELETE", {}, "fields is required"),
        ("DELETE", {"fields": ["greeting", "bogus"]}, "fields[1] must be one of"),
    ],
)
def test_the_profile_api_refuses_what_messenger_refuses(
    meta: MessengerSimulator, method: str, body: dict[str, Any], fragment: str
) -> None:
    error = assert_graph_error(profile_call(meta, method, body), 400, 100)
    assert fragment in error["message"], error["message"]
    assert meta.profile == {} and meta.profile_calls == []


def test_the_get_started_button_outlives_the_persistent_menu(meta: MessengerSimulator) -> None:
    profile_call(meta, "POST", whole_profile())
    error = assert_graph_error(profile_call(meta, "DELETE", {"fields": ["get_started"]}), 400, 100)
    assert "persistent menu" in error["message"]
    assert "get_started" in meta.profile


def test_ten_profile_writes_per_ten_minutes(meta: MessengerSimulator, clock: list[float]) -> None:
    body = {"get_started": {"payload": "GET_STARTED"}}
    for n in range(10):
        clock[0] += 30
        method = "DELETE" if n % 2 else "POST"
        answer = profile_call(meta, method, {"fields": ["get_started"]} if n % 2 else body)
        assert answer.status_code == 200, n
    error = assert_graph_error(profile_call(meta, "POST", body), 400, 613)
    assert error["message"] == "(#613) Calls to this api have exceeded the rate limit."
    assert profile_call(meta, "GET").status_code == 200  # reading is not a write
    clock[0] += 600 - 10 * 30 + 30  # ten minutes after the first write
    assert profile_call(meta, "POST", body).status_code == 200
    assert_graph_error(profile_call(meta, "POST", body), 400, 613)
    assert [c.status for c in meta.setup_calls].count(400) == 2


def test_clear_forgets_the_set_up_too(meta: MessengerSimulator, webhook: Webhook) -> None:
    subscribe(meta, webhook.url)
    page_call(meta, "POST", subscribed_fields=FIELDS)
    profile_call(meta, "POST", whole_profile())
    meta.clear()
    assert meta.app_subscriptions == {} and meta.subscribed_fields is None
    assert meta.profile == {} and meta.setup_calls == []


# -- Messenger's CDN -------------------------------------------------------------------------


def test_a_hosted_attachment_is_served_at_its_url_with_its_type(graph: MessengerSimulator):
    url = graph.host_attachment(b"\x89PNG...", "image/png", "photo.png")
    assert url.startswith(f"{graph.url}/cdn/") and "/photo.png?" in url
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/png" and answer.content == b"\x89PNG..."
    [download] = graph.downloads
    assert download.status == 200 and "oh" in download.query
    assert download.authorization == "" and "access_token" not in download.query


def test_an_expired_or_unknown_attachment_url_is_refused(graph: MessengerSimulator):
    url = graph.host_attachment(b"audio", "audio/mp4")
    graph.expire_attachment(url)
    assert requests.get(url, timeout=5).status_code == 403
    assert requests.get(f"{graph.url}/cdn/nothing/here", timeout=5).status_code == 404
    gone = graph.host_attachment(b"x", "image/jpeg", status=404)
    assert requests.get(gone, timeout=5).status_code == 404
    assert [d.status for d in graph.downloads] == [403, 404, 404]
