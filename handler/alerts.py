"""Owner alerts: what the page's owners must hear about (billing, the OpenAI key, the spend
cap, a model that refuses a setting, the page token, messages going to the dead-letter queue),
said once per quiet period, never with a person's words or a secret.

``alert(kind, text)`` is a notice (``notices``) to every owner: in Messenger inside their
24-hour window, else kept for their next message, and e-mailed at once when the owner must
act (``OWNER_MUST_ACT``). Each kind is quiet for a while after it goes out (stored: it holds
across containers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from . import notices
from .logs import log
from .mail import Mailer
from .notices import Notices, NoticeStore, Sender
from .quota import next_reset
from .settings import Settings
from .store import Notice

HOUR = 3600
DAY = 24 * HOUR

# The kinds, and how long each stays quiet after it went out (seconds; "day": until the
# quota day ends, in the page's time zone).
INSUFFICIENT_QUOTA = "insufficient_quota"
OPENAI_KEY = "openai_key"
SPEND_CAP = "spend_cap"
UNSUPPORTED_PARAMETER = "unsupported_parameter"
VISION_UNSUPPORTED = "vision_unsupported"
MODEL_UNPRICED = "model_unpriced"  # with ":<model>": the price table lacks that model
PAGE_TOKEN = "page_token"
DEAD_LETTER = "dead_letter"
QUIET: dict[str, int | str] = {
    INSUFFICIENT_QUOTA: HOUR,
    OPENAI_KEY: HOUR,
    SPEND_CAP: "day",
    UNSUPPORTED_PARAMETER: DAY,
    VISION_UNSUPPORTED: DAY,
    MODEL_UNPRICED: 30 * DAY,  # once: the owner need hear it again only if nothing changed
    PAGE_TOKEN: HOUR,
    DEAD_LETTER: HOUR,
}
# What the owner must act on for the bot to work again: e-mailed at once (ownerEmail).
OWNER_MUST_ACT = frozenset({INSUFFICIENT_QUOTA, OPENAI_KEY, PAGE_TOKEN, DEAD_LETTER})
# What Messenger cannot carry: with the page token refused, the page cannot write to anyone.
EMAIL_ONLY = frozenset({PAGE_TOKEN})
PREFIX = "Owner alert: "
# A kind found quiet is not asked about again from this container for this long (one write
# saved per refused question while the page rests at its spend cap, say).
LOCAL_QUIET_SECONDS = 60

# kind -> epoch seconds until which this container knows the kind is quiet.
_quiet_here: dict[str, int] = {}
_quiet_lock = threading.Lock()


def forget_container_state() -> None:
    with _quiet_lock:
        _quiet_here.clear()
    notices.forget_container_state()


class AlertStore(NoticeStore, Protocol):
    def take_alert(self, kind: str, now: int, quiet_until: int) -> bool: ...


def base_kind(kind: str) -> str:
    """``unsupported_parameter:temperature`` -> ``unsupported_parameter``."""
    return kind.split(":", 1)[0]


@dataclass
class Alerts:
    settings: Settings
    store: AlertStore
    messenger: Sender | None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    mailer: Mailer | None = None

    def quiet_until(self, kind: str, now: datetime) -> int:
        period = QUIET.get(base_kind(kind), DAY)
        if period == "day":
            return int(next_reset(now, self.settings.tz).timestamp())
        return int(now.timestamp()) + int(period)

    def alert(self, kind: str, text: str, deadline: float, hint: str = "") -> bool:
        """Tell every owner, unless ``kind`` is in its quiet period; True when it went out
        (sent, kept or e-mailed). Never raises: an alert must not cost a person their answer."""
        mail = self.mailer is not None and self.mailer.enabled
        if not self.settings.admin_psids and not mail:
            log.warning("alert.no_owner", kind=kind)
            return False
        now = self.clock()
        moment, until = int(now.timestamp()), self.quiet_until(kind, now)
        with _quiet_lock:
            if _quiet_here.get(kind, 0) > moment:
                return False
        try:
            taken = self.store.take_alert(kind, moment, until)
        except Exception:
            log.exception("alert.failed", kind=kind)
            return False
        with _quiet_lock:
            _quiet_here[kind] = until if taken else moment + LOCAL_QUIET_SECONDS
        if not taken:
            log.info("alert.quiet", kind=kind)
            return False
        base = base_kind(kind)
        notice = Notice(f"alert:{kind}", PREFIX + text, title=alert_title(base), hint=hint)
        told = Notices(self.settings, self.store, self.messenger, self.mailer, self.clock).tell(
            notice, deadline, urgent=base in OWNER_MUST_ACT, messenger=base not in EMAIL_ONLY
        )
        log.warning(
            "alert.raised",
            kind=kind,
            delivered=told.delivered,
            queued=told.queued,
            emailed=told.emailed,
        )
        return True


TITLES = {
    INSUFFICIENT_QUOTA: "OpenAI refused for lack of credit",
    OPENAI_KEY: "OpenAI refused the API key",
    SPEND_CAP: "today's spend cap is reached",
    UNSUPPORTED_PARAMETER: "the model refused a parameter",
    VISION_UNSUPPORTED: "the model refused a photo",
    MODEL_UNPRICED: "a model has no price",
    PAGE_TOKEN: "the page token was refused",
    DEAD_LETTER: "messages are going to the dead-letter queue",
}


def alert_title(kind: str) -> str:
    """An alert in a few words: the e-mail's subject, a card's title."""
    return "Owner alert: " + TITLES.get(kind, kind.replace("_", " "))
