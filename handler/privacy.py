"""The privacy page Meta asks for before an app goes Live, written from the stack's actual
settings (what is kept, for how long, who processes it), and the data-deletion status page.

Pure: settings in, HTML out. The owner can replace the policy's text (``privacyText``).
"""

from __future__ import annotations

import html
from datetime import datetime
from urllib.parse import urlparse

from .claims import EVENT_RETENTION
from .events import PHOTO_WAIT_SECONDS
from .quota import COUNTER_RETENTION
from .settings import Settings
from .store import ALERT_RETENTION_SECONDS

DEAD_LETTER_RETENTION_DAYS = 14  # the stack's dead-letter queue keeps a message this long

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;"
    "color:#1c1e21}h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:1.5rem}li{margin:.3rem 0}"
)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _paragraphs(text: str) -> str:
    return "".join(
        f"<p>{html.escape(p.strip()).replace(chr(10), '<br>')}</p>"
        for p in text.split("\n\n")
        if p.strip()
    )


def model_provider(settings: Settings) -> str:
    if not settings.openai_base_url:
        return "OpenAI (api.openai.com)"
    host = urlparse(settings.openai_base_url).hostname or settings.openai_base_url
    return f"the model provider at {host}"


def _logs_kept(settings: Settings) -> str:
    days = settings.log_retention_days
    return f"kept {days} days" if days else "kept until the owner deletes them"


def _expiring(settings: Settings) -> list[str]:
    """What a person's /delete leaves behind, each with when it goes: only the person's own
    records are deleted at once (``Store.forget_user``)."""
    notice_days = ALERT_RETENTION_SECONDS // 86400
    return [
        "the record of each message of yours being answered (with the answer until it is "
        f"sent): {int(EVENT_RETENTION.total_seconds() // 3600)} hours after the message;",
        "a message that could not be answered, with its text, waiting for the page owner to "
        f"retry it: at most {DEAD_LETTER_RETENTION_DAYS} days;",
        "notices naming your page-scoped id (you are new, or you asked for a person) that "
        "wait for one of the page's owners to write to the page: delivered then, or after "
        f"{notice_days} days;",
        f"the technical logs, which name your page-scoped id: {_logs_kept(settings)}.",
    ]


def privacy_page(settings: Settings, region: str | None) -> str:
    """The bot's privacy policy: the owner's text if configured, else one written from the
    settings this function actually runs with."""
    if settings.privacy_text:
        return _page("Privacy policy", _paragraphs(settings.privacy_text))
    history = settings.history_turns
    kept = [
        "Your <b>page-scoped id</b> (a number Facebook gives you for this page only, not your "
        "name or profile), whether you may use the bot and your daily limit, when you first "
        "and last wrote, and the link or ad you came from, if any. Kept until you ask for "
        "deletion.",
        "How many questions you asked each day, and how many tokens (the model's units of text) "
        f"they used, kept {COUNTER_RETENTION.days} days after the day.",
        (
            f"The conversation: your last {history} questions and their answers, and a short "
            "summary of earlier ones, so that follow-up questions make sense. Deleted after "
            f"{settings.history_ttl_hours} hours without a message, or at once when you send "
            "/reset. When someone of the page answers you themselves, what they write is part "
            "of the conversation too."
            if history
            else "No conversation: each question is answered on its own and not kept."
        ),
        (
            "Photos and voice messages are not kept: a photo is a mark in the conversation, a "
            "voice message the words it says. Only a photo you send without text waits: its "
            f"Messenger link (not the picture) is kept up to {PHOTO_WAIT_SECONDS // 60} minutes, "
            "so that your next message can ask about it, and deleted as soon as that message "
            "is answered, when the time is up, or when you send /reset or /delete."
            if settings.vision
            else "Photos and voice messages are not kept: only the words of a voice message, "
            "as a question."
        ),
        "When someone of the page answers you themselves, or you ask for a person (/human): "
        "until when the assistant keeps quiet for you, kept a day after that.",
        "While a message is being answered, a record of it (with the answer until it is sent), "
        f"kept {int(EVENT_RETENTION.total_seconds() // 3600)} hours to answer each message "
        "only once. A message that could not be answered waits up to "
        f"{DEAD_LETTER_RETENTION_DAYS} days for the page owner to retry it.",
        f"Technical logs without the text of your messages, {_logs_kept(settings)}.",
    ]
    minutes = settings.human_pause_minutes
    lasts = (
        f"{minutes} minutes after the page's last reply or your /human, unless an owner set "
        "a longer one"
        if minutes > 0
        else "as long as an owner set"
    )
    where = f" in the {html.escape(region)} region" if region else ""
    processors = [
        f"Amazon Web Services{where}: runs the bot and stores what is listed above, encrypted.",
        f"{html.escape(model_provider(settings))}: receives your question, with the conversation "
        "above, and the photos or voice messages you send, to write the answer.",
        "Meta (Facebook Messenger): delivers your messages and the answers.",
    ]
    contact = (
        f"<p>Questions about your data: {html.escape(settings.privacy_contact)}.</p>"
        if settings.privacy_contact
        else ""
    )
    body = (
        "<p>This page's Messenger assistant is automated: an AI model answers the messages you "
        "send it. This is what it keeps and why.</p>"
        "<h2>What is kept</h2><ul>" + "".join(f"<li>{item}</li>" for item in kept) + "</ul>"
        "<h2>Who processes it</h2><ul>"
        + "".join(f"<li>{item}</li>" for item in processors)
        + "</ul>"
        "<h2>Deleting your data</h2><p>Send <b>/delete</b> to the page in Messenger and confirm. "
        "Deleted at once: your record, your daily counts, the conversation and any pause, "
        "except, if someone of the page is answering you right then, until when the "
        "assistant keeps quiet for you: it holds only your page-scoped id, that time and what "
        f"started the pause, and stays until the pause ends ({lasts}), then goes as above.</p>"
        "<p>Not deleted at once, each kept only as long as said here:</p><ul>"
        + "".join(f"<li>{item}</li>" for item in _expiring(settings))
        + "</ul><p>Notices about you that the page's owners have already received (in Messenger "
        "or by e-mail) are theirs: the bot cannot delete them. You can also remove the app in "
        "your Facebook settings and ask for your data to be deleted there.</p>" + contact
    )
    return _page("Privacy policy", body)


def deletion_status_page(status: str | None, at: datetime | None, deleted: int = 0) -> str:
    """What happened to one data-deletion request, as Meta's confirmation link shows it."""
    when = f" on {at.strftime('%Y-%m-%d %H:%M UTC')}" if at else ""
    if status == "deleted":
        body = (
            f"<p>Your request was received{when}. The bot deleted the {deleted} record"
            f"{'s' * (deleted != 1)} it held about you.</p>"
        )
    elif status == "nothing":
        body = (
            f"<p>Your request was received{when}. The bot held nothing about you, so there was "
            "nothing to delete.</p>"
        )
    elif status == "unmatched":
        body = (
            f"<p>Your request was received{when}, but the bot could not find which of its "
            "records are yours: it knows people only by the page-scoped id Facebook gives them "
            "for this page, and Facebook did not tell it yours. Nothing was deleted.</p>"
            "<p>To delete what it holds about you, send <b>/delete</b> to the page in Messenger "
            "and confirm.</p>"
        )
    else:
        return _page("Data deletion", "<p>No deletion request has this code.</p>")
    return _page("Data deletion", body)
