"""Owner notices that always arrive: new users with their buttons, a person asking for a
person, takeovers, alerts.

Messenger lets the page write to someone only within 24 hours of their last message, so a
notice goes to an owner at once, with ``messaging_type: RESPONSE``, only inside that window,
judged from their recorded activity (``active_at`` is written at most every 10 minutes: a
lower bound, so an owner inside by that measure surely is). Otherwise, or when the Send API
refuses, it waits in the owner's outbox (``Store.keep_notice``: one per key, the newest, at
most 20) and goes out with their next message to the page, oldest first and merged: the texts
in one message, the notices with buttons in one carousel.

E-mail (``ownerEmail``, through the stack's SNS topic) takes what Messenger cannot: a notice
the owner must act on (the page token refused, no OpenAI credit or a refused key, messages
going to the dead-letter queue) at once, a person asking for a person (/human) at once when no
owner could get it in Messenger, and any notice still waiting in an outbox an hour after it
was raised. Nothing schedules that hour: ``mail_overdue`` looks, at most every few minutes across
all containers, when the worker has answered an event and on the keep-warm ping (EventBridge's
schedule, which the stack has anyway).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from .logs import log
from .mail import Mailer
from .messenger import SendError
from .settings import Settings
from .store import Notice, User
from .text import bubbles

# Messenger's window for ordinary replies, from the person's last message.
MESSAGING_WINDOW = timedelta(hours=24)
# Kept off the window's end: the clock, the time the send takes.
WINDOW_MARGIN = timedelta(minutes=5)
# A notice still in an outbox this long after it was raised is e-mailed.
MAIL_AFTER_SECONDS = 3600
# How often the outboxes are looked at for that, across containers (and from each one).
MAIL_CHECK_SECONDS = 300
MAIL_CHECK = "mail_check"  # the quiet period's name in the table (``Store.take_alert``)
# Messenger's limits: a button template's text, a carousel's cards and their lines.
BUTTON_TEXT_LIMIT = 640
CARDS_LIMIT = 10
CARD_LINE_LIMIT = 80
# With no owner to tell in Messenger (no ``adminPsids``) the e-mail takes the notices, but not
# these: a new user gets the default limit with nobody to decide otherwise, and a takeover is
# the page's own doing. One e-mail per new person would be noise on a busy page.
ROUTINE_KINDS = frozenset({"new_user", "takeover"})

# Epoch seconds until which this container does not look at the outboxes again.
_next_check = 0
_check_lock = threading.Lock()


def forget_container_state() -> None:
    global _next_check
    with _check_lock:
        _next_check = 0


class NoticeStore(Protocol):
    def get_user(self, psid: str) -> User | None: ...
    def keep_notice(self, psid: str, notice: Notice) -> None: ...
    def drop_notice(self, psid: str, notice: Notice) -> None: ...
    def mark_mailed(self, psid: str, notice: Notice) -> None: ...
    def read_outboxes(self, psids: list[str]) -> dict[str, list[Notice]]: ...
    def take_alert(self, kind: str, now: int, quiet_until: int) -> bool: ...


class Sender(Protocol):
    def send_message(self, psid: str, message: dict[str, Any], deadline: float) -> None: ...


@dataclass(frozen=True)
class Told:
    """What became of one notice: owners who got it now, outboxes it waits in, e-mails sent."""

    delivered: int = 0
    queued: int = 0
    emailed: int = 0


def inside_window(active_at: str, now: datetime) -> bool:
    """Surely inside the owner's 24-hour window, judged from their recorded activity."""
    try:
        last = datetime.fromisoformat(active_at)
    except ValueError:
        return False
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    return timedelta(0) <= now - last < MESSAGING_WINDOW - WINDOW_MARGIN


def kind_of(key: str) -> str:
    """``new_user:123`` -> ``new_user``; ``alert:unsupported_parameter:top_p`` -> ``alert``."""
    return key.split(":", 1)[0]


# -- what Messenger shows (pure) ----------------------------------------------------------------


def stamp(at: int, tz: ZoneInfo) -> str:
    """When a notice was raised, short: ``Nov 30, 14:02 UTC``."""
    moment = datetime.fromtimestamp(at, UTC).astimezone(tz)
    return f"{moment.strftime('%b')} {moment.day}, {moment.strftime('%H:%M')} {moment.tzname()}"


def _buttons(notice: Notice) -> list[dict[str, str]]:
    return [
        {"type": "postback", "title": title, "payload": payload}
        for title, payload in notice.buttons[:3]
    ]


def message(notice: Notice, prefix: str = "") -> dict[str, Any]:
    """One notice as one message: its text, or a button template when it has buttons."""
    text = prefix + notice.text
    if not notice.buttons:
        return {"text": text}
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": text[:BUTTON_TEXT_LIMIT],
                "buttons": _buttons(notice),
            },
        }
    }


def _line(text: str) -> str:
    return text if len(text) <= CARD_LINE_LIMIT else text[: CARD_LINE_LIMIT - 1] + "\u2026"


def carousel(notices: list[Notice], tz: ZoneInfo | None = None) -> dict[str, Any]:
    """Notices with buttons as one message: a card each (a generic template, at most 10)."""
    elements = []
    for notice in notices[-CARDS_LIMIT:]:
        subtitle = notice.subtitle or notice.text
        if tz is not None:
            subtitle = f"{stamp(notice.at, tz)} \u00b7 {subtitle}"
        elements.append(
            {
                "title": _line(notice.title or notice.text),
                "subtitle": _line(subtitle),
                "buttons": _buttons(notice),
            }
        )
    return {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": elements},
        }
    }


def merged(notices: list[Notice], tz: ZoneInfo) -> list[tuple[dict[str, Any], list[Notice]]]:
    """What an owner gets for the notices that waited for them, oldest first: the texts in
    one message (split at Messenger's 2,000 characters if need be), then the notices with
    buttons in one carousel (one button template if there is one). Each message comes with
    the notices it delivers."""
    plain = [n for n in notices if not n.buttons]
    cards = [n for n in notices if n.buttons]
    left_out = cards[:-CARDS_LIMIT] if len(cards) > CARDS_LIMIT else []
    lines = [f"{stamp(n.at, tz)}: {n.text}" for n in plain]
    if left_out:
        lines.append(
            f"{len(left_out)} older notices with buttons are not shown: /users lists everyone "
            "waiting for your decision."
        )
    parts: list[tuple[dict[str, Any], list[Notice]]] = []
    if lines:
        texts = bubbles("\n\n".join(lines))
        parts += [(bubble, []) for bubble in texts[:-1]]
        parts.append((texts[-1], [*plain, *left_out]))
    shown = cards[len(left_out) :]
    if len(shown) == 1:
        parts.append((message(shown[0], f"{stamp(shown[0].at, tz)}: "), shown))
    elif shown:
        parts.append((carousel(shown, tz), shown))
    return parts


# -- what the e-mail says (pure) ----------------------------------------------------------------


def email(notices: list[Notice], settings: Settings) -> tuple[str, str]:
    """(subject, body): what happened and what to do; never anyone's words nor a secret."""
    tz = settings.tz
    if len(notices) == 1:
        subject = notices[0].title or notices[0].text.split(". ", 1)[0]
    else:
        subject = f"{len(notices)} notices waiting for you"
    lines = [
        f"Your Messenger bot ({settings.table_name}) has "
        + ("a notice" if len(notices) == 1 else f"{len(notices)} notices")
        + " for you.",
        "",
    ]
    for notice in notices:
        lines.append(f"{stamp(notice.at, tz)}: {notice.text}")
        if notice.hint:
            lines.append(f"What to do: {notice.hint}")
        lines.append("")
    lines.append(
        "This e-mail never holds what anyone wrote, nor a secret. Notices with buttons come "
        "in Messenger with your next message to the page."
    )
    return subject, "\n".join(lines)


# -- telling the owners -------------------------------------------------------------------------


@dataclass
class Notices:
    settings: Settings
    store: NoticeStore
    messenger: Sender | None
    mailer: Mailer | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def tell(
        self,
        notice: Notice,
        deadline: float,
        *,
        urgent: bool = False,
        pressing: bool = False,
        messenger: bool = True,
        to: Iterable[str] | None = None,
    ) -> Told:
        """Tell the owners (``to``: only these): in Messenger now if inside their window,
        else kept for their next message; by e-mail at once when ``urgent`` (they must act),
        when ``pressing`` (someone waits) and no owner got it in Messenger now, or when there
        is no owner to tell in Messenger (unless routine). Never raises."""
        now = self.clock()
        notice = replace(notice, at=int(now.timestamp()))
        owners = sorted(self.settings.admin_psids if to is None else to)
        alone = messenger and not self.settings.admin_psids
        delivered, waiting = 0, []
        for owner in owners if messenger else []:
            try:
                if self._now(owner, notice, now, deadline):
                    delivered += 1
                else:
                    waiting.append(owner)
            except Exception:
                log.exception("notice.failed", kind=kind_of(notice.key))
        emailed = 0
        if self.mailer is not None and (
            urgent
            or (pressing and not delivered)
            or (alone and kind_of(notice.key) not in ROUTINE_KINDS)
        ):
            emailed = int(self.mailer.send(*email([notice], self.settings)))
        notice = replace(notice, mailed=bool(emailed))
        queued = 0
        for owner in waiting:
            try:
                self.store.keep_notice(owner, notice)
                queued += 1
            except Exception:
                log.exception("notice.failed", kind=kind_of(notice.key))
        told = Told(delivered, queued, emailed)
        log.info(
            "notice.told",
            kind=kind_of(notice.key),
            delivered=told.delivered,
            queued=told.queued,
            emailed=told.emailed,
        )
        return told

    def _now(self, owner: str, notice: Notice, now: datetime, deadline: float) -> bool:
        """Sent now: the owner is surely inside their window, and the Send API took it."""
        if self.messenger is None:
            return False
        user = self.store.get_user(owner)
        if user is None or not inside_window(user.active_at, now):
            return False
        try:
            self.messenger.send_message(owner, message(notice), deadline)
        except SendError:  # logged by the client; outside the window after all, or down
            return False
        return True

    def deliver(self, owner: str, outbox: list[Notice], deadline: float) -> int:
        """The notices kept for ``owner``, now that they wrote; returns how many went out."""
        if self.messenger is None or not outbox:
            return 0
        sent = messages = 0
        for part, notices in merged(outbox, self.settings.tz):
            try:
                self.messenger.send_message(owner, part, deadline)
            except SendError:
                break  # the rest wait for the next message
            messages += 1
            for notice in notices:
                try:
                    self.store.drop_notice(owner, notice)
                except Exception:
                    log.exception("notice.drop_failed", kind=kind_of(notice.key))
            sent += len(notices)
        log.info("notice.delivered", notices=sent, messages=messages, left=len(outbox) - sent)
        return sent

    def mail_overdue(self) -> int:
        """E-mail the notices that have waited in an outbox for an hour, once each; returns
        how many. Looks at most every ``MAIL_CHECK_SECONDS`` (across containers); never
        raises."""
        global _next_check
        owners = sorted(self.settings.admin_psids)
        if self.mailer is None or not self.mailer.enabled or not owners:
            return 0
        moment = int(self.clock().timestamp())
        with _check_lock:
            if _next_check > moment:
                return 0
            _next_check = moment + MAIL_CHECK_SECONDS
        try:
            if not self.store.take_alert(MAIL_CHECK, moment, moment + MAIL_CHECK_SECONDS):
                return 0
            outboxes = self.store.read_outboxes(owners)
            due: dict[str, Notice] = {}
            for kept in outboxes.values():
                for notice in kept:
                    if not notice.mailed and notice.at <= moment - MAIL_AFTER_SECONDS:
                        due.setdefault(notice.key, notice)
            if not due:
                return 0
            notices = sorted(due.values(), key=lambda n: (n.at, n.key))
            if not self.mailer.send(*email(notices, self.settings)):
                return 0
            for owner, kept in outboxes.items():
                for notice in kept:
                    if notice.key in due and not notice.mailed:
                        self.store.mark_mailed(owner, notice)
        except Exception:
            log.exception("notice.mail_failed")
            return 0
        log.info("notice.mailed", notices=len(notices))
        return len(notices)
