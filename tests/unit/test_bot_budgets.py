"""Budgets and owner safety: tokens per person, dollars for the page, billing refusals, refused
parameters, and the owner's alerts, /usage and /stats."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from handler import alerts, budget, notices, replies
from handler.llm import Completion, Usage
from handler.store import User
from tests.support.fakes import model_error
from tests.support.world import ADMIN, ALICE, BOB, DAY, NOW, World, make_world, message

NANO = budget.NANO


@pytest.fixture
def world() -> World:
    made = make_world()
    made.store.create_user(ADMIN, NOW)  # the owner wrote just now: inside the window
    return made


def billed(tokens_in: int, tokens_out: int, cached: int = 0, model: str = "gpt-5-mini"):
    return (Usage(model, tokens_in, cached, tokens_out),)


def owner_alerts(world: World) -> list[str]:
    """The alerts the owner got, at once or (after the time they were raised) later."""
    return [t for t in world.messenger.texts_to(ADMIN) if alerts.PREFIX in t]


# -- tokens per person -------------------------------------------------------------------------


def test_tokens_and_cost_are_added_from_the_reported_usage(world: World):
    world.model.script = [Completion("ok", "stop", billed(1000, 500, cached=400))]
    world.handle(message("q"))
    tokens, cost = world.store.spent[(ALICE, DAY)]
    assert tokens == 1500
    # 600 fresh at $0.25, 400 cached at $0.025, 500 out at $2.00, per million tokens
    assert cost == round((600 * 0.25 + 400 * 0.025 + 500 * 2.00) / 1e6 * NANO)
    page = world.store.page_day(DAY)
    assert (page.questions, page.tokens, page.cost_nusd) == (1, 1500, cost)


def test_over_the_daily_token_budget_a_person_is_told_when_it_comes_back(world: World):
    world.bot.settings = replace(world.bot.settings, daily_token_limit=1000)
    world.model.script = [Completion("ok", "stop", billed(900, 200))]
    world.handle(message("first"))  # allowed: under the budget when asked
    assert world.handle(message("second")) == "over_tokens"
    assert world.texts()[-1] == (
        "You've used today's allowance (1,000 tokens). It comes back in 12 h 0 min (00:00 UTC)."
    )
    assert len(world.model.asked) == 1 and world.store.counters == {(ALICE, DAY): 1}


def test_owners_and_unlimited_people_have_no_token_budget(world: World):
    world.bot.settings = replace(world.bot.settings, daily_token_limit=10)
    world.store.set_status(BOB, "unlimited", NOW)
    for psid in (ADMIN, ADMIN, BOB, BOB):
        world.model.script = [Completion("ok", "stop", billed(100, 100))]
        assert world.handle(message("q", psid=psid)) == "answered"


def test_a_token_limit_of_zero_means_none(world: World):
    world.bot.settings = replace(world.bot.settings, daily_token_limit=0)
    world.store.spent[(ALICE, DAY)] = [10**9, 0]
    assert world.handle(message("q")) == "answered"


# -- the page's spend cap ----------------------------------------------------------------------


def test_over_the_spend_cap_everyone_but_the_owners_rests_and_the_owner_is_told_once(
    world: World,
):
    world.bot.settings = replace(world.bot.settings, daily_spend_limit_usd=0.01)
    world.store.pages[DAY] = {"cost_nusd": NANO // 100}  # a cent spent today
    assert world.handle(message("q")) == "resting"
    assert world.handle(message("q", psid=BOB)) == "resting"
    assert world.texts() == [replies.resting(NOW, world.bot.settings.tz)]
    assert "(00:00 UTC)" in world.texts()[0]
    assert world.model.asked == [] and world.store.counters == {}
    [alert] = owner_alerts(world)
    assert "reached the cap of $0.01" in alert and "come back in 12 h" in alert
    assert world.handle(message("q", psid=ADMIN)) == "answered"  # the owner still gets answers


def test_a_cap_of_zero_means_none(world: World):
    world.bot.settings = replace(world.bot.settings, daily_spend_limit_usd=0)
    world.store.pages[DAY] = {"cost_nusd": 10 * NANO}
    assert world.handle(message("q")) == "answered"


def test_a_model_missing_from_the_price_table_is_priced_high_and_the_owner_told_once(
    world: World,
):
    """Priced at the dearest listed row, never under: the cap errs on the safe side."""
    prices = world.bot.settings.model_prices
    world.model.script = [Completion("ok", "stop", billed(1000, 1000, model="mystery-1"))] * 3
    for psid in (ALICE, BOB, ALICE):
        assert world.handle(message("q", psid=psid)) == "answered"
    priced_as, price = budget.dearest(prices)
    assert world.store.spent[(ALICE, DAY)][1] == 2 * round(
        (1000 * price.input + 1000 * price.output) / 1_000_000 * budget.NANO
    )
    for listed in prices.values():  # at least what any listed model would cost
        assert price.input >= listed.input and price.output >= listed.output
    [alert] = owner_alerts(world)
    assert "no price for the model mystery-1" in alert and priced_as in alert
    assert "modelPrices" in alert and "mystery-1=input/cached/output" in alert
    assert world.texts() == ["ok", "ok"]  # people see nothing of it


# -- billing refusals, refused parameters ------------------------------------------------------


def test_insufficient_quota_is_apologised_for_counted_in_stats_and_told_once_an_hour(
    world: World,
):
    world.model.script = [model_error("insufficient_quota", False)] * 3
    assert world.handle(message("q")) == "insufficient_quota"
    assert world.handle(message("q", psid=BOB)) == "insufficient_quota"
    assert world.texts() == [replies.QUOTA_APOLOGY]
    assert world.store.counters == {}
    [alert] = owner_alerts(world)
    assert "insufficient_quota" in alert and "Billing" in alert
    assert world.store.page_day(DAY).failures == {"insufficient_quota": 2}
    hour = int((NOW + timedelta(hours=1)).timestamp())
    assert world.store.quiet[alerts.INSUFFICIENT_QUOTA] == hour
    # Once the hour is over the owner hears again, if it still fails.
    world.store.quiet[alerts.INSUFFICIENT_QUOTA] = int(NOW.timestamp())
    alerts.forget_container_state()
    world.handle(message("q"))
    assert len(owner_alerts(world)) == 2


@pytest.mark.parametrize(
    ("reason", "said"),
    [("authentication", "refused the API key (401"), ("status_403", "access (403")],
)
def test_a_refused_openai_key_is_apologised_for_and_the_owner_told_what_to_do_once_an_hour(
    world: World, reason: str, said: str
):
    world.model.script = [model_error(reason, False)] * 2
    assert world.handle(message("q")) == "model_failed"
    assert world.handle(message("q", psid=BOB)) == "model_failed"
    assert world.texts() == [replies.APOLOGY] and world.store.counters == {}
    [alert] = owner_alerts(world)
    assert said in alert and "pulumi config set --secret openaiApiKey" in alert
    assert "pulumi up" in alert and "sk-" not in alert
    hour = int((NOW + timedelta(hours=1)).timestamp())
    assert world.store.quiet[alerts.OPENAI_KEY] == hour
    assert world.store.page_day(DAY).failures == {"model": 2}


def test_a_parameter_the_model_refused_is_reported_to_the_owner_and_counted(world: World):
    world.model.script = [Completion("ok", "stop", dropped=("temperature",))]
    assert world.handle(message("q")) == "answered"
    [alert] = owner_alerts(world)
    assert "refused the parameter temperature" in alert and "q" not in alert.split(": ", 1)[0]
    assert world.store.page_day(DAY).failures == {"unsupported_parameter": 1}


def test_alerts_never_carry_the_persons_words(world: World):
    secret_question = "my bank password is hunter2"
    world.model.script = [model_error("insufficient_quota", False)]
    world.handle(message(secret_question))
    assert all("hunter2" not in text for text in world.messenger.texts_to(ADMIN))


# -- alerts: the window and the outbox ---------------------------------------------------------


def test_an_owner_outside_the_window_gets_the_alert_with_their_next_message():
    world = make_world()
    long_ago = (NOW - timedelta(days=2)).isoformat(timespec="seconds")
    world.store.users[ADMIN] = User(ADMIN, first_seen=long_ago, active_at=long_ago)
    world.model.script = [model_error("insufficient_quota", False)]
    world.handle(message("q"))
    assert world.messenger.texts_to(ADMIN) == []  # outside the window: kept
    [kept] = world.store.outboxes[ADMIN].values()
    assert kept.key == f"alert:{alerts.INSUFFICIENT_QUOTA}"
    assert world.handle(message("/help", psid=ADMIN)) == "command:help"
    alert, help_text = world.messenger.texts_to(ADMIN)
    assert alert.startswith(f"Nov 30, 12:00 UTC: {alerts.PREFIX}") and "insufficient_quota" in alert
    assert help_text.startswith(replies.USER_HELP)
    assert world.store.outboxes[ADMIN] == {}
    world.handle(message("/help", psid=ADMIN))
    assert len(owner_alerts(world)) == 1  # delivered once


def test_the_window_is_judged_from_recorded_activity_which_may_lag(world: World):
    almost = (NOW - timedelta(hours=23, minutes=58)).isoformat(timespec="seconds")
    world.store.users[ADMIN] = User(ADMIN, first_seen=almost, active_at=almost)
    world.model.script = [model_error("insufficient_quota", False)]
    world.handle(message("q"))
    assert world.messenger.texts_to(ADMIN) == []  # too close to the end to be sure: kept
    assert f"alert:{alerts.INSUFFICIENT_QUOTA}" in world.store.outboxes[ADMIN]
    assert notices.inside_window((NOW - timedelta(hours=23)).isoformat(), NOW)
    assert not notices.inside_window("", NOW)


def test_the_outbox_keeps_one_alert_per_kind_the_newest():
    world = make_world()
    outside = (NOW - timedelta(days=3)).isoformat(timespec="seconds")
    world.store.users[ADMIN] = User(ADMIN, first_seen=outside, active_at=outside)
    sender = alerts.Alerts(world.bot.settings, world.store, world.messenger, lambda: NOW)
    assert sender.alert("unsupported_parameter:temperature", "first", 0)
    world.store.quiet.clear()
    alerts.forget_container_state()
    assert sender.alert("unsupported_parameter:temperature", "second", 0)
    assert sender.alert("unsupported_parameter:top_p", "third", 0)
    kept = world.store.outboxes[ADMIN]
    assert sorted((n.key, n.text) for n in kept.values()) == [
        ("alert:unsupported_parameter:temperature", alerts.PREFIX + "second"),
        ("alert:unsupported_parameter:top_p", alerts.PREFIX + "third"),
    ]


def test_a_kind_is_quiet_after_it_went_out_across_containers(world: World):
    sender = alerts.Alerts(world.bot.settings, world.store, world.messenger, lambda: NOW)
    assert sender.alert(alerts.INSUFFICIENT_QUOTA, "x", 60)
    alerts.forget_container_state()  # another container: only the stored quiet period holds
    assert not sender.alert(alerts.INSUFFICIENT_QUOTA, "x", 60)
    assert sender.alert(alerts.SPEND_CAP, "y", 60)
    assert world.store.quiet[alerts.SPEND_CAP] == int((NOW + timedelta(hours=12)).timestamp())


def test_without_owners_there_is_no_one_to_alert():
    world = make_world(admin_psids=frozenset())
    sender = alerts.Alerts(world.bot.settings, world.store, world.messenger, lambda: NOW)
    assert not sender.alert(alerts.INSUFFICIENT_QUOTA, "x", 60)
    assert world.store.quiet == {}


# -- /usage and /stats -------------------------------------------------------------------------


def test_usage_shows_questions_and_tokens_used_and_left(world: World):
    world.model.script = [Completion("ok", "stop", billed(1200, 34))]
    world.handle(message("q"))
    world.handle(message("/usage"))
    assert world.texts()[-1] == (
        "Today you've asked 1 of 3 questions; 2 left. Tokens today: 1,234 of 50,000; "
        "48,766 left. The count resets in 12 h 0 min (00:00 UTC)."
    )


def test_stats_shows_today_the_month_top_users_and_failures(world: World):
    world.store.create_user(BOB, NOW)
    world.store.pages["2026-11-02"] = {"questions": 4, "tokens": 4000, "cost_nusd": NANO // 10}
    world.store.pages["2026-10-31"] = {"questions": 99, "tokens": 1, "cost_nusd": NANO}
    world.store.spent[(BOB, "2026-11-02")] = [4000, NANO // 10]
    world.store.counters[(BOB, "2026-11-02")] = 4
    world.model.script = [Completion("ok", "stop", billed(1000, 1000))]
    world.handle(message("q"))
    world.store.note_failure(DAY, "send", 0)
    assert world.handle(message("/stats", psid=ADMIN)) == "command:stats"
    stats = world.texts(ADMIN)[-1].splitlines()
    cost = budget.dollars(world.store.spent[(ALICE, DAY)][1])
    assert stats[0] == f"Today (2026-11-30): 1 question, 2,000 tokens, about {cost} of the " + (
        "$5.0000 daily cap"
    )
    assert stats[1].startswith("This month (2026-11): 5 questions, 6,000 tokens, about $0.10")
    assert stats[2] == "Failures today: send errors 1"
    assert stats[3] == "Failures this month: send errors 1"
    assert stats[4] == "Top users this month by cost:"
    assert stats[5].startswith(f"{BOB}: $0.1000, 4 q, 4,000 tokens")
    assert stats[6].startswith(f"{ALICE}: {cost}, 1 q")


def test_stats_is_for_owners_only(world: World):
    world.handle(message("/stats"))
    assert world.model.asked[-1][-1]["content"] == "/stats"  # an ordinary question
