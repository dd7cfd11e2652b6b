"""What the bot says on its own behalf (not the model): short, plain, and in one place."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .budget import NANO, dollars
from .events import PHOTO_WAIT_SECONDS
from .quota import STATUS_BLOCKED, STATUS_UNLIMITED, Usage, describe_reset
from .settings import Price
from .store import FAILURE_KINDS, Notice, PageDay, User, UserDay

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
# The model answered (and was paid for) but said nothing, for no reason it gave.
EMPTY_ANSWER = (
    "The model gave me an empty answer to that. Please ask again, perhaps in other words."
)
# A cut answer ends at its last whole sentence, then this, with a quick reply for the rest.
SHORTENED_NOTE = "(My answer was shortened to fit. Tap Continue for the rest.)"
# The model spent the whole token budget before writing anything (a reasoning model thinking):
# the same Continue quick reply; the conversation keeps CUT_MARK as the answer, so that
# "Please continue." is asked with the question before it.
CUT_BEFORE_ANSWER = (
    "(My answer was cut short before I could write any of it: the question needed more room "
    "than I have. Tap Continue to let me go on, or ask in smaller parts.)"
)
CUT_MARK = "[answer cut off before any of it was written]"
# The provider's content filter stopped the answer: said as such, never as a whole answer.
FILTERED = (
    "The AI provider's content filter stopped my answer to that, so I can't give it. "
    "Please ask in another way."
)
FILTERED_NOTE = "(The AI provider's content filter stopped my answer here.)"
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
# How a voice message or an attachment the bot did not answer (it kept quiet) is remembered.
VOICE_MARK = "[voice message]"
ATTACHMENT_MARK = "[attachment]"
VISION_OFF = "I can't look at photos here. Please tell me in words what you need."
VISION_UNSUPPORTED = (
    "The model here can't look at photos. Please describe the picture in words; this was "
    "not counted."
)
MEDIA_TOO_LARGE = "That file is too large for me. Please send a smaller one; this was not counted."
PHOTO_FAILED = "I couldn't open that photo. Please send it again; this was not counted."
# A photo of a format the model cannot open (HEIC, BMP, TIFF...), by its type or the
# provider's word: not the model's lack of vision.
PHOTO_UNREADABLE = (
    "I couldn't open that photo: its format isn't one I can read. Please send it as a JPEG or "
    "PNG (a screenshot works too); this was not counted."
)
# A photo without text: kept a few minutes for the question that usually follows it.
PHOTO_KEPT = "Got your photo \u2014 what would you like to know about it?"
DESCRIBE_TITLE = "Describe it"
DESCRIBE_QUESTION = "Describe this photo."
DESCRIBE_PAYLOAD = f"ASK:{DESCRIBE_QUESTION}"
PHOTO_GONE = (
    f"I no longer have that photo: I keep one only {PHOTO_WAIT_SECONDS // 60} minutes for your "
    "question. Please send it again."
)
VOICE_FAILED = (
    "I couldn't listen to that voice message. Please send it again or type your question; "
    "this was not counted."
)


def voice_too_long(seconds: int) -> str:
    """A voice message over the length the bot transcribes (``media.MAX_VOICE_SECONDS``)."""
    return (
        f"That voice message is too long for me: I can listen to up to {seconds // 60} minutes. "
        "Please send a shorter one or type your question; this was not counted."
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
    "/human: talk to a person of the page\n"
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
    "/forget <psid>: delete that user's data\n"
    "/pause <psid> [minutes]: the bot keeps quiet for that user while you answer\n"
    "/resume <psid>: the bot answers them again"
)


WELCOME_OPENING = "Hi! I'm this page's automated assistant"


def welcome(
    custom: str | None,
    limit: int | None,
    questions: tuple[str, ...],
    photos: bool = False,
    voice: bool = False,
) -> dict[str, Any]:
    """The answer to Get Started (and a new person's first message when they did not tap it):
    says plainly that an automated assistant answers (Meta asks for it; several jurisdictions
    require it), what it does (photos and voice messages when they are read), the limit and
    /help; the ice breakers as quick replies that carry their whole question."""
    if custom:
        text = custom
    else:
        limit_line = (
            "" if limit is None else f" You can ask {limit} question{'s' * (limit != 1)} a day."
        )
        media = [kind for kind, on in (("a photo", photos), ("a voice message", voice)) if on]
        media_line = f" You can also send me {' or '.join(media)}." if media else ""
        text = (
            f"{WELCOME_OPENING}: an AI model answers your messages here, "
            f"not a person. Ask me anything, in any language.{media_line}{limit_line} "
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


def continue_button(text: str = SHORTENED_NOTE) -> dict[str, Any]:
    """The note under a shortened answer, with the quick reply that asks for the rest."""
    return {
        "text": text,
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


def openai_key_alert(refused: str, model: str) -> str:
    """OpenAI refused the key (``authentication``: 401) or what it may do (``status_403``)."""
    if refused == "authentication":
        what = "the API key (401: invalid, revoked or expired)"
    else:
        what = f"the API key's access (403: its project or role may not use {model})"
    return (
        f"OpenAI refused {what}. People get an apology (not counted) until you set a working "
        "key: `pulumi config set --secret openaiApiKey`, then `pulumi up`."
    )


OPENAI_KEY_HINT = (
    "create a key at platform.openai.com (API keys) in a project that may use the model, "
    "then run `pulumi config set --secret openaiApiKey` (paste the key when asked) and "
    "`pulumi up`."
)


def spend_cap_alert(cap_usd: float, now: datetime, tz: ZoneInfo) -> str:
    return (
        f"today's estimated spend reached the cap of ${cap_usd:,.2f} (dailySpendLimitUsd). "
        f"Everyone but the owners is asked to come back {describe_reset(now, tz)}."
    )


def photo_kept() -> dict[str, Any]:
    """The answer to a photo sent without text: asks what to do with it, with a quick reply
    that asks for a description (the person's next message is asked with the photo)."""
    return {
        "text": PHOTO_KEPT,
        "quick_replies": [
            {"content_type": "text", "title": DESCRIBE_TITLE, "payload": DESCRIBE_PAYLOAD}
        ],
    }


def unpriced_alert(model: str, priced_as: str, price: Price) -> str:
    """A model the price table lacks: priced at the dearest listed row, so the cap errs high."""
    return (
        f"modelPrices has no price for the model {model}, so the spend cap and /stats price it "
        f"as the dearest listed ({priced_as}: ${price.input:g}/${price.cached:g}/"
        f"${price.output:g} per million tokens in/cached/out): the estimate is likely high and "
        f"the cap may stop answers early. Add `{model}=input/cached/output` (dollars per million "
        "tokens, from the provider's price page) to modelPrices (a stack's list replaces the "
        "default one: list every model you use), then pulumi up."
    )


def vision_alert(model: str) -> str:
    return (
        f"the model {model} refused a photo. Choose a model with vision (model), or tell "
        "people photos are not read (`pulumi config set vision false`), then pulumi up."
    )


def token_alert() -> str:
    return (
        "Facebook refused the page access token (Graph error 190): the bot can send nothing, "
        "and people's messages go to the dead-letter queue."
    )


TOKEN_HINT = (
    "generate a new page token (Meta app dashboard, Messenger API Settings), then run "
    "`pulumi config set --secret pageAccessToken` and `pulumi up`, and send the waiting "
    "messages back with `python -m admin replay --all`."
)


def dead_letter_alert(tries: int, why: str) -> str:
    return (
        f"a message could not be answered in {tries} tries and went to the dead-letter queue "
        f"(last error: {why}). Fix the cause, then send it back: python -m admin replay."
    )


DEAD_LETTER_HINT = (
    "read why in the function's logs (record.retry) or with `python -m admin replay`, fix "
    "the cause, then run `python -m admin replay --all` within 24 hours of the messages."
)


# -- the owner in the conversation: human takeover --------------------------------------------


def clock_time(epoch: int, tz: ZoneInfo) -> str:
    """``14:30 UTC``: when a pause ends, in the page's time zone."""
    moment = datetime.fromtimestamp(epoch, UTC).astimezone(tz)
    return f"{moment.strftime('%H:%M')} {moment.tzname()}"


def human_asked(minutes: int) -> str:
    """The answer to /human: the owners were told; the bot keeps quiet, if takeover is on."""
    if minutes <= 0:
        return (
            "I've let the page's team know that you'd like to talk to a person: someone will "
            "answer you here when they can. Meanwhile I'm still here for your questions."
        )
    return (
        "I've let the page's team know that you'd like to talk to a person: someone will "
        f"answer you here. Until then I'll keep quiet (for up to {minutes} minutes)."
    )


HUMAN_NOBODY = (
    "Sorry, I can't reach anyone of the page's team from here right now, so nobody was told "
    "that you'd like to talk to a person. I'll keep answering your questions meanwhile."
)


HUMAN_FROM_OWNER = (
    "You're an owner of this page: /human is for the people who write to it. "
    "/pause <psid> keeps the bot quiet for someone while you answer them."
)


def human_notice(psid: str, until: int | None, tz: ZoneInfo) -> Notice:
    """An owner's notice that someone asked for a person, with what they can do about it."""
    take_over = ("Take over", admin_payload("pause", psid))
    if until is None:
        return Notice(
            f"human:{psid}",
            f"{psid} asked to talk to a person; the bot goes on answering them until you "
            "take over.",
            title=f"{psid} asks for a person",
            subtitle="the bot goes on answering them",
            buttons=(take_over,),
            hint=HUMAN_HINT,
        )
    when = clock_time(until, tz)
    return Notice(
        f"human:{psid}",
        f"{psid} asked to talk to a person. The bot keeps quiet for them until {when}: answer "
        "them from the Page Inbox, or let the bot answer.",
        title=f"{psid} asks for a person",
        subtitle=f"the bot keeps quiet until {when}",
        buttons=(take_over, ("Let the bot answer", admin_payload("resume", psid))),
        hint=HUMAN_HINT,
    )


HUMAN_HINT = (
    "answer them from the Page Inbox or the Business Suite app (within 24 hours of their "
    "message): the bot keeps quiet while you write to them."
)


def takeover_notice(psid: str, until: int, tz: ZoneInfo) -> Notice:
    """Someone of the page answered a person by hand (``takeoverNotices``)."""
    when = clock_time(until, tz)
    return Notice(
        f"takeover:{psid}",
        f"Someone of the page answered {psid} by hand: the bot keeps quiet for them until "
        f"{when}, longer if you write again.",
        title=f"{psid} answered by hand",
        subtitle=f"the bot keeps quiet until {when}",
        buttons=(("Let the bot answer", admin_payload("resume", psid)),),
    )


def takeover_ended_notice(psid: str) -> Notice:
    """An owner let the bot answer a person again before the pause ended."""
    return Notice(
        f"takeover:{psid}", f"An owner let the bot answer {psid} again before the pause ended."
    )


def paused(psid: str, until: int, minutes: int, tz: ZoneInfo) -> str:
    return (
        f"Done: the bot keeps quiet for {psid} until {clock_time(until, tz)} ({minutes} min) "
        f"while you answer them from the Page Inbox. /resume {psid} lets it answer again."
    )


def resumed(psid: str, was_paused: bool) -> str:
    if not was_paused:
        return f"The bot was not paused for {psid}: it answers them."
    return f"Done: the bot answers {psid} again, from their next message."


def owner_has_no_limit(psid: str) -> str:
    return f"{psid} is an owner of this page: owners have no limit and cannot be blocked."


def owner_never_paused(psid: str) -> str:
    return f"{psid} is an owner of this page: the bot never pauses for owners."


def describe_user(user: User, usage: Usage, owner: bool = False) -> str:
    if owner:
        return f"{user.psid}: owner (no limit)"
    if user.status == STATUS_BLOCKED:
        return f"{user.psid}: blocked"
    limit = "no limit" if usage.limit is None else f"{usage.used}/{usage.limit} today"
    waiting = ", waiting for your decision" if user.pending else ""
    return f"{user.psid}: {user.status}, {limit}{waiting}"


def status_changed(user: User, usage: Usage) -> str:
    return "Done. " + describe_user(user, usage)


def limit_kept_blocked(psid: str, limit: int) -> str:
    """/limit on a blocked user: the limit is stored, the block stays."""
    return (
        f"Done: {psid} has their own limit of {limit} a day, but stays blocked. "
        f"/default {psid} lets them ask again."
    )


def limit_from_unlimited(user: User, usage: Usage) -> str:
    """/limit on an unlimited user: back to default, with that limit."""
    return f"Done: {user.psid} was unlimited and now has a limit. " + describe_user(user, usage)


def pending(count: int, shown: int) -> str:
    """The /users line about the people no owner has decided about."""
    if not count:
        return "No one is waiting for your decision."
    more = f" (the {shown} newest below)" if shown < count else " (below)"
    people = "person is" if count == 1 else "people are"
    return f"{count} {people} waiting for your decision{more}."


# What an m.me link's ``ref`` may show of itself in a notice (and so in an e-mail): anyone can
# make such a link, so it is cut to the characters and length of a campaign's tag.
_REF_SHOWN = re.compile(r"[^A-Za-z0-9_.:=+/-]")
REF_SHOWN_CHARS = 64


def shown_ref(ref: str) -> str:
    """A referral's tag as the owners see it: no one's words, only a tag's characters."""
    tag = _REF_SHOWN.sub("", ref)
    return tag if len(tag) <= REF_SHOWN_CHARS else tag[: REF_SHOWN_CHARS - 1] + "\u2026"


def new_user_notice(user: User, default_limit: int, ref_source: str = "", ref: str = "") -> Notice:
    """The owners' notice about a first-time user, with a button for each decision."""
    ref_source, ref = shown_ref(ref_source), shown_ref(ref)
    status = (
        "unlimited" if user.status == STATUS_UNLIMITED else f"{user.status}, {default_limit}/day"
    )
    came = ""
    if ref_source or ref:
        came = (
            f" Came from {ref_source.lower() or 'a link'}" + (f" (ref {ref})" if ref else "") + "."
        )
    return Notice(
        f"new_user:{user.psid}",
        f"New user {user.psid} wrote for the first time ({status}).{came}"[:640],
        title=f"New user {user.psid}",
        subtitle=f"{status}.{came}",
        buttons=(
            ("Allow unlimited", admin_payload("unlimited", user.psid)),
            ("Keep default", admin_payload("default", user.psid)),
            ("Block", admin_payload("blocked", user.psid)),
        ),
        hint=(
            "write anything to the page in Messenger: this notice comes with your next "
            "message, with buttons to allow, keep or block them (/users there lists everyone "
            "waiting for your decision)."
        ),
    )


def admin_payload(action: str, psid: str) -> str:
    return f"{ADMIN_ACTION_PREFIX}{action}:{psid}"


# -- /stats -----------------------------------------------------------------------------------

FAILURE_NAMES = {
    "model": "model errors",
    "send": "send errors",
    "token": "page token refused",
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
