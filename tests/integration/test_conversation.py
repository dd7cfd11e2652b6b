"""A person's message, end to end: dedupe, user record, quota, model, reply."""

from __future__ import annotations

import json
import time

import pytest

from handler import app, replies, schema
from local.model import fixed_responder
from tests.support.bridge import (
    ADMIN,
    Bridge,
    messaging_postback,
    messaging_text,
    webhook_body,
)

ALICE = "1000000000000001"
BOB = "1000000000000002"
CAROL = "1000000000000003"


def test_a_question_is_answered_through_the_send_api(bridge: Bridge):
    assert bridge.say(ALICE, "What is the meaning of life?")["statusCode"] == 200
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    [request] = bridge.model.requests
    assert request["model"] == "gpt-5-mini"
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][-1] == {"role": "user", "content": "What is the meaning of life?"}
    assert "temperature" not in request and "top_p" not in request  # only what the owner set
    assert request["reasoning_effort"] == "low"
    assert request["max_completion_tokens"] == 2000


def test_the_model_settings_come_from_the_environment(make_bridge):
    bridge = make_bridge(
        OPENAI_MODEL="gpt-local",
        SYSTEM_PROMPT="Answer like a pirate.",
        OPENAI_TEMPERATURE="0.1",
        OPENAI_MAX_TOKENS="99",
    )
    bridge.say(ALICE, "hi")
    [request] = bridge.model.requests
    assert request["model"] == "gpt-local"
    assert request["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert (request["temperature"], request["max_completion_tokens"]) == (0.1, 99)


def test_a_long_system_prompt_comes_from_its_parameter_with_the_secrets(bridge: Bridge):
    prompt = "You are the bakery's assistant; answer about bread. " * 120  # 6 KB
    name = f"/{bridge.table}/system-prompt"
    bridge.harness.ssm.put_parameter(Name=name, Value=prompt, Type="String", Tier="Advanced")
    bridge.harness.set("SYSTEM_PROMPT_PARAMETER", name)
    app.reset()
    ssm_calls: list[dict] = []
    app.runtime()  # a new container: count its SSM calls from the first one
    from handler import clients

    clients.aws("ssm").meta.events.register(
        "before-parameter-build.ssm.GetParameters", lambda params, **_: ssm_calls.append(params)
    )
    bridge.say(ALICE, "hi")
    [request] = bridge.model.requests
    assert request["messages"][0] == {"role": "system", "content": prompt.strip()}
    assert len(ssm_calls) == 1 and name in ssm_calls[0]["Names"]  # one call for everything


def test_seen_and_typing_come_before_the_model_is_asked(bridge: Bridge):
    asked_at: list[float] = []

    def answer(body: dict) -> str:
        asked_at.append(time.monotonic())
        return "ok"

    bridge.model.responder = answer
    bridge.say(ALICE, "hi")
    welcome, *calls = [c for c in bridge.graph.calls if c.psid == ALICE]  # a new person
    assert welcome.body["message"]["text"].startswith(replies.WELCOME_OPENING)
    assert [c.body.get("sender_action") for c in calls[:2]] == ["mark_seen", "typing_on"]
    assert calls[1].at <= asked_at[0] <= calls[2].at


def test_a_new_user_is_recorded_by_psid_only_and_the_owner_is_told(bridge: Bridge):
    bridge.say(ADMIN, "/help")  # the owner wrote: inside Messenger's 24-hour window
    bridge.say(ALICE, "hi")
    profile = next(
        i
        for i in bridge.items()
        if i["sk"]["S"] == schema.PROFILE and i["pk"]["S"] == schema.user_pk(ALICE)
    )
    assert profile["status"]["S"] == "default"
    assert not {"name", "first_name", "profile_pic"} & profile.keys()
    [notice] = [m for m in bridge.graph.messages_to(ADMIN) if "attachment" in m]
    payload = notice["attachment"]["payload"]
    assert ALICE in payload["text"]
    assert [b["title"] for b in payload["buttons"]] == ["Allow unlimited", "Keep default", "Block"]
    bridge.say(ALICE, "again")
    assert len(bridge.graph.messages_to(ADMIN)) == 2  # the help, and the notice on first sight


def test_a_retried_delivery_is_answered_once(bridge: Bridge):
    body = webhook_body(messaging_text(ALICE, "hello", mid="m_same"))
    for _ in range(3):
        assert bridge.deliver(body)["statusCode"] == 200
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert len(bridge.model.requests) == 1
    assert bridge.used_today(ALICE) == 1


def test_a_batched_delivery_answers_every_user(bridge: Bridge):
    body = webhook_body(
        messaging_text(ALICE, "one"),
        messaging_text(BOB, "two"),
        messaging_text(CAROL, "three"),
        messaging_text(ALICE, "four"),
        entries=2,
    )
    assert bridge.deliver(body)["statusCode"] == 200
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."] * 2
    assert bridge.texts_to(BOB) == bridge.texts_to(CAROL) == ["The answer is 42."]


def test_the_question_over_the_limit_gets_a_polite_no_and_no_model_call(bridge: Bridge):
    for n in range(3):
        bridge.say(ALICE, f"question {n}")
    bridge.say(ALICE, "question 4")
    texts = bridge.texts_to(ALICE)
    assert texts[:3] == ["The answer is 42."] * 3
    assert "used your 3 questions for today" in texts[3]
    assert "(00:00 UTC)" in texts[3]
    assert len(bridge.model.requests) == 3
    assert bridge.used_today(ALICE) == 3


def test_a_blocked_user_gets_nothing_and_costs_nothing(bridge: Bridge):
    bridge.say(ALICE, "hi")
    bridge.tap(ADMIN, f"ADMIN:blocked:{ALICE}")
    before = len(bridge.graph.calls)
    bridge.say(ALICE, "hello?")
    bridge.say(ALICE, "/help")
    assert len(bridge.model.requests) == 1
    assert [c for c in bridge.graph.calls[before:] if c.psid == ALICE] == []


def test_a_long_answer_arrives_as_ordered_bubbles(make_bridge):
    bridge = make_bridge(OPENAI_MAX_TOKENS="4000")
    paragraph = ("All work and no play makes a dull answer. " * 12).strip()
    answer = "\n\n".join(f"{n}. {paragraph}" for n in range(10))
    assert len(answer) >= 5000
    bridge.model.responder = fixed_responder(answer)
    bridge.say(ALICE, "tell me a lot")
    bubbles = bridge.texts_to(ALICE)
    assert len(bubbles) == 4  # three 506-character paragraphs fit a bubble, four do not
    assert all(len(b) <= 2000 for b in bubbles)
    assert "\n\n".join(bubbles) == answer


def test_a_failing_model_is_retried_later_and_the_person_is_told_at_once(bridge: Bridge):
    bridge.model.fail_next(500, times=2)
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == [replies.MODEL_TROUBLE, "The answer is 42."]
    assert bridge.used_today(ALICE) == 1  # counted once, when the model answered
    assert [r["reason"] for r in bridge.logs.named("model.failed")] == ["status_500"] * 2


def test_a_model_down_for_good_ends_in_an_apology_and_costs_nothing(bridge: Bridge):
    bridge.model.fail_next(500, times=100)
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == [replies.MODEL_TROUBLE, replies.APOLOGY]
    assert bridge.used_today(ALICE) == 0
    assert len(bridge.model.requests) == 5  # one per receive of the message
    assert bridge.dead_letters() == []  # answered with an apology: nothing for the owner


def test_a_billing_problem_at_openai_is_apologised_for_without_retrying(bridge: Bridge):
    bridge.model.fail_next(429, code="insufficient_quota", times=5)
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == [replies.QUOTA_APOLOGY]
    assert len(bridge.model.requests) == 1 and bridge.used_today(ALICE) == 0


def test_a_model_timeout_is_retried_too(make_bridge):
    bridge = make_bridge(OPENAI_TIMEOUT_SECONDS="1")
    bridge.model.delay_next(3)
    bridge.say(ALICE, "slow?")
    assert bridge.texts_to(ALICE) == [replies.MODEL_TROUBLE, "The answer is 42."]
    assert bridge.used_today(ALICE) == 1


def test_an_empty_answer_is_paid_for_so_it_counts_and_says_why(bridge: Bridge):
    bridge.model.responder = fixed_responder("")
    bridge.say(ALICE, "hello")
    assert bridge.texts_to(ALICE) == [replies.EMPTY_ANSWER]
    assert bridge.used_today(ALICE) == 1


def test_a_transient_send_failure_is_retried_and_delivered_once(bridge: Bridge):
    bridge.graph.fail_next(500, code=2, times=2, only="message")
    bridge.say(ALICE, "hi")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert bridge.used_today(ALICE) == 1


def test_rate_limited_sends_are_backed_off_and_the_answer_is_not_asked_for_again(bridge: Bridge):
    bridge.say(ALICE, "hi")  # known user: the owner's notice is not in the way
    bridge.graph.fail_next(400, code=613, times=1, only="message")
    bridge.say(ALICE, "again")
    assert bridge.texts_to(ALICE) == ["The answer is 42."] * 2
    assert len(bridge.model.requests) == 2
    [retry] = bridge.logs.named("record.retry")
    assert retry["why"] == "send:rate_limited"


@pytest.mark.parametrize(
    ("code", "subcode", "level"),
    [(551, 1545041, "WARN"), (10, 2018278, "WARN")],
)
def test_permanent_send_failures_are_not_retried_and_logged_once(
    bridge: Bridge, code: int, subcode: int | None, level: str
):
    bridge.say(ALICE, "hi")  # known user: the owner's notice is not in the way
    bridge.graph.fail_next(400, code=code, subcode=subcode, times=10, only="message")
    bridge.say(ALICE, "hi again")
    attempts = [c for c in bridge.graph.calls if c.psid == ALICE and c.kind == "message"]
    assert len(attempts) == 3  # the welcome, one answered, one refused and not retried
    [failure] = bridge.logs.named("send.failed")
    assert failure["level"] == level and failure["code"] == code
    assert bridge.used_today(ALICE) == 2  # the model answered both: both were paid for


def test_an_invalid_page_token_goes_to_the_dead_letter_queue_for_the_owner(bridge: Bridge):
    bridge.say(ALICE, "hi")
    bridge.graph.fail_next(400, code=190, times=10, only="message")
    bridge.say(ALICE, "hi again")
    failures = bridge.logs.named("send.failed")
    assert len(failures) == 5 and all(f["level"] == "ERROR" and f["code"] == 190 for f in failures)
    [parked] = bridge.dead_letters()
    assert parked["text"] == "hi again"
    assert len(bridge.model.requests) == 2  # the recorded answer waits; the model was asked once
    assert bridge.used_today(ALICE) == 2


def test_a_lost_send_connection_is_not_sent_again(bridge: Bridge):
    bridge.say(ALICE, "hi")
    bridge.graph.reset_connection_next(times=1, only="message")
    bridge.say(ALICE, "again")
    # Graph may have taken it before the connection broke: never risk a second copy.
    assert bridge.logs.named("reply.maybe_delivered")
    calls = [c for c in bridge.graph.calls if c.psid == ALICE and c.kind == "message"]
    assert len(calls) == 3  # the welcome (a new person), "hi"'s answer, "again"'s once


def test_a_send_api_down_for_good_parks_the_message_after_its_receives(bridge: Bridge):
    bridge.say(ALICE, "hi")
    bridge.graph.fail_next(503, code=2, times=100, only="message")
    bridge.say(ALICE, "are you there?")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert [m["text"] for m in bridge.dead_letters()] == ["are you there?"]
    assert len(bridge.model.requests) == 2  # asked once; every retry re-sent the answer
    assert bridge.used_today(ALICE) == 2


def crash_once(monkeypatch, obj: object, method: str) -> dict[str, int]:
    """Make ``obj.method`` raise on its first call only, as a dying dependency would."""
    real = getattr(obj, method)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("DynamoDB went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, method, flaky)
    return calls


def test_a_worker_whose_store_fails_before_replying_answers_once_on_the_retry(
    bridge: Bridge, monkeypatch
):
    from handler.store import Store

    calls = crash_once(monkeypatch, Store, "snapshot")
    bridge.say(ALICE, "hi")
    assert calls["n"] == 2
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert bridge.used_today(ALICE) == 1


def test_a_worker_whose_last_write_fails_after_replying_does_not_reply_again(
    bridge: Bridge, monkeypatch
):
    from handler.claims import Claims

    crash_once(monkeypatch, Claims, "finish")
    bridge.say(ALICE, "hi")
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert len(bridge.model.requests) == 1
    assert bridge.used_today(ALICE) == 1


def test_follow_up_questions_see_the_conversation(bridge: Bridge):
    bridge.say(ALICE, "My name is Alice.")
    bridge.say(ALICE, "What is my name?")
    second = bridge.model.requests[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[1]["content"] == "My name is Alice."


def test_history_off_means_every_question_stands_alone(make_bridge):
    bridge = make_bridge(HISTORY_TURNS="0")
    bridge.say(ALICE, "one")
    bridge.say(ALICE, "two")
    assert [m["role"] for m in bridge.model.requests[1]["messages"]] == ["system", "user"]


def test_a_video_or_a_file_gets_a_hint_and_costs_nothing(bridge: Bridge):
    video = {
        "sender": {"id": ALICE},
        "message": {
            "mid": "m_vid",
            "attachments": [{"type": "video", "payload": {"url": "https://cdn.test/v.mp4"}}],
        },
    }
    bridge.deliver(webhook_body(video))
    bridge.settle()
    [hint] = bridge.texts_to(ALICE)
    assert hint == replies.media_unsupported(vision=True)
    assert "photos" in hint and "voice messages" in hint
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0


def test_an_unknown_postback_is_asked_as_its_title(bridge: Bridge):
    bridge.deliver(webhook_body(messaging_postback(ALICE, "SOMETHING_ELSE", "Opening hours?")))
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert bridge.model.requests[0]["messages"][-1]["content"] == "Opening hours?"


def test_get_started_gets_the_welcome_and_costs_nothing(bridge: Bridge):
    bridge.tap(ALICE, "GET_STARTED")
    [welcome] = bridge.texts_to(ALICE)
    assert "automated assistant" in welcome and "/help" in welcome
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0
    assert not bridge.welcomed(ALICE)  # Get Started's own answer: no second welcome


def test_a_new_person_who_taps_an_ice_breaker_or_types_first_is_welcomed_once(make_bridge):
    """With ice breakers, a real page shows no Get Started button: the first tap (or typed
    message) gets Get Started's welcome first, then its answer; never again, never counted."""
    bridge = make_bridge(ICE_BREAKERS='["What can you do?"]')
    bridge.deliver(webhook_body(messaging_postback(ALICE, "ICE_BREAKER", "What can you do?")))
    bridge.settle()
    welcome, answer = bridge.graph.messages_to(ALICE)
    assert welcome["text"].startswith(replies.WELCOME_OPENING) and "/help" in welcome["text"]
    assert "3 questions a day" in welcome["text"] and "photo or a voice message" in welcome["text"]
    assert welcome["quick_replies"] == [
        {"content_type": "text", "title": "What can you do?", "payload": "ASK:What can you do?"}
    ]
    assert answer == {"text": "The answer is 42."}
    assert bridge.used_today(ALICE) == 1  # the question only
    bridge.say(ALICE, "And on Sundays?")
    bridge.say(BOB, "Hello?")  # typed first, no tap at all
    assert bridge.texts_to(ALICE, welcome=True) == [welcome["text"], *["The answer is 42."] * 2]
    assert bridge.texts_to(BOB, welcome=True) == [welcome["text"], "The answer is 42."]


# A welcome at Messenger's 2,000 characters, in scripts the environment's 4 KB could not hold.
LONG_WELCOMES = {
    "cyrillic": ("Здравствуйте! Я автоматический помощник этой страницы. " * 40)[:2000],
    "japanese": ("こんにちは。このページの自動アシスタントです。" * 100)[:2000],
    "emoji": "👋🤖" * 1000,
}


@pytest.mark.parametrize("script", sorted(LONG_WELCOMES))
def test_get_started_says_a_long_welcome_in_any_script_from_its_parameter(
    bridge: Bridge, script: str
):
    """As deployed: the welcome and the ice breakers come from their SSM parameters, in the
    one GetParameters call that brings the secrets and the other texts."""
    welcome = LONG_WELCOMES[script]
    questions = ["営業時間を教えてください。" * 6, "Как оформить заказ?"]
    texts = {
        "system-prompt": ("Be brief.", "SYSTEM_PROMPT_PARAMETER"),
        "privacy-text": ("Our privacy page.", "PRIVACY_TEXT_PARAMETER"),
        "welcome-message": (welcome, "WELCOME_MESSAGE_PARAMETER"),
        "ice-breakers": (json.dumps(questions, ensure_ascii=False), "ICE_BREAKERS_PARAMETER"),
    }
    names = []
    for text_name, (value, variable) in texts.items():
        name = f"/{bridge.table}/{text_name}"
        bridge.harness.ssm.put_parameter(Name=name, Value=value, Type="String", Tier="Advanced")
        bridge.harness.set(variable, name)
        names.append(name)
    bridge.harness.set("WELCOME_MESSAGE", None)  # nothing but the parameter says it
    bridge.harness.set("ICE_BREAKERS", None)
    app.reset()
    ssm_calls: list[dict] = []
    app.runtime()  # a new container: count its SSM calls from the first one
    from handler import clients

    clients.aws("ssm").meta.events.register(
        "before-parameter-build.ssm.GetParameters", lambda params, **_: ssm_calls.append(params)
    )
    bridge.tap(ALICE, "GET_STARTED")
    [message] = bridge.graph.messages_to(ALICE)
    assert message["text"] == welcome and len(welcome) == 2000
    assert [q["payload"] for q in message["quick_replies"]] == [f"ASK:{q}" for q in questions]
    [call] = ssm_calls  # one call for the secrets and every text
    assert set(names) <= set(call["Names"]) and len(call["Names"]) <= 10  # GetParameters' most
    assert bridge.model.requests == [] and bridge.used_today(ALICE) == 0


def test_a_quick_reply_with_no_text_is_asked_as_its_payload(bridge: Bridge):
    quick = messaging_text(ALICE, "")
    del quick["message"]["text"]
    quick["message"]["quick_reply"] = {"payload": "What are your opening hours?"}
    bridge.deliver(webhook_body(quick))
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert bridge.model.requests[0]["messages"][-1]["content"] == "What are your opening hours?"


def test_a_quick_reply_that_is_no_command_is_asked_as_the_text_shown(bridge: Bridge):
    quick = messaging_text(ALICE, "Tell me more")
    quick["message"]["quick_reply"] = {"payload": "MORE"}
    bridge.deliver(webhook_body(quick))
    bridge.settle()
    assert bridge.texts_to(ALICE) == ["The answer is 42."]
    assert bridge.model.requests[0]["messages"][-1]["content"] == "Tell me more"


def test_a_quick_reply_command_runs_the_command(bridge: Bridge):
    quick = messaging_text(ALICE, "Usage")
    quick["message"]["quick_reply"] = {"payload": "USAGE"}
    bridge.deliver(webhook_body(quick))
    bridge.settle()
    assert "questions" in bridge.texts_to(ALICE)[0] and bridge.model.requests == []
