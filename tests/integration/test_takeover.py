"""Human takeover end to end: a reply typed in the Page Inbox comes back as an echo through the
signed webhook, pauses the bot for that person, and goes into the conversation; the bot's own
echoes never do. /human, /pause, /resume and the notices' buttons, through the real handler."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from handler import replies, schema
from handler.events import BOT_METADATA
from tests.support.bridge import (
    ADMIN,
    Bridge,
    messaging_echo,
    messaging_postback,
    messaging_text,
    webhook_body,
)

ALICE = "1000000000000001"
BOB = "1000000000000002"
SHOP = "Hello, this is Anna from the shop: yes, we ship to Spain."


def pause_item(bridge: Bridge, psid: str) -> dict[str, Any] | None:
    return bridge.dynamodb.get_item(
        TableName=bridge.table, Key=schema.pause_key(psid), ConsistentRead=True
    ).get("Item")


def time_passes(bridge: Bridge, psid: str) -> None:
    """The pause's time runs out (it ends by comparison: nothing is scheduled)."""
    bridge.dynamodb.update_item(
        TableName=bridge.table,
        Key=schema.pause_key(psid),
        UpdateExpression="SET #until = :past",
        ExpressionAttributeNames={"#until": "until"},
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )


def conversation(bridge: Bridge, psid: str) -> list[tuple[str, str]]:
    """The last request's conversation turns, as the model saw them (no system prompt)."""
    return [(m["role"], m["content"]) for m in bridge.model.requests[-1]["messages"][1:]]


def test_a_reply_by_hand_pauses_the_bot_and_the_pause_expires(bridge: Bridge):
    bridge.say(ALICE, "Do you ship abroad?")
    bridge.reply_as_page(ALICE, SHOP)
    [started] = bridge.logs.named("takeover.started")
    assert (started["by"], started["psid"], started["minutes"]) == ("human", ALICE, 30)
    until = int(pause_item(bridge, ALICE)["until"]["N"])
    assert 29 * 60 <= until - time.time() <= 30 * 60

    bridge.say(ALICE, "Great, and how long does it take?")  # the human is answering
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert len(bridge.model.requests) == 1 and bridge.used_today(ALICE) == 1
    assert [e["outcome"] for e in bridge.logs.named("event.done")][-2:] == ["by_hand", "paused"]

    time_passes(bridge, ALICE)
    bridge.say(ALICE, "Hello? Anyone?")
    assert bridge.texts_to(ALICE) == ["The answer is 42."] * 2
    assert bridge.used_today(ALICE) == 2
    # The bot answers only the new message, knowing what was said while it kept quiet.
    assert conversation(bridge, ALICE) == [
        ("user", "Do you ship abroad?"),
        ("assistant", "The answer is 42."),
        ("assistant", SHOP),
        ("user", "Great, and how long does it take?"),
        ("user", "Hello? Anyone?"),
    ]


def test_each_reply_by_hand_starts_the_wait_again_and_never_shortens_it(bridge: Bridge):
    bridge.reply_as_page(ALICE, "First reply by hand.")
    first = int(pause_item(bridge, ALICE)["until"]["N"])
    time.sleep(1.1)
    bridge.reply_as_page(ALICE, "Second reply by hand.")
    assert int(pause_item(bridge, ALICE)["until"]["N"]) > first
    assert len(bridge.logs.named("takeover.started")) == 1  # then extended
    assert len(bridge.logs.named("takeover.extended")) == 1
    bridge.say(ADMIN, f"/pause {ALICE} 240")
    bridge.reply_as_page(ALICE, "A third one.")  # the owner's longer pause holds
    assert int(pause_item(bridge, ALICE)["until"]["N"]) - time.time() > 230 * 60


def test_the_bots_own_echoes_never_pause(make_bridge):
    bridge = make_bridge(APP_ID="100000000000002")
    bridge.subscribe_echoes()  # every message the bot sends comes back, as Meta sends it
    bridge.say(ALICE, "hi")
    bridge.tap(ALICE, "DELETE_CANCELLED")  # and a reply of the bot's own words
    bridge.graph.wait_echoes()
    assert bridge.graph.echoes_delivered == 3  # the welcome (a new person), the answer, this
    # An echo carrying only our app id (no metadata) is ours too.
    ours = messaging_echo(ALICE, "The answer is 42.", app_id=100000000000002)
    bridge.deliver(webhook_body(ours))
    # ...and one with our metadata but the app id of another stack's app.
    bridge.deliver(webhook_body(messaging_echo(ALICE, "x", app_id=5, metadata=BOT_METADATA)))
    bridge.settle()
    assert pause_item(bridge, ALICE) is None
    assert not bridge.logs.named("takeover.started")
    accepted = bridge.logs.named("webhook.accepted")
    # Three echoes sent (the welcome, the answer, the cancel), two delivered by hand.
    assert [a["events"] for a in accepted].count(0) == 5
    bridge.say(ALICE, "still there?")
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42."


def test_a_message_in_flight_when_the_human_writes_is_not_answered(bridge: Bridge):
    asked, go_on = threading.Event(), threading.Event()

    def slow(body: dict[str, Any]) -> str:
        asked.set()
        go_on.wait(20)
        return "An answer the person must not get after the human's."

    bridge.model.responder = slow
    bridge.deliver(webhook_body(messaging_text(ALICE, "What are your opening hours?")))
    assert asked.wait(20), "the model was never asked"
    bridge.subscribe_echoes()
    bridge.graph.reply_as_page(ALICE, "We open at nine. -- Anna")  # while the model thinks
    bridge.graph.wait_echoes()
    assert pause_item(bridge, ALICE) is not None  # written by the webhook, at once
    go_on.set()
    bridge.settle()
    assert bridge.texts_to(ALICE) == []
    assert bridge.used_today(ALICE) == 0  # not counted...
    [held] = bridge.logs.named("takeover.held")
    assert held["answered"] is False and held["tokens"] > 0  # ...though the model was paid
    bridge.model.responder = lambda body: "The answer is 42."
    time_passes(bridge, ALICE)
    bridge.say(ALICE, "Thanks!")
    assert conversation(bridge, ALICE) == [
        ("user", "What are your opening hours?"),
        ("assistant", "We open at nine. -- Anna"),
        ("user", "Thanks!"),
    ]


@pytest.mark.parametrize("how", ["command", "menu"])
def test_a_person_asks_for_a_human_and_the_owner_lets_the_bot_answer_again(
    bridge: Bridge, how: str
):
    bridge.say(ADMIN, "/help")  # the owner wrote: inside the window
    if how == "command":
        bridge.say(ALICE, "/human")
    else:
        bridge.deliver(webhook_body(messaging_postback(ALICE, "HUMAN", "Talk to a person")))
        bridge.settle()
    assert bridge.texts_to(ALICE) == [replies.human_asked(30)]
    [started] = bridge.logs.named("takeover.started")
    assert started["by"] == "person"
    notice = bridge.graph.messages_to(ADMIN)[-1]["attachment"]["payload"]
    assert notice["text"].startswith(f"{ALICE} asked to talk to a person")
    assert [(b["title"], b["payload"]) for b in notice["buttons"]] == [
        ("Take over", f"ADMIN:pause:{ALICE}"),
        ("Let the bot answer", f"ADMIN:resume:{ALICE}"),
    ]
    told = len(bridge.graph.messages_to(ADMIN))  # the help, the new user, this notice
    bridge.say(ALICE, "hello?")
    assert len(bridge.texts_to(ALICE)) == 1 and bridge.model.requests == []
    bridge.say(ALICE, "/human")  # asked again: told once, kept quiet
    assert len(bridge.texts_to(ALICE)) == 1 and len(bridge.graph.messages_to(ADMIN)) == told

    bridge.tap(ADMIN, f"ADMIN:resume:{ALICE}")
    assert bridge.texts_to(ADMIN)[-1] == replies.resumed(ALICE, was_paused=True)
    [ended] = bridge.logs.named("takeover.ended")
    assert (ended["by"], ended["ended_by"], ended["paused"]) == ("person", "owner", ALICE)
    bridge.say(ALICE, "hello again")
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42."


def test_resume_ends_a_takeover_early_and_says_when_there_was_none(bridge: Bridge):
    bridge.reply_as_page(ALICE, "Let me check that for you.")
    bridge.say(ADMIN, f"/resume {ALICE}")
    assert bridge.texts_to(ADMIN)[-1] == replies.resumed(ALICE, was_paused=True)
    assert pause_item(bridge, ALICE) is None
    bridge.say(ALICE, "ok?")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    bridge.say(ADMIN, f"/resume {ALICE}")
    assert bridge.texts_to(ADMIN)[-1] == f"The bot was not paused for {ALICE}: it answers them."
    assert len(bridge.logs.named("takeover.ended")) == 1


def test_an_owner_pauses_by_hand_for_as_long_as_they_say_but_never_for_an_owner(bridge: Bridge):
    bridge.say(ADMIN, f"/pause {ALICE} 90")
    reply = bridge.texts_to(ADMIN)[-1]
    assert reply.startswith(f"Done: the bot keeps quiet for {ALICE} until ") and "(90 min)" in reply
    [started] = bridge.logs.named("takeover.started")
    assert (started["by"], started["minutes"]) == ("owner", 90)
    bridge.say(ALICE, "hi")
    assert bridge.texts_to(ALICE) == []
    bridge.say(ALICE, "/delete")  # a person may always delete their data
    assert bridge.graph.messages_to(ALICE)[-1]["attachment"]["payload"]["buttons"]
    bridge.say(ADMIN, f"/pause {ADMIN}")
    assert bridge.texts_to(ADMIN)[-1] == replies.owner_never_paused(ADMIN)
    bridge.reply_as_page(ADMIN, "an echo to an owner")  # an owner is never taken over
    assert pause_item(bridge, ADMIN) is None


def test_takeover_notices_tell_the_owners_with_a_button_to_let_the_bot_answer(make_bridge):
    bridge = make_bridge(TAKEOVER_NOTICES="true")
    bridge.say(ADMIN, "/help")
    bridge.reply_as_page(ALICE, "I'll take this one.")
    notice = bridge.graph.messages_to(ADMIN)[-1]["attachment"]["payload"]
    assert notice["text"].startswith(f"Someone of the page answered {ALICE} by hand")
    [button] = notice["buttons"]
    bridge.reply_as_page(ALICE, "One more thing.")  # extended: no second notice
    assert len(bridge.graph.messages_to(ADMIN)) == 2
    bridge.tap(ADMIN, button["payload"])
    bridge.say(ALICE, "thanks")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]


def test_with_takeover_off_replies_by_hand_change_nothing_and_human_only_tells(make_bridge):
    bridge = make_bridge(HUMAN_PAUSE_MINUTES="0")
    bridge.say(ADMIN, "/help")
    bridge.reply_as_page(ALICE, "by hand")
    assert pause_item(bridge, ALICE) is None
    assert bridge.logs.named("takeover.ignored")
    bridge.say(ALICE, "/human")
    assert bridge.texts_to(ALICE) == [replies.human_asked(0)]
    notice = bridge.graph.messages_to(ADMIN)[-1]["attachment"]["payload"]
    assert [b["title"] for b in notice["buttons"]] == ["Take over"]
    bridge.say(ALICE, "question")
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42."
    bridge.tap(ADMIN, f"ADMIN:pause:{ALICE}")  # the owner takes over after all
    assert "(30 min)" in bridge.texts_to(ADMIN)[-1]
    bridge.say(ALICE, "another")
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42." and len(bridge.texts_to(ALICE)) == 2


def test_a_reply_by_hand_delivered_after_its_pause_would_have_ended_pauses_nothing(make_bridge):
    bridge = make_bridge(TAKEOVER_NOTICES="true")
    bridge.say(ADMIN, "/help")  # inside the window: a notice would go at once
    told = len(bridge.graph.messages_to(ADMIN))
    late = messaging_echo(ALICE, "An hour-old reply by hand.")
    late["timestamp"] = int((time.time() - 3600) * 1000)  # Meta delivers it an hour late
    bridge.deliver(webhook_body(late))
    bridge.settle()
    assert pause_item(bridge, ALICE) is None
    assert not bridge.logs.named("takeover.started")
    assert bridge.metric_lines.total("HumanTakeovers") == 0
    assert len(bridge.graph.messages_to(ADMIN)) == told  # no "keeps quiet until" in the past
    bridge.say(ALICE, "Hello?")
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42."
    assert ("assistant", "An hour-old reply by hand.") in conversation(bridge, ALICE)


def test_human_with_nobody_to_tell_says_so_and_the_bot_keeps_answering(make_bridge):
    bridge = make_bridge(ADMIN_PSIDS="", OWNER_TOPIC_ARN="")
    bridge.say(ALICE, "/human")
    assert bridge.texts_to(ALICE)[-1] == replies.HUMAN_NOBODY
    assert pause_item(bridge, ALICE) is None and not bridge.logs.named("takeover.started")
    bridge.say(ALICE, "anyone?")
    assert bridge.texts_to(ALICE)[-1] == "The answer is 42."


def test_human_is_emailed_at_once_when_no_owner_can_get_it_in_messenger(bridge: Bridge):
    bridge.say(ALICE, "/human")  # the owner never wrote: outside their window
    [mail] = bridge.emails()
    assert mail["subject"] == f"Messenger bot: {ALICE} asks for a person"
    assert "Page Inbox" in mail["body"]
    [told] = [t for t in bridge.logs.named("notice.told") if t["kind"] == "human"]
    assert (told["delivered"], told["queued"], told["emailed"]) == (0, 1, 1)
    bridge.say(ADMIN, "/help")  # inside the window now, and it waited for them
    [cards] = [m for m in bridge.graph.messages_to(ADMIN) if "attachment" in m]
    titles = [e["title"] for e in cards["attachment"]["payload"]["elements"]]
    assert f"{ALICE} asks for a person" in titles
    bridge.say(BOB, "/human")  # an owner who can get it in Messenger: no e-mail
    assert [m["subject"] for m in bridge.emails()] == []


def test_deleting_ones_data_while_someone_of_the_page_answers_keeps_the_pause(bridge: Bridge):
    bridge.say(ALICE, "Do you ship abroad?")
    bridge.reply_as_page(ALICE, SHOP)
    until = pause_item(bridge, ALICE)["until"]["N"]
    bridge.tap(ALICE, "DELETE_CONFIRMED")
    assert bridge.texts_to(ALICE)[-1].startswith("Deleted: ")
    left = [i["sk"]["S"] for i in bridge.items() if i["pk"]["S"] == schema.user_pk(ALICE)]
    assert left == [schema.PAUSE] and pause_item(bridge, ALICE)["until"]["N"] == until
    told = len(bridge.texts_to(ALICE))
    bridge.say(ALICE, "Thanks, and the price?")  # the human is still answering
    assert len(bridge.texts_to(ALICE)) == told and len(bridge.model.requests) == 1
