"""What the bot says on its own behalf (not the model): short, plain, and in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .budget import NANO, dollars
from .quota import STATUS_BLOCKED, STATUS_UNLIMITED, Usage, describe_reset
from .store import FAILURE_KINDS, PageDay, User, UserDay

ADMIN_ACTION_PREFIX = "ADMIN:"

APOLOGY = (
    "Sorry, I couldn't get an answer just now. Please try again in a moment; "
    "this question was not counted."
)
# Said once, when the model first fails in a way that may pass: the answer comes later.
MODEL_TROUBLE = (
    "I'm having trouble reaching the model. I'll keep trying for a few minutes and answer "
    "here; the question counts only if I do."
)
# The model answered (and was paid for) but said nothing: it spent its room thinking.
EMPTY_ANSWER = (
    "My answer was cut short before I could write any of it: the question needed more room "
    "than I have. Please ask again, perhaps in smaller parts."
)
# A cut answer ends at its last whole sentence, then this, with a quick reply for the rest.
SHORTENED_NOTE = "(My answer was shortened to fit. Tap Continue for the rest.)"
CONTINUE_TITLE = "Continue"
CONTINUE_QUESTION = "Please continue."
# OpenAI refused for billing (insufficient_quota): nothing the person can do, nor a retry.
QUOTA_APOLOGY = (
    "Sorry, I can't answer right now: the page's AI account needs its owner's attention. "
    "They have been told; this question was not counted."
)
# Photos and voice messages.
DEFAULT_PHOTO_QUESTION = (
    "The person sent this picture without a question. Say briefly what it shows, in the "
    "language they have been writing in (English if you cannot tell)."
)
PHOTO_MARK = "[photo]"  # how a photo question is remembered: never the picture itself
VISION_OFF = "I can't look at photos here. Please tell me in words what you need."
VISION_UNSUPPORTED = (
    "The model here can't look at photos. Please describe the picture in words; this was "
    "not counted."
)
MEDIA_TOO_LARGE = "That file is too large for me. Please send a smaller one; this was not counted."
PHOTO_FAILED = "I couldn't open that photo. Please send it again; this was not counted."
VOICE_FAILED = (
    "I couldn't listen to that voice message. Please send it again or type your question; "
    "this was not counted."
)
VOICE_EMPTY = (
    "I couldn't make out any words in that voice message. Please try again, or type your "
    "question; this was not counted."
)
HEARD_CHARS = 120  # of the transcript quoted back, so a misheard question shows
RESET_DONE = "Done: I've forgotten our conversation. Ask me anything."

USER_HELP = (
    "Ask me anything and I'll answer; send a photo or a voice message too.\n"
    "/usage: questions and tokens left today\n"
    "/reset: forget our conversation\n"
    "/delete: delete everything this bot keeps about you\n"
    "/help: this message"
)
QUICK_REPLY_TITLE_LIMIT = 20
DELETE_QUESTION = (
    "This deletes everything this bot keeps about you: your conversation, your question "
    "count and your record. Delete it?"
)
DELETE_CANCELLED = "Nothing was deleted."
ADMIN_HELP = (
    "\n\nOwner commands:\n"
    "/stats: questions, tokens, cost and failures, today and this month\n"
    "/users: recent users\n"
    "/unlimited <psid>, /default <psid>, /block <psid>\n"
    "/limit <psid> <n>: a daily limit for one user\n"
    "/forget <psid>: delete that user's data"
)


def welcome(custom: str | None, limit: int | None, questions: tuple[str, ...]) -> dict[str, Any]:
    """The answer to Get Started: says plainly that an automated assistant answers (Meta asks
    for it; several jurisdictions require it), what it does, the limit and /help; the ice
    breakers as quick replies that carry their whole question."""
    if custom:
        text = custom
    else:
        limit_line = (
            "" if limit is None else f" You can ask {limit} question{'s' * (limit != 1)} a day."
        )
        text = (
            "Hi! I'm this page's automated assistant: an AI model answers your messages here, "
            f"not a person. Ask me anything, in any language.{limit_line} "
            "Type /help to see what else I can do."
        )
    message: dict[str, Any] = {"text": text}
    if questions:
        message["quick_replies"] = [
            {"content_type": "text", "title": short_title(q), "payload": f"ASK:{q}"}
            for q in questions[:13]
        ]
    return message


def short_title(text: str, limit: int = QUICK_REPLY_TITLE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def delete_question() -> dict[str, Any]:
    """Two buttons: deleting a person's data is never one mistyped word away."""
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": DELETE_QUESTION,
                "buttons": [
                    {"type": "postback", "title": "Delete my data", "payload": "DELETE_CONFIRMED"},
                    {"type": "postback", "title": "Keep it", "payload": "DELETE_CANCELLED"},
                ],
            },
        }
    }


def deleted(count: int) -> str:
    return (
        f"Deleted: {count} record{'s' * (count != 1)} about you. If you write again, I'll "
        "start from nothing."
        if count
        else "There was nothing to delete: I keep nothing about you."
    )


def over_limit(limit: int, now: datetime, tz: ZoneInfo) -> str:
    questions = "question" if limit == 1 else "questions"
    return (
        f"You've used your {limit} {questions} for today. "
        f"Your questions come back {describe_reset(now, tz)}."
    )


def usage(
    usage: Usage, now: datetime, tz: ZoneInfo, tokens: int = 0, token_limit: int | None = None
) -> str:
    """Questions and tokens today, and what is left; ``token_limit`` None (or 0): none."""
    token_line = (
        f" Tokens today: {tokens:,} of {token_limit:,}; {max(0, token_limit - tokens):,} left."
        if token_limit
        else f" Tokens today: {tokens:,}."
    )
    if usage.limit is None:
        return f"You have no daily limit. Questions today: {usage.used}.{token_line}"
    return (
        f"Today you've asked {usage.used} of {usage.limit} questions; {usage.left} left."
        f"{token_line} The count resets {describe_reset(now, tz)}."
    )


def over_tokens(limit: int, now: datetime, tz: ZoneInfo) -> str:
    return (
        f"You've used today's allowance ({limit:,} tokens). "
        f"It comes back {describe_reset(now, tz)}."
    )


def resting(now: datetime, tz: ZoneInfo) -> str:
    """Everyone's answer once the page's daily spend cap is reached."""
    return (
        "I'm resting until tomorrow: this page's budget for answers is used up for today. "
        f"I'll be back {describe_reset(now, tz)}; this was not counted."
    )


def media_unsupported(vision: bool) -> str:
    """What the bot can take, for a video, a file or anything else it cannot."""
    photos = "look at photos, " if vision else ""
    return (
        f"I can read text, {photos}and listen to voice messages, but not this kind of "
        "attachment. Please send your question that way; this was not counted."
    )


def heard(transcript: str) -> str:
    """The first line of a voice message's answer: what was heard, short."""
    words = " ".join(transcript.split())
    if len(words) > HEARD_CHARS:
        words = words[: HEARD_CHARS - 1].rstrip() + "\u2026"
    return f"\U0001f3a4 \u201c{words}\u201d"


def continue_button() -> dict[str, Any]:
    """The note under a shortened answer, with the quick reply that asks for the rest."""
    return {
        "text": SHORTENED_NOTE,
        "quick_replies": [
            {
                "content_type": "text",
                "title": CONTINUE_TITLE,
                "payload": f"ASK:{CONTINUE_QUESTION}",
            }
        ],
    }


# -- owner alerts (never a person's words, never a secret) ------------------------------------

PARAMETER_FIXES = {
    "temperature": "`pulumi config set temperature ''` (send none)",
    "top_p": "`pulumi config set topP ''` (send none)",
    "reasoning_effort": "`pulumi config set reasoningEffort omit`",
    "max_completion_tokens": "nothing: the bot sends max_tokens instead",
    "max_tokens": "a provider that takes a token cap, or accept answers without one",
    "max_output_tokens": "a provider that takes a token cap, or accept answers without one",
}


def parameter_refused(model: str, parameter: str) -> str:
    fix = PARAMETER_FIXES.get(parameter, "the setting that sends it")
    return (
        f"the model {model} refused the parameter {parameter}; the bot now answers without "
        f"it. To stop sending it: {fix}, then pulumi up."
    )


def quota_alert() -> str:
    return (
        "OpenAI refused a request for lack of credit (insufficient_quota). People get an "
        "apology until you add credit or raise the limit (platform.openai.com, Billing)."
    )


def spend_cap_alert(cap_usd: float, now: datetime, tz: ZoneInfo) -> str:
    return (
        f"today's estimated spend reached the cap of ${cap_usd:,.2f} (dailySpendLimitUsd). "
        f"Everyone but the owners is asked to come back {describe_reset(now, tz)}."
    )


def vision_alert(model: str) -> str:
    return (
        f"the model {model} refused a photo. Choose a model with vision (model), or tell "
        "people photos are not read (`pulumi config set vision false`), then pulumi up."
    )


def describe_user(user: User, usage: Usage) -> str:
    if user.status == STATUS_BLOCKED:
        return f"{user.psid}: blocked"
    limit = "no limit" if usage.limit is None else f"{usage.used}/{usage.limit} today"
    return f"{user.psid}: {user.status}, {limit}"


def status_changed(user: User, usage: Usage) -> str:
    return "Done. " + describe_user(user, usage)


def new_user_notice(
    user: User, default_limit: int, ref_source: str = "", ref: str = ""
) -> dict[str, Any]:
    """The owner's message about a first-time user: a button template, tappable once each."""
    status = (
        "unlimited" if user.status == STATUS_UNLIMITED else f"{user.status}, {default_limit}/day"
    )
    came = ""
    if ref_source or ref:
        came = (
            f" Came from {ref_source.lower() or 'a link'}" + (f" (ref {ref})" if ref else "") + "."
        )
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": f"New user {user.psid} wrote for the first time ({status}).{came}"[:640],
                "buttons": [
                    {
                        "type": "postback",
                        "title": title,
                        "payload": admin_payload(action, user.psid),
                    }
                    for title, action in (
                        ("Allow unlimited", "unlimited"),
                        ("Keep default", "default"),
                        ("Block", "blocked"),
                    )
                ],
            },
        }
    }


def admin_payload(action: str, psid: str) -> str:
    return f"{ADMIN_ACTION_PREFIX}{action}:{psid}"


# -- /stats -----------------------------------------------------------------------------------

FAILURE_NAMES = {
    "model": "model errors",
    "send": "send errors",
    "insufficient_quota": "insufficient_quota",
    "unsupported_parameter": "unsupported parameter",
}


def _totals(days: list[PageDay]) -> PageDay:
    failures = {k: sum(d.failures.get(k, 0) for d in days) for k in FAILURE_KINDS}
    return PageDay(
        "",
        sum(d.questions for d in days),
        sum(d.tokens for d in days),
        sum(d.cost_nusd for d in days),
        {k: n for k, n in failures.items() if n},
    )


def _line(label: str, day: PageDay) -> str:
    return (
        f"{label}: {day.questions} question{'s' * (day.questions != 1)}, "
        f"{day.tokens:,} tokens, about {dollars(day.cost_nusd)}"
    )


def _failures(day: PageDay) -> str:
    if not day.failures:
        return "none"
    return ", ".join(f"{FAILURE_NAMES[k]} {n}" for k, n in day.failures.items())


def stats(
    today: PageDay,
    month: list[PageDay],
    top: list[tuple[str, UserDay]],
    cap_usd: float,
) -> str:
    """The owner's /stats: today, this month, the costliest people (by PSID), failures."""
    month_total = _totals(month)
    cap = (
        f" of the {dollars(round(cap_usd * NANO))} daily cap" if cap_usd > 0 else " (no daily cap)"
    )
    lines = [
        _line(f"Today ({today.day})", today) + cap,
        _line(f"This month ({today.day[:7]})", month_total),
        f"Failures today: {_failures(today)}",
        f"Failures this month: {_failures(month_total)}",
    ]
    if top:
        lines.append("Top users this month by cost:")
        lines += [
            f"{psid}: {dollars(day.cost_nusd)}, {day.questions} q, {day.tokens:,} tokens"
            for psid, day in top
        ]
    return "\n".join(lines)
