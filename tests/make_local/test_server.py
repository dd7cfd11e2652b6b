"""The local server's endpoints, over HTTP against ``python -m local``: page, API, webhook."""

from __future__ import annotations

import json
import time
from unittest.mock import ANY

import requests

from handler.profile import messenger_profile
from handler.replies import WELCOME_OPENING
from handler.signature import sign
from tests.make_local.conftest import OWNER, ChatApi, LocalProcess, listening


def test_it_prints_where_everything_is_and_which_model_answers(local: LocalProcess):
    assert local.url.startswith("http://127.0.0.1:") and local.url.endswith("/")
    assert local.printed("Webhook").startswith(f"POST {local.base}/webhook")
    assert f"GET {local.base}/webhook" in local.printed("Webhook")
    assert local.printed("Model").startswith("offline echo model")
    assert "Set OPENAI_API_KEY for real answers." in local.output
    assert local.printed("Graph API").startswith("local Messenger simulator")
    assert local.printed("Daily limit").startswith("2 questions; owner PSID " + OWNER)
    assert local.printed("Storage").startswith("embedded DynamoDB (moto) at http://127.0.0.1:")
    assert local.printed("Queue") == (
        "FIFO queue (moto) + queue poller standing in for Lambda's event source mapping"
    )
    assert "one message group per person" in local.output
    assert local.printed("Dead letters").startswith("FIFO dead-letter queue ")


def test_every_listener_is_on_loopback(local: LocalProcess):
    addresses = listening(local.process.pid)
    assert (("127.0.0.1", local.port)) in addresses
    moto = local.printed("Storage").split()[4].rstrip(",")  # embedded DynamoDB (moto) at URL
    assert ("127.0.0.1", int(moto.rsplit(":", 1)[1])) in addresses
    # Page, moto (table and queues), simulator, echo model; the queue poller listens on nothing.
    assert len(addresses) == 4
    assert {host for host, _port in addresses} == {"127.0.0.1"}


def test_the_page_and_its_assets_are_served_with_a_strict_policy(local: LocalProcess):
    page = requests.get(local.url, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert 'aria-live="polite"' in page.text and '<label for="text"' in page.text
    for asset, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        answer = requests.get(f"{local.base}/static/{asset}", timeout=5)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(kind)
    for wrong in ("/static/../stack.py", "/static/%2e%2e/stack.py", "/static/.hidden", "/nope"):
        assert requests.get(local.base + wrong, timeout=5).status_code == 404


def test_config_says_what_the_page_shows(api: ChatApi):
    config = api.get("config")
    assert config["mode"] == "simulator"
    assert config["model"]["offline"] is True and config["model"]["kind"] == "echo"
    assert config["dailyLimit"] == 2
    assert config["owner"] == OWNER and config["admins"] == [OWNER]
    assert config["webhook"] == "/webhook"
    assert "secret" not in json.dumps(config).lower()


def test_the_page_reads_the_messenger_profile_make_local_set_on_the_simulator(
    local: LocalProcess, api: ChatApi
):
    assert local.printed("Page profile").startswith(
        "Get Started, greeting, menu (Help, Usage, New conversation, Talk to a person)"
    )
    found = api.get("profile")
    assert found == {"page": {"id": found["page"]["id"], "name": "Local Page"}, "profile": ANY}
    assert found["profile"] == messenger_profile()  # the stack's defaults: no setting given


def test_a_message_gets_mark_seen_typing_and_the_echo(api: ChatApi):
    psid = api.new_user()
    sent = api.send(psid, "Hello, bridge")
    assert sent["ok"] is True and sent["status"] == 200
    welcome, reply = api.wait_texts(psid, 2)  # a new person: the welcome first
    assert welcome.startswith(WELCOME_OPENING)
    assert reply.startswith("Echo: Hello, bridge")
    actions = [i["action"] for i in api.get("poll", psid=psid, timeout=0)["items"] if i["action"]]
    assert actions[:2] == ["mark_seen", "typing_on"]
    assert api.user(psid) | {"used": 1, "limit": 2, "left": 1} == api.user(psid)


def test_the_history_holds_both_sides_in_order(api: ChatApi):
    psid = api.new_user()
    api.send(psid, "first")
    api.wait_texts(psid, 1)
    history = api.get("history", psid=psid)
    said = [
        (i["from"], i.get("text") or (i["message"] or {}).get("text")) for i in history["items"]
    ]
    sides = [(side, text) for side, text in said if text]
    assert sides[0] == ("user", "first") and sides[1][0] == "bot"
    assert history["seq"] == max(i["seq"] for i in history["items"] if i["from"] == "bot")


def test_going_over_the_limit_gets_the_polite_message(api: ChatApi):
    psid = api.new_user()
    for text in ("one", "two"):
        api.send(psid, text)
    api.wait_texts(psid, 3)  # the welcome, two echoes
    api.send(psid, "three")
    texts = api.wait_texts(psid, 4)
    assert texts[3].startswith("You've used your 2 questions for today.")
    assert api.user(psid)["left"] == 0


def test_the_owner_is_told_and_a_tapped_button_lets_the_user_in(api: ChatApi):
    psid = api.new_user()
    api.send(psid, "hi")
    api.wait_texts(psid, 1)
    # Sent at once if the owner wrote in the last 24 hours, else with their next message.
    asked = len(api.messages(OWNER))
    api.send(OWNER, "/usage")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the answer comes after what waited for the owner
        later = api.messages(OWNER)[asked:]
        if any(m.get("text", "").startswith("You have no daily limit") for m in later):
            break
        time.sleep(0.1)
    [notice] = _notices_about(api, psid)
    buttons = {b["title"]: b for b in notice["buttons"]}
    assert set(buttons) == {"Allow unlimited", "Keep default", "Block"}
    before = len(api.messages(OWNER))  # every message the owner has, notices included
    tapped = api.tap(OWNER, buttons["Allow unlimited"]["payload"], "Allow unlimited")
    assert tapped["ok"] is True
    assert api.wait_texts(OWNER, before + 1)[before].startswith(f"Done. {psid}: unlimited")
    assert api.user(psid)["status"] == "unlimited"


def _notices_about(api: ChatApi, psid: str) -> list[dict]:
    """The owner's notices about ``psid``: a button template, or a card of a carousel (the
    notices that waited for the owner's next message)."""
    found = []
    for message in api.messages(OWNER):
        payload = message.get("attachment", {}).get("payload", {})
        if psid in payload.get("text", ""):
            found.append(payload)
        found += [card for card in payload.get("elements", []) if psid in card["title"]]
    return found


def test_quick_replies_and_menu_postbacks_reach_the_handler(api: ChatApi):
    psid = api.new_user()
    api.tap(psid, "USAGE", "Usage", kind="quick_reply")
    welcome, usage = api.wait_texts(psid, 2)  # a new person: the welcome first
    assert welcome.startswith(WELCOME_OPENING) and "left" in usage
    api.tap(psid, "HELP", "Help")
    assert "/usage" in api.wait_texts(psid, 3)[2]
    assert api.user(psid)["used"] == 0  # commands are not questions


def test_a_long_answer_arrives_as_several_bubbles(api: ChatApi):
    psid = api.new_user()
    api.send(psid, "Please give me a long answer")
    welcome, *bubbles = api.wait_texts(psid, 4)  # a new person: the welcome first
    assert welcome.startswith(WELCOME_OPENING)
    assert all(len(b) <= 2000 for b in bubbles)
    assert "second bubble of three" in bubbles[1]


def test_people_are_listed_with_their_usage(api: ChatApi):
    psid = api.new_user()
    users = api.get("users")["users"]
    assert users[0] == users[0] | {"psid": OWNER, "name": "Owner", "admin": True}
    me = next(u for u in users if u["psid"] == psid)
    assert me["name"].startswith("User ") and me["seen"] is False and me["left"] == 2
    chosen = api.post("users", {"psid": "12345678"})
    assert chosen["psid"] == "12345678"


def test_bad_requests_are_refused_with_a_reason(local: LocalProcess):
    url = f"{local.base}/api"
    for path, body in (
        ("send", {"psid": "abc", "text": "x"}),
        ("send", {"psid": "12345678", "text": ""}),
        ("tap", {"psid": "12345678", "payload": "", "title": "x"}),
        ("tap", {"psid": "12345678", "payload": "HELP", "kind": "reaction"}),
        ("users", {"psid": "12"}),
    ):
        answer = requests.post(f"{url}/{path}", json=body, timeout=5)
        assert answer.status_code == 400 and answer.json()["error"]
    assert requests.get(f"{url}/nothing", timeout=5).status_code == 404


def test_the_api_answers_this_machine_only(local: LocalProcess):
    """Through a tunnel, from another site, or by DNS rebinding: the page could sign as anyone."""
    api = f"{local.base}/api/users"
    tunnel = {"X-Forwarded-For": "203.0.113.9"}

    def status(method: str, url: str, **kwargs) -> int:
        return requests.request(method, url, timeout=5, **kwargs).status_code

    assert status("GET", api) == 200
    assert status("GET", api, headers=tunnel) == 403
    assert status("GET", local.url, headers=tunnel) == 403
    assert status("GET", api, headers={"Host": "evil.example"}) == 403
    assert status("POST", api, json={}, headers={"Origin": "https://evil.example"}) == 403
    assert status("POST", api, data="psid=12345678") == 403  # what a cross-site form can send


def test_the_webhook_verifies_like_facebook_expects(local: LocalProcess):
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    good = requests.get(
        f"{local.base}/webhook", params={**query, "hub.verify_token": local.verify_token}, timeout=5
    )
    assert (good.status_code, good.text) == (200, "1158201444")
    bad = requests.get(
        f"{local.base}/webhook", params={**query, "hub.verify_token": "wrong"}, timeout=5
    )
    assert bad.status_code == 403
    # The deployed Function URL answers at / too; so does the local one, for tunnels.
    token = {"hub.verify_token": local.verify_token}
    assert requests.get(local.url, params={**query, **token}, timeout=5).text == "1158201444"


def test_the_webhook_refuses_unsigned_or_wrongly_signed_deliveries(local: LocalProcess):
    body = json.dumps({"object": "page", "entry": []}).encode()
    headers = {"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9"}
    unsigned = requests.post(f"{local.base}/webhook", data=body, headers=headers, timeout=5)
    assert unsigned.status_code == 403
    forged = {**headers, "X-Hub-Signature-256": sign(body, "not-the-app-secret")}
    answer = requests.post(f"{local.base}/webhook", data=body, headers=forged, timeout=5)
    assert answer.status_code == 403
