"""Owner alerts: what the page's owners must hear about (billing, the spend cap, a model that
refuses a setting), said once per quiet period, never with a person's words or a secret.

``alert(kind, text)`` sends a Messenger message to every admin PSID inside Messenger's
24-hour window, which runs from the admin's own last message. The bot writes a person's
``active_at`` at most every ``ACTIVITY_RESOLUTION`` (their real last message may be up to
that much later), so ``active_at`` is a lower bound and the window is judged from it: an
admin inside by that measure surely is. An admin outside it (or whom the Send API refuses)
gets the alert kept in a small outbox item, one per kind and the newest, and delivered with
their next message. Each kind is quiet for a while after it goes out (stored: it holds
across containers). Later issues extend ``Alerts`` (e-mail, alarms) here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .logs import log
from .messenger import SendError
from .quota import next_reset
from .settings import Settings
from .store import Alert, User

# Messenger's window for ordinary replies, from the person's last message.
MESSAGING_WINDOW = timedelta(hours=24)
# Kept off the window's end: the clock, the time the send takes.
WINDOW_MARGIN = timedelta(minutes=5)
HOUR = 3600
DAY = 24 * HOUR

# The kinds, and how long each stays quiet after it went out (seconds; "day": until the
# quota day ends, in the page's time zone).
INSUFFICIENT_QUOTA = "insufficient_quota"
SPEND_CAP = "spend_cap"
UNSUPPORTED_PARAMETER = "unsupported_parameter"
VISION_UNSUPPORTED = "vision_unsupported"
QUIET: dict[str, int | str] = {
    INSUFFICIENT_QUOTA: HOUR,
    SPEND_CAP: "day",
    UNSUPPORTED_PARAMETER: DAY,
    VISION_UNSUPPORTED: DAY,
}
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


class AlertStore(Protocol):
    def take_alert(self, kind: str, now: int, quiet_until: int) -> bool: ...
    def keep_alert(self, psid: str, kind: str, text: str, now: int) -> None: ...
    def drop_alert(self, psid: str, alert: Alert) -> None: ...
    def get_user(self, psid: str) -> User | None: ...


class Sender(Protocol):
    def send_message(self, psid: str, message: dict[str, Any], deadline: float) -> None: ...


def base_kind(kind: str) -> str:
    """``unsupported_parameter:temperature`` -> ``unsupported_parameter``."""
    return kind.split(":", 1)[0]


def inside_window(active_at: str, now: datetime) -> bool:
    """Surely inside the admin's 24-hour window, judged from their recorded activity."""
    try:
        last = datetime.fromisoformat(active_at)
    except ValueError:
        return False
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    return timedelta(0) <= now - last < MESSAGING_WINDOW - WINDOW_MARGIN


@dataclass
class Alerts:
    settings: Settings
    store: AlertStore
    messenger: Sender
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def quiet_until(self, kind: str, now: datetime) -> int:
        period = QUIET.get(base_kind(kind), DAY)
        if period == "day":
            return int(next_reset(now, self.settings.tz).timestamp())
        return int(now.timestamp()) + int(period)

    def alert(self, kind: str, text: str, deadline: float) -> bool:
        """Tell every owner, unless ``kind`` is in its quiet period; True when it went out
        (sent or kept). Never raises: an alert must not cost a person their answer."""
        admins = sorted(self.settings.admin_psids)
        if not admins:
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
        sent = kept = 0
        for admin in admins:
            try:
                if self._send(admin, text, now, deadline):
                    sent += 1
                else:
                    self.store.keep_alert(admin, kind, text, int(now.timestamp()))
                    kept += 1
            except Exception:
                log.exception("alert.failed", kind=kind)
        log.warning("alert.raised", kind=kind, sent=sent, kept=kept)
        return True

    def _send(self, admin: str, text: str, now: datetime, deadline: float) -> bool:
        user = self.store.get_user(admin)
        if user is None or not inside_window(user.active_at, now):
            return False
        try:
            self.messenger.send_message(admin, {"text": PREFIX + text}, deadline)
        except SendError:  # logged by the client; outside the window after all, or down
            return False
        return True

    def deliver(self, admin: str, outbox: list[Alert], deadline: float) -> int:
        """The alerts kept for ``admin``, now that they wrote; returns how many were sent."""
        sent = 0
        for kept in outbox:
            try:
                self.messenger.send_message(admin, {"text": PREFIX + kept.text}, deadline)
            except SendError:
                break  # kept for the next message
            try:
                self.store.drop_alert(admin, kept)
            except Exception:
                log.exception("alert.drop_failed", kind=kept.kind)
            sent += 1
        if sent:
            log.info("alert.delivered", alerts=sent)
        return sent
