"""Owner notices: what Messenger shows when they arrive merged, what the e-mail says, and the
hour after which a waiting notice is e-mailed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from handler import notices, replies
from handler.mail import Mailer, subject_line
from handler.store import Notice, User
from handler.takeover import STARTED
from tests.support.world import ADMIN, ALICE, BOB, NOW, World, make_world, message

UTC = ZoneInfo("UTC")
AT = int(NOW.timestamp())


class FakeSns:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[dict[str, str]] = []
        self.fail = fail

    def publish(self, **request: str) -> dict[str, str]:
        if self.fail:
            raise ConnectionError("SNS is down")
        self.published.append(request)
        return {"MessageId": "1"}


def new_user(psid: str, at: int = AT) -> Notice:
    return replace(replies.new_user_notice(User(psid), 10), at=at)


def alert(kind: str, text: str, at: int = AT) -> Notice:
    return Notice(f"alert:{kind}", f"Owner alert: {text}", at=at)


# -- what Messenger shows ------------------------------------------------------------------------


def test_waiting_notices_are_one_text_then_one_carousel_oldest_first():
    kept = [alert("spend_cap", "cap", AT), new_user(ALICE, AT + 60), new_user(BOB, AT + 120)]
    kept.append(alert("vision_unsupported", "photo", AT + 180))
    (text, plain), (cards, carded) = notices.merged(kept, UTC)
    assert text == {
        "text": "Nov 30, 12:00 UTC: Owner alert: cap\n\nNov 30, 12:03 UTC: Owner alert: photo"
    }
    elements = cards["attachment"]["payload"]["elements"]
    assert [e["title"] for e in elements] == [f"New user {ALICE}", f"New user {BOB}"]
    assert elements[0]["subtitle"] == "Nov 30, 12:01 UTC \u00b7 default, 10/day."
    assert [len(e["buttons"]) for e in elements] == [3, 3]
    assert [n.key for n in plain] == ["alert:spend_cap", "alert:vision_unsupported"]
    assert [n.key for n in carded] == [f"new_user:{ALICE}", f"new_user:{BOB}"]


def test_one_notice_with_buttons_keeps_its_button_template():
    [(message_, delivered)] = notices.merged([new_user(ALICE)], UTC)
    payload = message_["attachment"]["payload"]
    assert payload["template_type"] == "button"
    assert payload["text"].startswith(f"Nov 30, 12:00 UTC: New user {ALICE} wrote")
    assert len(delivered) == 1


def test_more_cards_than_a_carousel_takes_keeps_the_newest_and_says_so():
    kept = [new_user(str(1000000000000100 + n), AT + n) for n in range(13)]
    (text, plain), (cards, carded) = notices.merged(kept, UTC)
    assert "3 older notices with buttons are not shown: /users lists everyone" in text["text"]
    assert len(cards["attachment"]["payload"]["elements"]) == notices.CARDS_LIMIT
    assert [n.key for n in plain] == [n.key for n in kept[:3]]  # dropped with the text
    assert carded == kept[3:]


def test_long_waiting_texts_are_split_into_bubbles_delivered_together():
    kept = [alert(f"k{n}", "x" * 900, AT + n) for n in range(4)]
    parts = notices.merged(kept, UTC)
    assert len(parts) >= 2 and all(len(m["text"]) <= 2000 for m, _ in parts)
    assert [len(delivered) for _, delivered in parts] == [0] * (len(parts) - 1) + [4]


def test_the_email_says_what_happened_and_what_to_do_and_nothing_else():
    settings = make_world().bot.settings
    token = Notice(
        "alert:page_token",
        "Owner alert: Facebook refused the page access token",
        title="Owner alert: the page token was refused",
        hint=replies.TOKEN_HINT,
        at=AT,
    )
    subject, body = notices.email([token], settings)
    assert subject == "Owner alert: the page token was refused"
    assert body.startswith("Your Messenger bot (t) has a notice for you.")
    assert "Nov 30, 12:00 UTC: Owner alert: Facebook refused" in body
    assert f"What to do: {replies.TOKEN_HINT}" in body
    subject, body = notices.email([token, new_user(ALICE, AT + 5)], settings)
    assert subject == "2 notices waiting for you"
    assert "write anything to the page in Messenger" in body


def test_a_referral_tag_shows_only_a_tags_characters_in_notices_and_emails(world: World):
    ref = "summer_sale-2026 my secret diagnosis is <b>bad</b> " + "y" * 300
    notice = replies.new_user_notice(User(ALICE), 10, "SHORTLINK", ref)
    _, body = notices.email([notice], world.bot.settings)
    shown = replies.shown_ref(ref)
    assert len(shown) == replies.REF_SHOWN_CHARS and shown.startswith("summer_sale-2026my")
    assert f"(ref {shown})" in notice.text and f"(ref {shown})" in body
    assert " my " not in body and "<" not in body and "y" * 64 not in body
    assert replies.shown_ref("ok_tag") == "ok_tag"


def test_an_email_subject_is_what_sns_takes():
    line = subject_line("Caf\u00e9 \u2615\nline\x07 two " + "x" * 200)
    assert line.startswith("Messenger bot: Caf? ? line? two") and len(line) == 99
    assert all(" " <= c <= "~" for c in line)


def test_a_mailer_without_a_topic_sends_nothing_and_a_failing_one_never_raises():
    assert not Mailer(lambda: FakeSns(), None).send("s", "b")
    assert not Mailer(lambda: FakeSns(fail=True), "arn:topic").send("s", "b")
    sns = FakeSns()
    assert Mailer(lambda: sns, "arn:topic").send("hello", "body")
    assert sns.published == [
        {"TopicArn": "arn:topic", "Subject": "Messenger bot: hello", "Message": "body"}
    ]


# -- telling, keeping, e-mailing --------------------------------------------------------------


@pytest.fixture
def world() -> World:
    notices.forget_container_state()
    return make_world()


def telling(world: World, sns: FakeSns, minutes_later: int = 0) -> notices.Notices:
    later = NOW + timedelta(minutes=minutes_later)
    mailer = Mailer(lambda: sns, "arn:aws:sns:us-east-1:1:t-owner")
    return notices.Notices(world.bot.settings, world.store, world.messenger, mailer, lambda: later)


def test_a_notice_waiting_an_hour_is_emailed_once_and_only_then(world: World):
    sns = FakeSns()
    told = telling(world, sns).tell(new_user(ALICE), 0)
    assert (told.delivered, told.queued, told.emailed) == (0, 1, 0)
    assert telling(world, sns, 59).mail_overdue() == 0  # not yet an hour
    world.store.quiet.clear()
    notices.forget_container_state()
    assert telling(world, sns, 61).mail_overdue() == 1
    [mail] = sns.published
    assert mail["Subject"] == f"Messenger bot: New user {ALICE}" and ALICE in mail["Message"]
    assert world.store.outboxes[ADMIN][f"new_user:{ALICE}"].mailed  # still for Messenger
    world.store.quiet.clear()
    notices.forget_container_state()
    assert telling(world, sns, 120).mail_overdue() == 0 and len(sns.published) == 1


def test_the_outboxes_are_looked_at_once_per_period_across_containers(world: World):
    sns = FakeSns()
    telling(world, sns).tell(new_user(ALICE), 0)
    notices.forget_container_state()
    assert telling(world, sns, 61).mail_overdue() == 1
    telling(world, sns, 62).tell(new_user(BOB), 0)
    notices.forget_container_state()  # another container: the stored period holds
    assert telling(world, sns, 63).mail_overdue() == 0
    assert world.store.quiet[notices.MAIL_CHECK] == AT + 61 * 60 + notices.MAIL_CHECK_SECONDS


def test_an_urgent_notice_is_emailed_at_once_and_not_again(world: World):
    sns = FakeSns()
    told = telling(world, sns).tell(alert("insufficient_quota", "credit"), 0, urgent=True)
    assert (told.queued, told.emailed) == (1, 1)
    world.store.quiet.clear()
    notices.forget_container_state()
    assert telling(world, sns, 90).mail_overdue() == 0 and len(sns.published) == 1


def test_a_pressing_notice_is_emailed_at_once_unless_an_owner_got_it_in_messenger(world: World):
    sns = FakeSns()
    human = replies.human_notice(ALICE, AT + 1800, UTC)
    told = telling(world, sns).tell(human, 0, pressing=True)  # the owner is outside the window
    assert (told.delivered, told.queued, told.emailed) == (0, 1, 1)
    [mail] = sns.published
    assert mail["Subject"] == f"Messenger bot: {ALICE} asks for a person"
    assert world.store.outboxes[ADMIN][f"human:{ALICE}"].mailed  # not e-mailed again later
    world.store.quiet.clear()
    notices.forget_container_state()
    assert telling(world, sns, 90).mail_overdue() == 0 and len(sns.published) == 1
    world.store.create_user(ADMIN, NOW)  # inside the window: Messenger takes it
    told = telling(world, sns).tell(human, 0, pressing=True)
    assert (told.delivered, told.emailed) == (1, 0) and len(sns.published) == 1


def test_without_owners_notices_are_emailed_at_once_but_not_each_new_user():
    world = make_world(admin_psids=frozenset())
    sns = FakeSns()
    told = telling(world, sns).tell(alert("spend_cap", "cap"), 0)
    assert (told.delivered, told.queued, told.emailed) == (0, 0, 1)
    human = replies.human_notice(ALICE, AT + 1800, UTC)
    assert telling(world, sns).tell(human, 0).emailed == 1
    assert telling(world, sns).tell(new_user(BOB), 0).emailed == 0  # the default limit holds
    assert [m["Subject"][:15] for m in sns.published] == ["Messenger bot: "] * 2


def test_a_notice_delivered_in_messenger_is_never_emailed(world: World):
    world.store.create_user(ADMIN, NOW)  # inside the window: sent at once
    sns = FakeSns()
    telling(world, sns).tell(new_user(ALICE), 0)
    assert telling(world, sns, 120).mail_overdue() == 0 and sns.published == []


# -- takeover notices and the bot ---------------------------------------------------------------


def test_a_reply_by_hand_that_started_a_pause_tells_the_owners_if_they_want(world: World):
    world.store.create_user(ADMIN, NOW)
    world.bot.settings = replace(world.bot.settings, takeover_notices=True)
    world.store.extend_pause(ALICE, AT + 1800, "human", AT)
    by_hand = replace(message("We ship on Mondays."), kind="echo", payload=STARTED)
    assert world.handle(by_hand) == "by_hand"
    notice = world.messenger.messages_to(ADMIN)[-1]["attachment"]["payload"]
    assert notice["text"].startswith(f"Someone of the page answered {ALICE} by hand")
    assert "12:30 UTC" in notice["text"]
    assert world.store.histories[ALICE][-1] == {
        "role": "assistant",
        "content": "We ship on Mondays.",
    }
