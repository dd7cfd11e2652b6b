"""Pure arithmetic of the daily question quota: which day a moment belongs to, when it resets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

STATUS_DEFAULT = "default"
STATUS_UNLIMITED = "unlimited"
STATUS_BLOCKED = "blocked"
STATUSES = (STATUS_DEFAULT, STATUS_UNLIMITED, STATUS_BLOCKED)

# Counters outlive their day long enough for /usage and reports, then DynamoDB drops them.
COUNTER_RETENTION = timedelta(days=35)


def day_key(now: datetime, tz: ZoneInfo) -> str:
    """The quota day of an aware ``now`` in the configured zone, as ``YYYY-MM-DD``."""
    return now.astimezone(tz).date().isoformat()


def next_reset(now: datetime, tz: ZoneInfo) -> datetime:
    """The next local midnight: when today's count starts again from zero."""
    local = now.astimezone(tz)
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=tz)


def counter_expiry(now: datetime, tz: ZoneInfo) -> int:
    return int((next_reset(now, tz) + COUNTER_RETENTION).timestamp())


def effective_limit(status: str, own_limit: int | None, default_limit: int) -> int | None:
    """Questions a day for a user; ``None`` is unlimited, 0 is none at all."""
    if status == STATUS_UNLIMITED:
        return None
    if status == STATUS_BLOCKED:
        return 0
    return default_limit if own_limit is None else own_limit


def describe_reset(now: datetime, tz: ZoneInfo) -> str:
    """'in 3 h 20 min (00:00 UTC)': short enough for a chat bubble."""
    reset = next_reset(now, tz)
    minutes = max(1, int((reset - now).total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    span = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"in {span} (00:00 {reset.tzname() or tz.key})"


@dataclass(frozen=True)
class Usage:
    used: int
    limit: int | None

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)
