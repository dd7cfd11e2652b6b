"""The usage report, as pure arithmetic over counters already read: easy to test, no AWS.

Counters arrive as ``{psid: {"YYYY-MM-DD": questions}}``; the report adds them up per user,
per day and in total. Days without questions are kept in ``per_day`` so a chart of the range
has no gaps; users without questions in the range are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

MAX_RANGE_DAYS = 366  # a leap year; longer ranges are surely a typo in a year


def check_range(first: date, last: date) -> None:
    """Refuse a range that is backwards or longer than a year, saying which."""
    if first > last:
        raise ValueError(f"--from {first} is after --to {last}")
    length = (last - first).days + 1
    if length > MAX_RANGE_DAYS:
        raise ValueError(
            f"{first} to {last} is {length} days; ask for at most {MAX_RANGE_DAYS} at a time"
        )


def days_in(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class DayCount:
    day: str
    psid: str
    questions: int


@dataclass(frozen=True)
class UserTotal:
    psid: str
    questions: int
    active_days: int


@dataclass(frozen=True)
class DayTotal:
    day: str
    questions: int
    users: int


@dataclass(frozen=True)
class UsageReport:
    first: date
    last: date
    rows: tuple[DayCount, ...]  # by day, then by user; only non-zero counts
    per_user: tuple[UserTotal, ...]  # most questions first
    per_day: tuple[DayTotal, ...]  # every day of the range, zeros included

    @property
    def questions(self) -> int:
        return sum(row.questions for row in self.rows)

    @property
    def users(self) -> int:
        return len(self.per_user)

    @property
    def active_days(self) -> int:
        return sum(1 for day in self.per_day if day.questions)


def build_report(first: date, last: date, counts: Mapping[str, Mapping[str, int]]) -> UsageReport:
    """Add up counters; anything outside the range or not positive is ignored."""
    check_range(first, last)
    days = days_in(first, last)
    wanted = set(days)
    rows = sorted(
        (
            DayCount(day, psid, questions)
            for psid, by_day in counts.items()
            for day, questions in by_day.items()
            if day in wanted and questions > 0
        ),
        key=lambda row: (row.day, row.psid),
    )
    by_user: dict[str, list[int]] = {}
    by_day: dict[str, list[int]] = {day: [] for day in days}
    for row in rows:
        by_user.setdefault(row.psid, []).append(row.questions)
        by_day[row.day].append(row.questions)
    per_user = sorted(
        (UserTotal(psid, sum(q), len(q)) for psid, q in by_user.items()),
        key=lambda total: (-total.questions, total.psid),
    )
    per_day = [DayTotal(day, sum(q), len(q)) for day, q in by_day.items()]
    return UsageReport(first, last, tuple(rows), tuple(per_user), tuple(per_day))
