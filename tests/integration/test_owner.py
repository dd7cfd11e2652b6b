"""Commands and the owner's controls, through ``lambda_handler`` like every other message."""

from __future__ import annotations

import pytest

from handler import schema
from tests.support.bridge import ADMIN, Bridge

ALICE = "1000000000000001"
BOB = "1000000000000002"


def last_text(bridge: Bridge, psid: str) -> str:
    return bridge.texts_to(psid)[-1]


def test_help_lists_the_commands_and_costs_nothing(bridge: Bridge):
    bridge.say(ALICE, "/HELP")
    assert "/usage" in last_text(bridge, ALICE) and "/reset" in last_text(bridge, ALICE)
    assert "/block" not in last_text(bridge, ALICE)
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0


def test_the_owner_sees_the_owner_commands_in_help(bridge: Bridge):
    bridge.say(ADMIN, "/help")
    assert "/block <psid>" in last_text(bridge, ADMIN)


def test_usage_tells_what_is_left_and_when_it_resets(bridge: Bridge):
    bridge.say(ALICE, "a question")
    bridge.say(ALICE, "/usage")
    assert "asked 1 of 3 questions; 2 left" in last_text(bridge, ALICE)
    assert "resets in" in last_text(bridge, ALICE)
    assert bridge.used_today(ALICE) == 1


def test_reset_forgets_the_conversation(bridge: Bridge):
    bridge.say(ALICE, "My name is Alice.")
    bridge.say(ALICE, "/reset")
    assert "forgotten our conversation" in last_text(bridge, ALICE)
    bridge.say(ALICE, "What is my name?")
    assert [m["role"] for m in bridge.model.requests[-1]["messages"]] == ["system", "user"]


@pytest.mark.parametrize("payload", ["HELP", "USAGE", "RESET", "GET_STARTED"])
def test_menu_postbacks_run_the_same_commands(bridge: Bridge, payload: str):
    bridge.tap(ALICE, payload)
    assert len(bridge.texts_to(ALICE)) == 1
    assert bridge.model.requests == []


@pytest.mark.parametrize(
    ("button", "status", "reply"),
    [
        ("unlimited", "unlimited", "unlimited, no limit"),
        ("default", "default", "default, 0/3 today"),
        ("blocked", "blocked", "blocked"),
    ],
)
def test_tapping_a_new_user_button_applies_it_and_confirms(
    bridge: Bridge, button: str, status: str, reply: str
):
    bridge.say(ALICE, "hi")
    bridge.say(ALICE, "/usage")  # keep the counter at 1 for the checks below
    assert bridge.graph.messages_to(ADMIN) == []  # the owner has not written: it waits
    bridge.say(ADMIN, "/stats")
    [notice] = [m for m in bridge.graph.messages_to(ADMIN) if "attachment" in m]
    tapped = next(
        b
        for b in notice["attachment"]["payload"]["buttons"]
        if b["payload"].split(":")[1] == button
    )
    bridge.tap(ADMIN, tapped["payload"])
    assert last_text(bridge, ADMIN).startswith(f"Done. {ALICE}: {status}")
    assert reply.replace("0/3", "1/3") in last_text(bridge, ADMIN)


def test_an_unlimited_user_goes_past_the_default_limit(bridge: Bridge):
    bridge.say(ADMIN, f"/unlimited {ALICE}")
    for n in range(5):
        bridge.say(ALICE, f"q{n}")
    assert bridge.texts_to(ALICE) == ["The answer is 42."] * 5


def test_a_per_user_limit_applies(bridge: Bridge):
    bridge.say(ADMIN, f"/limit {ALICE} 1")
    assert "default, 0/1 today" in last_text(bridge, ADMIN)
    bridge.say(ALICE, "one")
    bridge.say(ALICE, "two")
    assert "used your 1 question for today" in last_text(bridge, ALICE)


def test_limit_on_an_unlimited_user_brings_them_back_under_a_limit(bridge: Bridge):
    bridge.say(ADMIN, f"/unlimited {ALICE}")
    bridge.say(ADMIN, f"/limit {ALICE} 2")
    assert "default, 0/2 today" in last_text(bridge, ADMIN)


def test_default_and_block_by_command(bridge: Bridge):
    bridge.say(ALICE, "hi")
    bridge.say(ADMIN, f"/block {ALICE}")
    bridge.say(ALICE, "hello?")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    bridge.say(ADMIN, f"/default {ALICE}")
    bridge.say(ALICE, "hello again")
    assert bridge.texts_to(ALICE) == ["The answer is 42."] * 2


def test_users_lists_recent_users_with_status_and_count(bridge: Bridge):
    bridge.say(ALICE, "hi")
    bridge.say(BOB, "hi")
    bridge.say(ADMIN, f"/block {BOB}")
    bridge.say(ADMIN, "/users")
    listing = last_text(bridge, ADMIN)
    assert listing.startswith("Recent users (3):")
    assert f"{ALICE}: default, 1/3 today" in listing
    assert f"{BOB}: blocked\n" in listing + "\n"


def test_forget_deletes_a_users_data(bridge: Bridge):
    bridge.say(ALICE, "hi")
    bridge.say(ADMIN, f"/forget {ALICE}")
    assert last_text(bridge, ADMIN).startswith(f"Forgot {ALICE}:")
    assert not [i for i in bridge.items() if i["pk"]["S"] == schema.user_pk(ALICE)]
    bridge.say(ADMIN, f"/forget {ALICE}")
    assert last_text(bridge, ADMIN) == f"Nothing is stored for {ALICE}."


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("/block", "/block needs a page-scoped id (PSID): 5 to 32 digits expected"),
        ("/block alice", "'alice' is not a page-scoped id: 5 to 32 digits expected"),
        (f"/limit {ALICE}", "/limit needs a PSID and a number of questions a day"),
        (f"/limit {ALICE} x", "'x' is not a number of questions: a whole number from 0 to"),
        (f"/pause {ALICE} later", "'later' is not a number of minutes"),
        ("/blok 1000000000000001", "There is no command /blok. /help lists them."),
    ],
)
def test_a_rejected_command_says_why_in_one_line(bridge: Bridge, text: str, why: str):
    bridge.say(ADMIN, text)
    reply = last_text(bridge, ADMIN)
    assert reply.startswith(why) and "\n" not in reply
    if not text.startswith("/blok"):
        assert f"Usage: {text.split()[0]}" in reply
    assert bridge.model.requests == []


def test_a_non_admin_cannot_use_owner_commands_or_buttons(bridge: Bridge):
    bridge.say(BOB, "hi")
    bridge.say(ALICE, f"/unlimited {ALICE}")  # plain text from a non-admin: a question
    bridge.tap(ALICE, f"ADMIN:blocked:{BOB}")  # a forged button: ignored
    bridge.say(ALICE, "/users")
    assert bridge.texts_to(ALICE) == ["The answer is 42."] * 2
    profiles = {
        i["pk"]["S"]: i["status"]["S"] for i in bridge.items() if i["sk"]["S"] == schema.PROFILE
    }
    assert profiles == {schema.user_pk(ALICE): "default", schema.user_pk(BOB): "default"}
    assert bridge.logs.named("payload.ignored")


def test_the_owner_has_no_daily_limit_and_is_not_announced(bridge: Bridge):
    for n in range(5):
        bridge.say(ADMIN, f"q{n}")
    assert bridge.texts_to(ADMIN) == ["The answer is 42."] * 5
    assert not [m for m in bridge.graph.messages_to(ADMIN) if "attachment" in m]
