"""MessengerSimulator through ``requests``, the way the handler's Graph client calls it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from handler.settings import DEFAULT_GRAPH_API_VERSION, Settings
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
