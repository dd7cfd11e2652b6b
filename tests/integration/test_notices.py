"""The owner's notices that always arrive: at once inside Messenger's 24-hour window, else kept
and delivered merged with the owner's next message; e-mailed (the stack's SNS topic, on moto)
when the owner must act, without anyone's words or a secret."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from handler import alerts, app, replies, schema
from handler.store import Store, User
from tests.support.bridge import ADMIN, SECRET_VALUES, Bridge, Context

ALICE = "1000000000000001"
BOB = "1000000000000002"
CAROL = "1000000000000003"
QUESTION = "my very private question about my health"


def outbox(bridge: Bridge) -> dict[str, str]:
    item = bridge.dynamodb.get_item(
        TableName=bridge.table, Key=schema.outbox_key(ADMIN), ConsistentRead=True
    ).get("Item", {})
    return {k: v["S"] for k, v in item.items() if k.startswith("notice:")}


def test_notices_outside_the_window_wait_and_arrive_merged_with_the_owners_next_message(
    bridge: Bridge,
):
    bridge.model.fail_next(429, code="insufficient_quota")
    bridge.say(ALICE, QUESTION)  # a new user, and an alert
    bridge.say(BOB, "hello")  # another new user
    assert bridge.graph.messages_to(ADMIN) == []  # the owner never wrote: nothing sent
    assert sorted(outbox(bridge)) == [
        f"notice:alert:{alerts.INSUFFICIENT_QUOTA}",
        f"notice:new_user:{ALICE}",
        f"notice:new_user:{BOB}",
    ]
    told = bridge.logs.named("user.new")
    assert [(t["delivered"], t["queued"], t["emailed"]) for t in told] == [(0, 1, 0)] * 2

    bridge.say(ADMIN, "/usage")
    text, cards, usage = bridge.graph.messages_to(ADMIN)
    assert alerts.PREFIX in text["text"] and "insufficient_quota" in text["text"]
    payload = cards["attachment"]["payload"]
    assert payload["template_type"] == "generic"  # both new users in one message
    assert [e["title"] for e in payload["elements"]] == [f"New user {ALICE}", f"New user {BOB}"]
    buttons = payload["elements"][0]["buttons"]
    assert [b["payload"] for b in buttons] == [
        f"ADMIN:unlimited:{ALICE}",
        f"ADMIN:default:{ALICE}",
        f"ADMIN:blocked:{ALICE}",
    ]
    assert usage["text"].startswith("You have no daily limit")
    assert outbox(bridge) == {}
    [delivered] = bridge.logs.named("notice.delivered")
    assert (delivered["notices"], delivered["messages"], delivered["left"]) == (3, 2, 0)
    bridge.say(ADMIN, "/usage")  # delivered once
    assert len(bridge.graph.messages_to(ADMIN)) == 4

    bridge.tap(ADMIN, buttons[2]["payload"])  # a card's button works as the notice's did
    assert bridge.texts_to(ADMIN)[-1] == f"Done. {ALICE}: blocked"
    assert QUESTION not in json.dumps(bridge.graph.messages_to(ADMIN))


def test_inside_the_window_a_notice_goes_at_once(bridge: Bridge):
    bridge.say(ADMIN, "/help")
    bridge.say(ALICE, "hi")
    notice = bridge.graph.messages_to(ADMIN)[-1]["attachment"]["payload"]
    assert notice["text"].startswith(f"New user {ALICE} wrote for the first time")
    [told] = bridge.logs.named("user.new")
    assert (told["delivered"], told["queued"], told["emailed"]) == (1, 0, 0)


def test_a_notice_the_send_api_refuses_waits_for_the_owner(bridge: Bridge):
    bridge.say(ADMIN, "/help")
    bridge.graph.fail_next(400, 10, 2018278, only="message", psid=ADMIN)  # outside the window
    bridge.say(ALICE, "hi")
    [told] = bridge.logs.named("user.new")
    assert (told["delivered"], told["queued"]) == (0, 1)
    assert list(outbox(bridge)) == [f"notice:new_user:{ALICE}"]


def test_an_owner_must_act_alert_is_emailed_without_words_or_secrets(bridge: Bridge):
    bridge.model.fail_next(429, code="insufficient_quota")
    bridge.say(ALICE, QUESTION)
    [mail] = bridge.emails()
    assert mail["subject"] == "Messenger bot: Owner alert: OpenAI refused for lack of credit"
    body = mail["body"]
    assert f"Your Messenger bot ({bridge.table}) has a notice for you." in body
    assert "insufficient_quota" in body and "platform.openai.com" in body
    assert QUESTION not in body and "health" not in body
    assert not [secret for secret in SECRET_VALUES if secret in body]
    [raised] = bridge.logs.named("alert.raised")
    assert (raised["delivered"], raised["queued"], raised["emailed"]) == (0, 1, 1)
    # Kept for Messenger too, marked as e-mailed: it is not e-mailed again an hour later.
    kept = outbox(bridge)
    assert json.loads(kept[f"notice:alert:{alerts.INSUFFICIENT_QUOTA}"])["mailed"] is True
    assert "mailed" not in json.loads(kept[f"notice:new_user:{ALICE}"])  # not (yet) e-mailed


def test_a_refused_openai_key_is_emailed_with_what_to_do_and_the_person_apologised_to(
    bridge: Bridge,
):
    bridge.model.fail_next(401, code="invalid_api_key", times=2)
    bridge.say(ALICE, QUESTION)
    bridge.say(BOB, "hello")
    assert bridge.texts_to(ALICE)[-1] == replies.APOLOGY == bridge.texts_to(BOB)[-1]
    assert bridge.used_today(ALICE) == 0
    [mail] = bridge.emails()  # once: the alert is quiet for an hour
    assert mail["subject"] == "Messenger bot: Owner alert: OpenAI refused the API key"
    body = mail["body"]
    assert "401" in body and "pulumi config set --secret openaiApiKey" in body
    assert "pulumi up" in body and QUESTION not in body
    assert not [secret for secret in SECRET_VALUES if secret in body]
    [raised] = bridge.logs.named("alert.raised")
    assert (raised["kind"], raised["queued"], raised["emailed"]) == (alerts.OPENAI_KEY, 1, 1)
    bridge.say(ADMIN, "/help")  # and in Messenger, with the owner's next message
    alert = bridge.texts_to(ADMIN)[0]
    assert f"{alerts.PREFIX}OpenAI refused the API key (401" in alert
    assert "pulumi config set --secret openaiApiKey" in alert


KEEP_WARM = {
    "version": "0",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/keep-warm"],
    "detail": {},
}


def test_the_keep_warm_ping_emails_a_notice_that_waited_an_hour_wherever_it_was_kept(
    bridge: Bridge,
):
    """On a page nobody writes to, only the ping looks; the container that kept the notice
    may be gone, or busy elsewhere."""
    waited = int(time.time()) - 3601
    notice = replace(replies.new_user_notice(User(ALICE), 10), at=waited)
    Store(bridge.dynamodb, bridge.table).keep_notice(ADMIN, notice)
    app.reset()  # a container that kept nothing
    assert app.lambda_handler(KEEP_WARM, Context()) == {"warm": True}
    [mail] = bridge.emails()
    assert mail["subject"] == f"Messenger bot: New user {ALICE}"
    assert json.loads(outbox(bridge)[f"notice:new_user:{ALICE}"])["mailed"] is True
    app.reset()
    assert app.lambda_handler(KEEP_WARM, Context()) == {"warm": True}
    assert bridge.emails() == []  # once
    assert bridge.graph.calls == [] and bridge.model.requests == []


def test_a_refused_page_token_is_emailed_with_what_to_do(bridge: Bridge):
    bridge.graph.fail_next(400, 190, times=50)
    bridge.say(ALICE, QUESTION)
    mails = bridge.emails()
    subjects = [m["subject"] for m in mails]
    assert "Messenger bot: Owner alert: the page token was refused" in subjects
    token = next(m for m in mails if "page token" in m["subject"])["body"]
    assert "pulumi config set --secret pageAccessToken" in token
    assert "python -m admin replay" in token
    for mail in mails:
        assert QUESTION not in mail["body"]
        assert not [secret for secret in SECRET_VALUES if secret in mail["body"]]
    assert outbox(bridge) == {} or f"notice:alert:{alerts.PAGE_TOKEN}" not in outbox(bridge)


def test_a_message_going_to_the_dead_letter_queue_is_emailed(make_bridge):
    bridge = make_bridge(queue={"max_receives": 2})
    bridge.say(ALICE, "hello")  # a known person: a new one's welcome is not in the way
    bridge.graph.fail_next(500, 2, times=50, only="message", psid=ALICE)
    bridge.say(ALICE, QUESTION)
    bridge.settle()
    assert len(bridge.dead_letters()) == 1
    [mail] = [m for m in bridge.emails() if "dead-letter" in m["subject"]]
    assert "could not be answered in 2 tries" in mail["body"]
    assert "send:graph_unavailable" in mail["body"]
    assert "python -m admin replay --all" in mail["body"]
    assert QUESTION not in mail["body"]


def test_users_lists_owners_as_such_and_who_waits_for_a_decision(bridge: Bridge):
    bridge.say(ADMIN, "/help")
    for psid in (ALICE, BOB, CAROL):
        bridge.say(psid, "hi")
    bridge.say(ADMIN, f"/block {BOB}")
    bridge.say(ADMIN, "/users")
    listing, cards = bridge.graph.messages_to(ADMIN)[-2:]
    text = listing["text"]
    assert text.startswith("Recent users (4):")
    assert f"{ADMIN}: owner (no limit)" in text
    assert f"{ALICE}: default, 1/3 today, waiting for your decision" in text
    assert f"{BOB}: blocked\n" in text
    assert text.endswith("2 people are waiting for your decision (below).")
    elements = cards["attachment"]["payload"]["elements"]
    assert [e["title"] for e in elements] == [f"New user {CAROL}", f"New user {ALICE}"]
    bridge.tap(ADMIN, elements[1]["buttons"][1]["payload"])  # keep ALICE on the default
    bridge.say(ADMIN, "/users")
    text = bridge.graph.messages_to(ADMIN)[-2]["text"]
    assert f"{ALICE}: default, 1/3 today\n" in text
    assert text.endswith("1 person is waiting for your decision (below).")
    card = bridge.graph.messages_to(ADMIN)[-1]["attachment"]["payload"]
    assert card["template_type"] == "button" and CAROL in card["text"]


def test_limit_on_a_blocked_or_unlimited_user_says_what_it_did(bridge: Bridge):
    bridge.say(ALICE, "hi")
    bridge.say(ADMIN, f"/block {ALICE}")
    bridge.say(ADMIN, f"/limit {ALICE} 5")
    assert bridge.texts_to(ADMIN)[-1] == replies.limit_kept_blocked(ALICE, 5)
    assert (
        "stays blocked" in bridge.texts_to(ADMIN)[-1] and "limit of 5" in bridge.texts_to(ADMIN)[-1]
    )
    bridge.say(ALICE, "still blocked?")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    bridge.say(ADMIN, f"/unlimited {ALICE}")
    bridge.say(ADMIN, f"/limit {ALICE} 2")
    assert bridge.texts_to(ADMIN)[-1] == (
        f"Done: {ALICE} was unlimited and now has a limit. {ALICE}: default, 1/2 today"
    )
    bridge.say(ADMIN, f"/limit {ADMIN} 2")
    assert bridge.texts_to(ADMIN)[-1] == replies.owner_has_no_limit(ADMIN)
