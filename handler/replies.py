"""What the bot says on its own behalf (not the model): short, plain, and in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .quota import STATUS_BLOCKED, STATUS_UNLIMITED, Usage, describe_reset
from .store import User

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
# The model answered (and was paid for) but said nothing: it likely ran out of room.
EMPTY_ANSWER = (
    "The model gave an empty answer this time, likely because it ran out of room. "
    "Please ask again, perhaps more briefly."
)
ATTACHMENTS_ONLY = "I can only read text for now. Please type your question."
RESET_DONE = "Done: I've forgotten our conversation. Ask me anything."

USER_HELP = (
    "Ask me anything and I'll answer.\n"
    "/usage: questions left today\n"
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


def usage(usage: Usage, now: datetime, tz: ZoneInfo) -> str:
    if usage.limit is None:
        return f"You have no daily limit. Questions today: {usage.used}."
    return (
        f"Today you've asked {usage.used} of {usage.limit} questions; {usage.left} left. "
        f"The count resets {describe_reset(now, tz)}."
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
